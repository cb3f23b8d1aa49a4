"""How close the spatial prior can come to the true differential, given the true positions.

Usage:
  python benchmarks/bench_prior_ceiling.py --root DIR [--columns 16] [--assignment bins]

The spatial prior (keras_binaural/models/spatial_prior.py) models the differential as
D^(f, t) = M(f, t) sum_k p_k(f, t) R_k(f): the mono's spectrum through one response per image
column. Here p comes from the synthetic clips' metadata instead of a localizer: each sounding
object's box centre at that 0.1 s frame, its position between two of the K column bins shared
linearly between them. The sounding objects of a clip share each bin
  - `--assignment columns`: equally, the same in every bin (what a map alone can say);
  - `--assignment bins`: in proportion to each object's power in that bin of the mono (the ideal
    ratio mask of source separation: what the prior's per-bin audio-visual assignment could
    reach). The clips are rendered again in memory with their separated sources
    (`synthetic.make_clip(..., sources=True)`, from dataset.json's settings and seed).
R is the least-squares answer over the train split (per frequency, the K x K normal equations),
scored on the test split as the gain over mono-mono, -10 log10(sum |D - D^|^2 / sum |D|^2)
(dB), per number of sounding objects: the ceiling of the prior with a perfect map, and of how
much a map that points can give the upmixer. Numpy only (the metrics' STFT); seconds with
`columns`, a minute or two with `bins` (the rendering).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts (the audio reader imports it)

import json

import numpy as np
from absl import app, flags
from tqdm import tqdm

from keras_binaural.audio import load_audio
from keras_binaural.conventions import SAMPLES_PER_FRAME
from keras_binaural.data import fairplay, scenes, synthetic
from keras_binaural.metrics import HOP_SAMPLES, stft_numpy

flags.DEFINE_string("root", None, "A synthetic FAIR-Play-layout root (with metadata/).")
flags.DEFINE_string("split", "split1", "Split folder.")
flags.DEFINE_integer("columns", 16, "K, the column bins of the prior.")
flags.DEFINE_enum("assignment", "columns", ["columns", "bins"],
                  "How sounding objects share a bin: equally, or by their power in it.")
flags.mark_flag_as_required("root")
FLAGS = flags.FLAGS


def object_positions(metadata: dict, frames: int, columns: int) -> np.ndarray:
    """`[sounding objects, frames, K]`: each sounding object's box centre per STFT frame, shared
    linearly between the two nearest of the K column bins."""
    width = metadata["frame_size"][0]
    video_frame = np.arange(frames) * HOP_SAMPLES // SAMPLES_PER_FRAME
    sounding = [o for o in metadata["objects"] if o["sounding"]]
    weights = np.zeros((len(sounding), frames, columns))
    rows = np.arange(frames)
    for weight, obj in zip(weights, sounding):
        boxes = np.asarray(obj["boxes_xyxy"], np.float64)
        centre = (boxes[:, 0] + boxes[:, 2]) / 2
        position = np.clip(centre[np.minimum(video_frame, len(centre) - 1)] / width * columns
                           - 0.5, 0, columns - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, columns - 1)
        np.add.at(weight, (rows, low), 1 - (position - low))
        np.add.at(weight, (rows, high), position - low)
    return weights


def generator_settings(root: str) -> tuple[scenes.SceneSettings, int]:
    """The settings and seed `root`'s clips were made with (its dataset.json)."""
    with open(os.path.join(root, "dataset.json")) as file:
        description = json.load(file)
    # dataset.json files written before `distractor_classes` existed drew them from any class.
    settings = {"distractor_classes": "any", **description["settings"]}
    return scenes.SceneSettings(**settings), description["seed"]


def source_masks(clip: fairplay.Clip, generator: tuple[scenes.SceneSettings, int],
                 binaural: np.ndarray) -> np.ndarray:
    """`[sounding objects, frames, bins]`: each object's share of the mono's power per bin, from
    the clip rendered again (`generator`: `generator_settings`) with its separated sources."""
    settings, seed = generator
    rendered = synthetic.make_clip(int(clip.clip_id), settings, seed, sources=True)
    if np.abs(rendered.binaural - binaural).max() > 1e-4:
        raise SystemExit(f"{clip.audio_path}: rendering clip {clip.clip_id} again with its "
                         "dataset.json does not give its audio (another generator version?); "
                         "--assignment bins needs the very clips")
    power = np.stack([np.abs(stft_numpy(part.mean(axis=1))) ** 2 for part in rendered.sources])
    return power / np.maximum(power.sum(axis=0), 1e-12)


def clip_terms(clip: fairplay.Clip, root: str, columns: int, generator=None):
    """(M, D `[frames, bins]`, p `[frames, bins, K]`, sounding objects) of one clip; the
    objects share each bin by their power in it with `generator` (`generator_settings`),
    else equally."""
    binaural = load_audio(clip.audio_path, channels=2)  # [time, 2] at 16 kHz
    mono = stft_numpy((binaural[:, 0] + binaural[:, 1]) / 2)
    diff = stft_numpy((binaural[:, 0] - binaural[:, 1]) / 2)
    with open(os.path.join(root, "metadata", clip.clip_id + ".json")) as file:
        metadata = json.load(file)
    positions = object_positions(metadata, len(mono), columns)  # [n, frames, K]
    count = len(positions)
    if generator is not None:
        masks = source_masks(clip, generator, binaural)
    else:
        masks = np.full((count, *mono.shape), 1.0 / max(count, 1))
    share = np.einsum("ntk,ntf->tfk", positions, masks)
    return mono, diff, share, count


def main(argv):
    del argv
    k = FLAGS.columns
    generator = generator_settings(FLAGS.root) if FLAGS.assignment == "bins" else None
    terms = {subset: [clip_terms(clip, FLAGS.root, k, generator)
                      for clip in tqdm(fairplay.list_clips(FLAGS.root, subset, FLAGS.split),
                                       desc=subset, leave=False)]
             for subset in ("train", "test")}
    normal = np.zeros((257, k, k))
    cross = np.zeros((257, k), complex)
    for mono, diff, share, _ in terms["train"]:
        normal += np.einsum("tfk,tfj,tf->fkj", share, share, np.abs(mono) ** 2)
        cross += np.einsum("tfk,tf->fk", share, np.conj(mono) * diff)
    response = np.linalg.solve(normal + 1e-6 * np.eye(k), cross[..., None])[..., 0]  # [f, K]
    print(f"{FLAGS.root}: R from {len(terms['train'])} train clips, K = {k}, sounding objects "
          f"share the bins by {FLAGS.assignment}")
    print("| sounding objects | test clips | prior with the true positions vs mono-mono (dB) |")
    print("|---|---:|---:|")
    for count in (1, 2, 3, None):
        chosen = [t for t in terms["test"] if count is None or t[3] == count]
        if not chosen:
            continue
        error = sum(np.sum(np.abs(d - m * np.einsum("tfk,fk->tf", p, response)) ** 2)
                    for m, d, p, _ in chosen)
        total = sum(np.sum(np.abs(d) ** 2) for _, d, _, _ in chosen)
        print(f"| {count or 'all'} | {len(chosen)} | {-10 * np.log10(error / total):+.2f} |")


if __name__ == "__main__":
    app.run(main)
