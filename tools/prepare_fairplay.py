"""Prepares a downloaded FAIR-Play for keras-binaural: 10-fps frames, 16 kHz audio, splits.

Usage:
  python tools/prepare_fairplay.py --root /data/FAIR-Play [--output_dir /data/fairplay_prepared] \
      [--frame_size 480x240|original] [--five_splits_dir /data/new_splits]

Extracts frames from videos/*.mp4 with PyAV into OUT/frames/<id>.mp4/000001.png ... (the step the
original dataset leaves to its users), writes 16 kHz copies of the WAVs when OUT differs from ROOT,
rewrites the h5 splits with local paths (plus a .txt list of ids each), and copies the 5-split
text lists. Resumable: rerun the same command after an interruption. A clip that cannot be read is
skipped with its name logged, the failures are listed at the end, and the exit status is 1.
The work is done by `keras_binaural.data.prepare.prepare_fairplay`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts: it reads these once

from absl import app, flags

from keras_binaural import cli, files
from keras_binaural.data import fairplay, prepare

flags.DEFINE_string("root", None, "The downloaded FAIR-Play folder (videos/, binaural_audios/, splits/).")
flags.DEFINE_string("output_dir", None, "Where to write the prepared dataset (default: --root).")
flags.DEFINE_string("frame_size", "480x240", "WIDTHxHEIGHT of the frames, or 'original'.")
flags.DEFINE_string("five_splits_dir", None, "Folder of <split>/{train,val,test}.txt id lists.")
flags.mark_flag_as_required("root")
FLAGS = flags.FLAGS


def _frame_size(text):
    if text == "original":
        return None
    try:
        return cli.parse_size_wh(text, example="480x240, or 'original'")
    except ValueError as error:
        raise SystemExit(f"prepare_fairplay: error: {error}") from None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    size = _frame_size(FLAGS.frame_size)
    for flag in ("root", "five_splits_dir"):
        value = getattr(FLAGS, flag)
        if value and not os.path.isdir(value):
            raise SystemExit(f"prepare_fairplay: error: --{flag}={value}: no such folder")
    try:
        report = prepare.prepare_fairplay(FLAGS.root, FLAGS.output_dir, size, FLAGS.five_splits_dir)
    except (fairplay.DatasetError, files.OutputError) as error:
        raise SystemExit(f"prepare_fairplay: error: {error}")
    print(f"{report.extracted} clips prepared, {report.skipped} already done, "
          f"{len(report.failures)} failed")
    if report.failures:
        raise SystemExit("prepare_fairplay: failed clips:\n  " + "\n  ".join(report.failures))


if __name__ == "__main__":
    app.run(main)
