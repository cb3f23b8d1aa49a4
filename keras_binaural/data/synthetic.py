"""Synthetic binaural scenes in the FAIR-Play layout (SPEC section 2): sample, render, draw, write.

A clip is a scene of 1..`max_sources` sounding objects (distinct classes) and 0..`distractors`
silent objects (by default of classes no sounding object of the clip has), seen by a
camera and heard by a measured head (HRIRs, `keras_binaural.data.hrtf`). What a scene is:
`keras_binaural.data.scenes`; how it becomes sound and pictures: `keras_binaural.data.rendering`.
In short:

- **Sound:** each sounding object plays a phrase of its class (`keras_binaural.data.sources`),
  convolved with the HRIR pair of its azimuth. A moving object's azimuth follows a raised-cosine
  path from a start to an end azimuth over the clip; its sound is rendered block-wise
  (`spatialize`: 50 %-overlapping periodic-Hann blocks of 2 x 256 samples, each convolved with
  the HRIR of the azimuth at the block's centre and overlap-added, so the filters cross-fade
  every 16 ms). A faint diffuse noise floor (independent in the two ears, `noise_db` below
  one source's level) is added, then the mix is scaled to a peak of `peak` (0.9) and rounded to
  16-bit PCM values, exactly as the WAV file holds them.
- **Picture:** 10 frames per second; frame k (1-based, `frames/<id>.mp4/%06d.png`) shows the
  scene at the centre of [(k - 1) / 10, k / 10) s, matching SPEC's frame index for a chunk.
  Each class has its own shape, colour and glyph (`class_look`), drawn as a flat colour at
  x = camera.x_from_azimuth(azimuth) on a plain room background (wall, floor, soft texture).
  Elevation is 0 for sound; objects stand around the horizon (image centre row) with a small
  vertical jitter that is visual only.
- **Camera** (`Camera`, written into every clip's metadata): `pinhole:FOV` maps azimuth to
  x = cx - f tan(azimuth) with f = cx / tan(FOV / 2); `equirect` maps the full circle linearly,
  x = cx - azimuth / 360 * width. +azimuth is left (SOFA), so a source left of the image centre
  is louder and earlier in the left ear.

Files per clip `<id>` (six digits, from 000001), written together (`files.transaction`:
temporary names, renamed when all are complete, the frames folder as a whole), metadata last, so
a clip whose `metadata/<id>.json` exists is complete and a rerun skips it; a rerun also removes
the temporaries a killed run left, and the output folder is checked (permission, and room for
the clips' WAVs at least) before any clip is made:
  binaural_audios/<id>.wav   16 kHz, 16-bit PCM, channels (left, right)
  frames/<id>.mp4/000001.png ...  the frames, lossless, exactly as drawn
  videos/<id>.mp4            the frames (H.264, 10 fps) with the **mono** mix (L + R) / 2 as its
                             audio track (AAC, 16 kHz): what a user's own video looks like
  metadata/<id>.json         scene description (`clip_metadata` documents the schema)
and for the dataset: `dataset.json` (the settings; a rerun with other settings is refused),
`splits/{train,val,test}.txt` (clip ids of split 1) and `splits/splitK/{train,val,test}.{txt,h5}`
(the h5 files hold a dataset `audio` of absolute wav paths, as FAIR-Play's).

Determinism: everything is drawn from `numpy.random.SeedSequence([seed, clip_index])`, so a clip
does not depend on the number of workers or on which clips were already made. The same seed
gives byte-identical WAV, PNG, JSON, text, h5 (written without timestamps) and mp4 files
(x264 runs single-threaded, whose output does not depend on the machine's core count, and the
frames are converted to yuv420p before `encode`, whose implicit conversion in PyAV gave
different bytes from run to run; the mp4 bytes still depend on the FFmpeg/x264 build that
PyAV ships).

Not modelled: room acoustics (the HRIRs are anechoic, so the scenes are dry), source distance
and elevation (all sources are on the horizontal plane at the HRIR set's distance), occlusion
in sound. The PNG frames are the exact drawings while the mp4 is H.264-compressed, as a user's
video would be.

Example:
  settings = SceneSettings(clip_seconds=10.0, camera="pinhole:90", max_sources=2)
  clip = make_clip(1, settings, seed=0)      # in memory: clip.binaural [160000, 2], clip.frames
  make_dataset("data/synthetic", settings, num_clips=100, seed=0, workers=2)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import multiprocessing
import os
from collections.abc import Sequence

import h5py
import numpy as np
from PIL import Image

from keras_binaural import files
from keras_binaural.audio.io import encode_wav
from keras_binaural.conventions import FRAMES_PER_SECOND, SAMPLE_RATE_HZ
from keras_binaural.data.hrtf import HrirSet, load_hrirs
from keras_binaural.data.rendering import render_audio, render_frames
from keras_binaural.data.scenes import (
    SceneError,
    SceneObject,
    SceneSettings,
    class_look,
    sample_scene,
)
from keras_binaural.data.sources import SourceBank

# Bumped whenever the metadata schema or the rendering changes (the same seed then gives other
# files); a rerun into a folder made by another version is refused (see make_dataset).
METADATA_VERSION = 1
SPLIT_NAMES = ("train", "val", "test")


# === Clips =======================================================================================


@dataclasses.dataclass
class RenderedClip:
    """One rendered clip in memory.

    Attributes:
      clip_id: six-digit id, e.g. "000001".
      binaural: `[num_samples, 2]` float32 (left, right), on the 16-bit PCM grid.
      frames: `[num_frames, height, width, 3]` uint8.
      metadata: the JSON-able description (`clip_metadata`).
      sources: None, or with `make_clip(..., sources=True)` `[num_sounding, num_samples, 2]`
        float32, each sounding object's binaural part of the mix (in the metadata's order; not
        written to disk: for oracles that need the separated sources).
    """

    clip_id: str
    binaural: np.ndarray
    frames: np.ndarray
    metadata: dict
    sources: np.ndarray | None = None

    @property
    def mono(self) -> np.ndarray:
        """`[num_samples]` float32 m = (L + R) / 2 (SPEC section 1): the video's audio track."""
        return ((self.binaural[:, 0].astype(np.float64) + self.binaural[:, 1]) / 2.0).astype(
            np.float32
        )


def clip_id(index: int) -> str:
    """FAIR-Play style id of clip `index` (1-based): 1 -> "000001"."""
    return f"{index:06d}"


@functools.lru_cache(maxsize=4)
def _source_bank(sources_dir: str | None, sample_rate_hz: int) -> SourceBank:
    return SourceBank(sources_dir, sample_rate_hz)


def _round(values, digits: int = 4):
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def clip_metadata(
    index: int,
    seed: int,
    settings: SceneSettings,
    objects: Sequence[SceneObject],
    boxes: Sequence[Sequence[Sequence[int]]],
    azimuths: Sequence[np.ndarray],
    hrirs: HrirSet,
    gain_db: float,
) -> dict:
    """The metadata JSON of one clip (schema version 1).

    Top level: id, index, seed, version, sample_rate_hz, clip_seconds, num_samples,
    frame_rate_hz, num_frames, frame_size [width, height], frame_times_s [num_frames] (the time
    each frame shows), camera (`Camera.to_json`), hrtf {name, distance_m}, peak, gain_db (the
    normalisation applied to the mix), noise_db, files {binaural, video, frames}, and objects:
    a list (sounding ones first) of
      class: str; sounding: bool; moving: bool;
      azimuth_deg: a number (static) or a list with one azimuth per frame (moving), +left;
      start_azimuth_deg, end_azimuth_deg: the ends of the raised-cosine path (equal if static);
      boxes_xyxy: one [x0, y0, x1, y1] per frame, integer pixel edges (x1, y1 exclusive);
      gain_db: its level in the mix before normalisation (0 for silent objects);
      look: {shape, color [r, g, b], glyph}.
    """
    identifier = clip_id(index)
    described = []
    for item, item_boxes, track in zip(objects, boxes, azimuths):
        look = class_look(item.class_name)
        described.append(
            {
                "class": item.class_name,
                "sounding": bool(item.sounding),
                "moving": bool(item.moving),
                "azimuth_deg": _round(track) if item.moving else round(item.start_azimuth_deg, 4),
                "start_azimuth_deg": round(item.start_azimuth_deg, 4),
                "end_azimuth_deg": round(item.end_azimuth_deg, 4),
                "boxes_xyxy": [list(map(int, box)) for box in item_boxes],
                "gain_db": round(item.gain_db, 3),
                "look": {"shape": look.shape, "color": list(look.color), "glyph": look.glyph},
            }
        )
    return {
        "id": identifier,
        "index": index,
        "seed": seed,
        "version": METADATA_VERSION,
        "sample_rate_hz": settings.sample_rate_hz,
        "clip_seconds": settings.clip_seconds,
        "num_samples": settings.num_samples,
        "frame_rate_hz": FRAMES_PER_SECOND,
        "num_frames": settings.num_frames,
        "frame_size": list(settings.frame_size),
        "frame_times_s": _round(settings.frame_times_s()),
        "camera": settings.camera_model().to_json(),
        "hrtf": {
            "name": settings.hrtf,
            "distance_m": None if math.isnan(hrirs.distance_m) else hrirs.distance_m,
        },
        "peak": settings.peak,
        "gain_db": round(gain_db, 3),
        "noise_db": settings.noise_db,
        "files": {
            "binaural": f"binaural_audios/{identifier}.wav",
            "video": f"videos/{identifier}.mp4",
            "frames": f"frames/{identifier}.mp4",
        },
        "objects": described,
    }


def make_clip(index: int, settings: SceneSettings, seed: int = 0,
              sources: bool = False) -> RenderedClip:
    """Samples and renders clip `index` (1-based) of the dataset with `seed`, in memory.

    Depends only on (seed, index, settings): `SeedSequence([seed, index])` feeds separate
    streams for the scene, the sound and the picture. With `sources`, the clip also holds each
    sounding object's part of the mix (`RenderedClip.sources`).
    """
    hrirs = load_hrirs(settings.hrtf, settings.sample_rate_hz)
    bank = _source_bank(settings.sources_dir, settings.sample_rate_hz)
    scene_seed, audio_seed, picture_seed = np.random.SeedSequence([seed, index]).spawn(3)
    objects = sample_scene(np.random.default_rng(scene_seed), settings, bank.classes)
    binaural, gain_db, *parts = render_audio(
        objects, settings, np.random.default_rng(audio_seed), hrirs, bank, with_sources=sources
    )
    frames, boxes, azimuths = render_frames(objects, settings, np.random.default_rng(picture_seed))
    metadata = clip_metadata(index, seed, settings, objects, boxes, azimuths, hrirs, gain_db)
    return RenderedClip(clip_id(index), binaural, frames, metadata, *parts)


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    mono: np.ndarray,
    frame_rate_hz: int = FRAMES_PER_SECOND,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> None:
    """Writes an mp4: H.264 video (yuv420p, CRF 18, single-threaded x264) and AAC mono audio.

    Not atomic by itself (`write_clip` wraps it). Args: frames `[num_frames, height, width, 3]`
    uint8 RGB; mono `[time]` float in [-1, 1] at `sample_rate_hz`. The encoder settings, and why
    they make the bytes deterministic, are in `keras_binaural.data.video`.
    """
    # Imported here so that the rest of the module needs no FFmpeg (PyAV).
    from keras_binaural.data import video

    mono = np.asarray(mono, dtype=np.float32)[:, None]
    video.write_video(path, frames, mono, frame_rate_hz, sample_rate_hz, container_format="mp4")


def clip_paths(output_dir: str | os.PathLike, identifier: str) -> dict[str, str]:
    """Paths of one clip's files: binaural, frames (a folder), video, metadata."""
    output_dir = os.fspath(output_dir)
    return {
        "binaural": os.path.join(output_dir, "binaural_audios", f"{identifier}.wav"),
        "frames": os.path.join(output_dir, "frames", f"{identifier}.mp4"),
        "video": os.path.join(output_dir, "videos", f"{identifier}.mp4"),
        "metadata": os.path.join(output_dir, "metadata", f"{identifier}.json"),
    }


def clip_finished(output_dir: str | os.PathLike, identifier: str) -> bool:
    """A clip is finished when its metadata (always written last) exists."""
    return os.path.isfile(clip_paths(output_dir, identifier)["metadata"])


def write_clip(
    output_dir: str | os.PathLike, clip: RenderedClip, sample_rate_hz: int = SAMPLE_RATE_HZ
) -> None:
    """Writes one clip's files in one `files.transaction`, the metadata renamed last (see the
    module docstring)."""
    paths = clip_paths(output_dir, clip.clip_id)
    with files.transaction() as outputs:
        with open(outputs.file(paths["binaural"]), "wb") as stream:
            stream.write(encode_wav(clip.binaural, sample_rate_hz, path=paths["binaural"]))
        frames_dir = outputs.directory(paths["frames"])
        for index, frame in enumerate(clip.frames):
            Image.fromarray(frame).save(
                os.path.join(frames_dir, f"{index + 1:06d}.png"), format="PNG"
            )
        write_video(outputs.file(paths["video"]), clip.frames, clip.mono, FRAMES_PER_SECOND,
                    sample_rate_hz)
        with open(outputs.file(paths["metadata"]), "w", encoding="utf-8") as stream:
            stream.write(json.dumps(clip.metadata, indent=1) + "\n")  # as files.write_json


def generate_clip(
    output_dir: str | os.PathLike, index: int, settings: SceneSettings, seed: int = 0
) -> bool:
    """Makes and writes clip `index` unless it is finished already. Returns True if it was made."""
    if clip_finished(output_dir, clip_id(index)):
        return False
    write_clip(output_dir, make_clip(index, settings, seed), settings.sample_rate_hz)
    return True


# === Dataset =====================================================================================


def assign_splits(
    ids: Sequence[str],
    seed: int,
    split: int = 1,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> dict[str, list[str]]:
    """Deterministic train/val/test split of clip ids (by clip), numbered `split` (1, 2, ...).

    Each split is its own shuffle from (seed, split). Validation and test each get
    round(fraction x n) clips, at least one each when there are three or more clips.

    Returns:
      {"train": [...], "val": [...], "test": [...]}, each sorted.
    """
    ids = sorted(ids)
    count = len(ids)
    order = np.random.default_rng(np.random.SeedSequence([seed, 7919, split])).permutation(count)
    num_val = round(fractions[1] * count)
    num_test = round(fractions[2] * count)
    if count >= 3:
        num_val, num_test = max(1, num_val), max(1, num_test)
    shuffled = [ids[i] for i in order]
    return {
        "val": sorted(shuffled[:num_val]),
        "test": sorted(shuffled[num_val : num_val + num_test]),
        "train": sorted(shuffled[num_val + num_test :]),
    }


def write_splits(
    output_dir: str | os.PathLike, ids: Sequence[str], seed: int, num_splits: int = 1
) -> None:
    """Writes `splits/splitK/{train,val,test}.{txt,h5}` for K = 1..num_splits, and split 1 again
    as `splits/{train,val,test}.txt`. The h5 files hold a dataset `audio`: absolute wav paths as
    bytes, like FAIR-Play's (written without timestamps, so they are byte-identical on reruns).
    """
    output_dir = os.path.abspath(os.fspath(output_dir))
    for split in range(1, num_splits + 1):
        parts = assign_splits(ids, seed, split)
        folder = os.path.join(output_dir, "splits", f"split{split}")
        for name in SPLIT_NAMES:
            text = "".join(f"{identifier}\n" for identifier in parts[name])
            files.write_text(os.path.join(folder, f"{name}.txt"), text)
            if split == 1:
                files.write_text(os.path.join(output_dir, "splits", f"{name}.txt"), text)
            paths = [
                clip_paths(output_dir, identifier)["binaural"].encode("utf-8")
                for identifier in parts[name]
            ]
            with (
                files.atomic_file(os.path.join(folder, f"{name}.h5")) as temporary,
                h5py.File(temporary, "w", track_order=False) as handle,
            ):
                handle.create_dataset("audio", data=np.array(paths, dtype=bytes), track_times=False)


def dataset_description(settings: SceneSettings, seed: int) -> dict:
    """What `dataset.json` holds: the generator settings, the seed, the classes and their looks."""
    bank = _source_bank(settings.sources_dir, settings.sample_rate_hz)
    return {
        "generator": "keras_binaural.data.synthetic",
        "version": METADATA_VERSION,
        "seed": seed,
        "settings": settings.to_json(),
        "classes": {
            name: {
                "look": dataclasses.asdict(class_look(name)),
                "source": "recordings" if name in bank.recordings else "synthesizer",
            }
            for name in bank.classes
        },
    }


def _check_or_write_description(output_dir: str, description: dict) -> None:
    path = os.path.join(output_dir, "dataset.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as stream:
            existing = json.load(stream)
        expected = json.loads(json.dumps(description))
        if existing != expected:
            changed = sorted(
                key
                for key in set(existing.get("settings", {})) | set(expected["settings"])
                if existing.get("settings", {}).get(key) != expected["settings"].get(key)
            )
            for key in ("classes", "seed", "version", "generator"):
                if existing.get(key) != expected[key]:
                    changed.insert(
                        0, f"generator version {existing.get(key)}" if key == "version" else key
                    )
            raise SceneError(
                f"{output_dir}: holds a dataset made with other settings (differs in: "
                f"{', '.join(changed)}); use another --output_dir or the same settings"
            )
        return
    files.write_json(path, description)


def remove_temporaries(output_dir: str, num_splits: int = 1) -> int:
    """Removes the temporary files and folders a killed run left in the dataset's folders
    (`files.remove_temporaries`); returns the count."""
    folders = [output_dir, *(os.path.dirname(path) for path in clip_paths(output_dir, "x").values()),
               os.path.join(output_dir, "splits"),
               *(os.path.join(output_dir, "splits", f"split{k}") for k in range(1, num_splits + 1))]
    return sum(files.remove_temporaries(folder) for folder in folders)


def _worker(task: tuple[str, int, SceneSettings, int]) -> tuple[int, bool]:
    output_dir, index, settings, seed = task
    return index, generate_clip(output_dir, index, settings, seed)


def make_dataset(
    output_dir: str | os.PathLike,
    settings: SceneSettings,
    num_clips: int,
    seed: int = 0,
    workers: int = 1,
    num_splits: int = 1,
    progress: bool = False,
) -> dict:
    """Writes (or completes) a synthetic dataset of clips 1..num_clips in `output_dir`.

    Finished clips are skipped, so an interrupted run can simply be rerun; a rerun with other
    settings or another seed is refused (`dataset.json`). `num_clips` may grow on a rerun
    (clips do not depend on it; the splits are rewritten).

    Args:
      workers: processes rendering clips in parallel (1 renders in this process).
      num_splits: how many train/val/test splits to write (`splits/splitK`).
      progress: show a tqdm progress bar.

    Returns:
      {"made": clips rendered now, "skipped": clips already finished, "ids": all clip ids}.
    """
    if num_clips < 1:
        raise SceneError(f"num_clips must be at least 1, got {num_clips}")
    if workers < 1:
        raise SceneError(f"workers must be at least 1, got {workers}")
    output_dir = os.path.abspath(os.fspath(output_dir))
    load_hrirs(settings.hrtf, settings.sample_rate_hz)  # fail early (and warm the cache to fork)
    classes = _source_bank(settings.sources_dir, settings.sample_rate_hz).classes
    if settings.max_sources > len(classes):
        raise SceneError(
            f"max_sources={settings.max_sources} but only {len(classes)} classes exist"
        )
    ids = [clip_id(index) for index in range(1, num_clips + 1)]
    todo = [
        index for index in range(1, num_clips + 1) if not clip_finished(output_dir, clip_id(index))
    ]
    # The WAVs are knowable (16-bit stereo); frames and videos come on top.
    wav_bytes = 44 + 4 * settings.num_samples
    files.check_output(output_dir, "--output_dir", folder=True, error=SceneError,
                       needed_bytes=len(todo) * wav_bytes)
    os.makedirs(output_dir, exist_ok=True)
    _check_or_write_description(output_dir, dataset_description(settings, seed))
    remove_temporaries(output_dir, num_splits)
    skipped = num_clips - len(todo)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=num_clips, initial=skipped, unit="clip", desc="clips")
    tasks = [(output_dir, index, settings, seed) for index in todo]
    made, pool = 0, None
    try:
        if workers == 1 or len(tasks) <= 1:
            results = map(_worker, tasks)
        else:
            pool = multiprocessing.get_context().Pool(min(workers, len(tasks)))
            results = pool.imap_unordered(_worker, tasks)
        for _, was_made in results:
            made += int(was_made)
            if bar is not None:
                bar.update(1)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.terminate()
    write_splits(output_dir, ids, seed, num_splits)
    return {"made": made, "skipped": skipped, "ids": ids}
