"""Scores predicted binaural WAVs against ground truth with the FAIR-Play metrics (SPEC section 6).

Usage:
  python tools/evaluate_wavs.py --pred_dir PRED --gt_dir GT --output_json results.json \
      [--output_md results.md] [--normalize]

Every audio file under PRED is a clip named by its path relative to PRED; its ground truth is the
file with the same relative path under GT (extra ground-truth files are ignored; a prediction
without one is an error). Both must be 2-channel (left, right). For folders that each hold one clip
with fixed file names, name them instead; e.g. the FAIR-Play demo clips:
  python tools/evaluate_wavs.py --pred_dir ../shared/data/fairplay_demo \
      --gt_dir ../shared/data/fairplay_demo --pred_name predicted_binaural.wav \
      --gt_name input_binaural.wav --output_json demo.json --output_md demo.md

Each clip is scored for the prediction and the mono-mono baseline (L = R = (L + R) / 2 of the ground
truth). The JSON holds {"clips": {name: {"pred": {...}, "mono_mono": {...}}}, "mean": {...}} with the
keys stft, env, wav, amp, pha, snr. The output paths (folder, permission, space) and all input
files are checked before any scoring; on bad input the tool prints one line naming the file or
flag and the problem, exits with status 1 and writes nothing. The two reports are written
together or not at all (a full disk: one line, neither written).
The work is done by `keras_binaural.evaluation.wav_folders.run_evaluation`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts: it reads these once

from absl import app, flags, logging

from keras_binaural.evaluation import EvaluationError, wav_folders

flags.DEFINE_string("pred_dir", None, "Folder of predicted binaural audio.")
flags.DEFINE_string("gt_dir", None, "Folder of ground-truth binaural audio.")
flags.DEFINE_string("output_json", None, "Where to write the scores as JSON.")
flags.DEFINE_string("output_md", None, "Where to write the scores as a Markdown table (optional).")
flags.DEFINE_bool("normalize", False, "Divide each signal by its peak |sample| before scoring.")
flags.DEFINE_string(
    "pred_name", None, "Clip-folder layout: the prediction's file name inside each clip folder."
)
flags.DEFINE_string(
    "gt_name", None, "Clip-folder layout: the ground truth's file name (default: --pred_name)."
)
flags.mark_flags_as_required(["pred_dir", "gt_dir", "output_json"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        results = wav_folders.run_evaluation(
            FLAGS.pred_dir,
            FLAGS.gt_dir,
            FLAGS.output_json,
            FLAGS.output_md,
            normalize=FLAGS.normalize,
            pred_name=FLAGS.pred_name,
            gt_name=FLAGS.gt_name,
        )
    except EvaluationError as error:
        raise SystemExit(f"evaluate_wavs: error: {error}")
    mean = results["mean"]
    logging.info("%d clips scored; written to %s", len(results["clips"]), FLAGS.output_json)
    for system in wav_folders.SYSTEMS:
        print(system, " ".join(f"{name}={value:.4f}" for name, value in mean[system].items()))


if __name__ == "__main__":
    app.run(main)
