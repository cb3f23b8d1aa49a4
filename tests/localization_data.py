"""A tiny FAIR-Play-layout root with synthetic-style metadata, written by the localization tests;
the tiny upmixer sizes and helpers the upmixer and CLUP tests share (their data: the
`upmixer_root` and `upmixer_batch` fixtures of conftest.py).

Clip c (0-based) shows one sounding square of colour COLOURS[c % 4] (left for even c, right for
odd c) and plays a tone of TONES_HZ[c % 4] Hz, louder in the ear on the square's side; odd clips
also show a silent grey distractor on the left. Each box covers the centre of one 32-pixel cell of
the stride-32 map. `metadata/<id>.json` follows `keras_binaural.data.synthetic.clip_metadata`'s
schema for what the evaluation reads (frame_size [width, height]; objects with class, sounding
and boxes_xyxy per frame, x1/y1 exclusive).
"""

import json

import keras
import numpy as np
from PIL import Image

from keras_binaural.audio import write_wav
from keras_binaural.conventions import SAMPLE_RATE_HZ
from keras_binaural.data import fairplay

COLOURS = ((230, 30, 30), (30, 200, 40), (40, 60, 230), (230, 210, 30))
TONES_HZ = (330.0, 660.0, 1320.0, 2640.0)


def write_tiny_root(root, num_clips: int = 4, seconds: float = 2.0, size: int = 64,
                    test_ids: int = 2) -> list[str]:
    """Writes the clips and splits/split1/{train,test}.txt; returns the clip ids."""
    ids = [f"{c + 1:06d}" for c in range(num_clips)]
    num_samples, num_frames = int(seconds * SAMPLE_RATE_HZ), round(seconds * 10)
    time_s = np.arange(num_samples) / SAMPLE_RATE_HZ
    box = size // 4
    for c, clip_id in enumerate(ids):
        left_side = c % 2 == 0
        x0 = size // 8 if left_side else size - size // 8 - box
        y0 = size // 2 + size // 8  # a 16-pixel box at 64: it covers the centre of a 32-px cell
        tone = 0.3 * np.sin(2 * np.pi * TONES_HZ[c % 4] * time_s)
        gains = (1.0, 0.4) if left_side else (0.4, 1.0)
        audio = np.stack([gains[0] * tone, gains[1] * tone], axis=1).astype(np.float32)
        write_wav(root / "binaural_audios" / f"{clip_id}.wav", audio, subtype="FLOAT")

        objects = [{"class": f"class{c % 4}", "sounding": True,
                    "boxes_xyxy": [[x0, y0, x0 + box, y0 + box]] * num_frames}]
        if c % 2 == 1:
            dx = size // 8
            objects.append({"class": "grey", "sounding": False,
                            "boxes_xyxy": [[dx, y0, dx + box, y0 + box]] * num_frames})
        frames = root / "frames" / f"{clip_id}.mp4"
        frames.mkdir(parents=True)
        for k in range(1, num_frames + 1):
            pixels = np.full((size, size, 3), 90, np.uint8)
            for item, colour in zip(objects, (COLOURS[c % 4], (160, 160, 160))):
                bx0, by0, bx1, by1 = item["boxes_xyxy"][k - 1]
                pixels[by0:by1, bx0:bx1] = colour
            Image.fromarray(pixels).save(frames / f"{k:06d}.png")
        (root / "metadata").mkdir(exist_ok=True)
        (root / "metadata" / f"{clip_id}.json").write_text(json.dumps(
            {"id": clip_id, "frame_size": [size, size], "num_frames": num_frames,
             "objects": objects}))
    split = root / "splits" / "split1"
    split.mkdir(parents=True)
    (split / "train.txt").write_text("\n".join(ids) + "\n")
    (split / "test.txt").write_text("\n".join(ids[:test_ids] if test_ids else ids) + "\n")
    return ids


def first_training_batch(root, size: int, batch_size: int = 4) -> dict:
    """One batch of `fairplay.training_dataset` (seed 0) over the train split of a tiny root."""
    clips = fairplay.list_clips(str(root), "train")
    dataset = fairplay.training_dataset(clips, seed=0, resize_hw=(size, size), crop_hw=(size, size))
    return next(iter(dataset.batch(batch_size)))


def randomise_output_layer(model, seed: int = 0):
    """The denoiser's output layer is zero at init (so is ε̂); a live one makes outputs differ."""
    kernel = model.denoiser.output_projection.kernel
    kernel.assign(np.random.default_rng(seed).normal(0, 0.5, kernel.shape).astype("float32"))


UPMIXER_FRAME_SIZE = 64  # frames of 64 x 64 pixels: a 2 x 2 map
TINY_UPMIXER = {
    "residual_channels": 4,
    "num_cycles": 1,
    "layers_per_cycle": 3,
    "conditioner_channels": 4,
    "step_hidden_channels": 16,
    "guidance_channels": 8,
    "guidance_hidden_channels": 16,
    "profile_bins": 4,
    "localizer_config": {"audio_width_multiplier": 0.0625},
    "seed": 1,
}


def tiny_upmixer_model(cls, localizer_config=None, **kwargs):
    """An `Upmixer` or `CLUP` of `TINY_UPMIXER`'s sizes (seeded) with a live output layer."""
    keras.utils.set_random_seed(0)
    localizer_config = {**TINY_UPMIXER["localizer_config"], **(localizer_config or {})}
    model = cls(**{**TINY_UPMIXER, **kwargs, "localizer_config": localizer_config})
    randomise_output_layer(model)
    return model


def denoiser_inputs(batch) -> dict:
    """An upmixer's call inputs for a batch of 4 training chunks: x_t at 4 steps, and the batch's
    mono, frame and mono patch."""
    return {
        "noisy": np.random.default_rng(0).normal(size=(4, 10080, 1)).astype("float32"),
        "step": np.array([0.0, 10.5, 100.0, 199.0], "float32"),
        "mono": batch["mono"],
        "frame": batch["frame"],
        "mono_patch": batch["mono_patch"],
    }
