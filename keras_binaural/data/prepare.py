"""Prepares a downloaded FAIR-Play for the reader: frames, 16 kHz audio, splits.

The original dataset ships `videos/*.mp4`, `binaural_audios/*.wav` and `splits/splitK/*.h5`
(h5 dataset `audio`: absolute wav paths from the authors' machine), but no frames. This module
  - extracts 10-fps PNG frames from every video into `OUT/frames/<id>.mp4/000001.png ...`,
  - writes 16 kHz copies of the binaural WAVs into `OUT/binaural_audios/` when OUT is not the
    dataset itself (in place, the WAVs are left as they are: the reader resamples on the fly),
  - rewrites each h5 split with paths into OUT and writes it as a text list of ids beside it,
  - copies the 5-split protocol's text lists (`DIR/<name>/{train,val,test}.txt`, one id or file
    name a line) into `OUT/splits/<name>/`.
The output folder is checked before any work (`files.check_output`). Every file and frame
folder is written atomically, and a rerun skips what is done and removes the temporaries a killed
run left: an interrupted run is resumed by running it again. A full disk stops the run with a
`files.OutputError` naming the file (the clips done so far are kept). A clip whose video or audio cannot be read is
skipped with a logged error, and all failures are listed at the end.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re

import h5py
import numpy as np
from absl import logging
from tqdm import tqdm

from keras_binaural import files
from keras_binaural.audio import io
from keras_binaural.data import fairplay, video

SUBSETS = ("train", "val", "test")


@dataclasses.dataclass
class PrepareReport:
    """What `prepare_fairplay` did: counts of clips done now, done before, and failures."""

    extracted: int = 0
    skipped: int = 0
    failures: list[str] = dataclasses.field(default_factory=list)


def prepare_fairplay(
    root: str,
    output_dir: str | None = None,
    frame_size_wh: tuple[int, int] | None = (480, 240),
    five_splits_dir: str | None = None,
    progress: bool = True,
) -> PrepareReport:
    """Prepares FAIR-Play at `root` into `output_dir` (default: `root` itself).

    Args:
      frame_size_wh: (width, height) of the written frames; (480, 240) is the size the FAIR-Play
        training code resizes to, and keeps PNG decoding fast. None keeps the video's size.
    """
    output_dir = output_dir or root
    videos = sorted(glob.glob(os.path.join(root, "videos", "*.mp4")))
    if not videos:
        raise fairplay.DatasetError(f"{root}: no videos/*.mp4 (is this a FAIR-Play download?)")
    files.check_output(output_dir, "--output_dir", folder=True, error=fairplay.DatasetError)
    copy_audio = os.path.abspath(output_dir) != os.path.abspath(root)
    for folder in ("frames", "binaural_audios", *glob.glob(os.path.join(output_dir, "splits", "*"))):
        files.remove_temporaries(os.path.join(output_dir, folder))  # a killed run's leftovers
    report = PrepareReport()
    for video_path in tqdm(videos, desc="frames", unit="clip", disable=not progress):
        clip_id = os.path.splitext(os.path.basename(video_path))[0]
        try:
            done = _prepare_clip(root, output_dir, clip_id, video_path, frame_size_wh, copy_audio)
        except (video.VideoError, io.AudioError) as error:
            logging.error("skipping clip %s: %s", clip_id, error)
            report.failures.append(str(error))
            continue
        report.extracted += done
        report.skipped += not done
    convert_h5_splits(root, output_dir)
    if five_splits_dir:
        copy_text_splits(five_splits_dir, output_dir)
    return report


def _prepare_clip(root, output_dir, clip_id, video_path, frame_size_wh, copy_audio) -> bool:
    """Returns True if anything was written, False if the clip was already done."""
    wrote = False
    if copy_audio:
        target = os.path.join(output_dir, "binaural_audios", f"{clip_id}.wav")
        if not os.path.exists(target):
            source = os.path.join(root, "binaural_audios", f"{clip_id}.wav")
            io.write_wav(target, io.load_audio(source, channels=2))
            wrote = True
    frames_dir = os.path.join(output_dir, "frames", f"{clip_id}.mp4")
    if not os.path.isdir(frames_dir):
        video.extract_frames(video_path, frames_dir, size_wh=frame_size_wh)
        wrote = True
    return wrote


def convert_h5_splits(root: str, output_dir: str) -> list[str]:
    """Rewrites every `splits/*/<subset>.h5` to point into `output_dir`, with a `.txt` of ids.

    The authors' h5 files hold absolute paths of their machine; only the file names are kept.
    Returns the names of the splits converted.
    """
    names = []
    for source in sorted(glob.glob(os.path.join(root, "splits", "*", "*.h5"))):
        split = os.path.basename(os.path.dirname(source))
        subset = os.path.splitext(os.path.basename(source))[0]
        ids = fairplay.split_ids(root, subset, split)
        folder = os.path.join(output_dir, "splits", split)
        paths = [os.path.abspath(os.path.join(output_dir, "binaural_audios", f"{i}.wav")) for i in ids]
        with files.atomic_file(os.path.join(folder, f"{subset}.h5")) as temporary, \
                h5py.File(temporary, "w") as file:
            file.create_dataset("audio", data=np.array([p.encode() for p in paths]))
        files.write_text(os.path.join(folder, f"{subset}.txt"), "\n".join(ids) + "\n")
        names.append(split)
    return sorted(set(names))


def copy_text_splits(splits_dir: str, output_dir: str) -> list[str]:
    """Copies text split lists `splits_dir/<name>/<subset>.txt` into `output_dir/splits/<name>/`.

    Lines may be ids (`000001`) or file names (`000001.wav`, `.../000001.mp4`); ids are written.
    """
    names = []
    for source in sorted(glob.glob(os.path.join(splits_dir, "*", "*.txt"))):
        split = os.path.basename(os.path.dirname(source))
        subset = os.path.splitext(os.path.basename(source))[0]
        if subset not in SUBSETS:
            continue
        with open(source) as lines:
            ids = [re.sub(r"\.(wav|mp4)$", "", os.path.basename(line.strip()))
                   for line in lines if line.strip()]
        files.write_text(os.path.join(output_dir, "splits", split, f"{subset}.txt"),
                         "\n".join(ids) + "\n")
        names.append(split)
    if not names:
        raise fairplay.DatasetError(f"{splits_dir}: no <split>/{{train,val,test}}.txt lists")
    return sorted(set(names))
