r"""Evaluates trained models on a dataset split: supp. Table 1 and Table 2, and optional plots.

Usage:
  python tools/evaluate.py --model runs/demo --plots
  python tools/evaluate.py --model runs/demo --baseline audio_only=runs/demo_audio_only \
      --baseline baseline=runs/demo_baseline/model.keras --output_dir runs/demo/eval --plots
  python tools/evaluate.py --model runs/paper/model.keras --root /data/fairplay16k \
      --split split1 --subset test --sampler fast

--model and each --baseline PATH are a .keras file or a tools/train.py workdir (its model.keras).
The dataset (--root, --split) and the evaluation settings (--sampler, --seed, --max_clips,
--normalize) default to the model's run config (config.json beside the .keras file); each model's
frames are prepared as in its own training run.

Table 1 (localization distance and accuracy over every 0.1 s window, supp. Eq. 10-11, each with
its 95 % interval when whole clips are drawn again, and the pointing game on synthetic data) has a
row per model that holds a localizer. Table 2 (STFT, ENV,
WAV, AMP, PHA, SNR on whole clips, supp. Eq. 4-9) has the mono-mono row (L = R = (L + R) / 2), then
a row per model that generates (fast 6-step sampler by default).

Writes to --output_dir (default: <model folder>/eval_<subset>): results.json, results.md and, with
--plots, plots/*.png (correlation matrices, localization maps, differential spectrograms,
waveform envelopes: supp. Fig. 1-5 analogues), all together or nothing (a full disk while
writing: one line, nothing written; a killed run's temporaries are removed by the next). Flags,
model files, the output folder and the dataset (every WAV header and PNG signature) are checked
before anything is computed; a problem prints one line naming the flag or file, exits with
status 1 and writes nothing. The work is done by
`keras_binaural.evaluation.trained_runs.run`.
"""

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("generate")  # before TensorFlow starts: it reads these once

# tensorflow_hub (imported by keras_binaural.models) warns about pkg_resources on every start.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

from absl import app, flags

from keras_binaural import cli, files
from keras_binaural.conventions import SAMPLERS
from keras_binaural.evaluation import EvaluationError, trained_runs

_MODEL = flags.DEFINE_string("model", None, "A .keras model or a tools/train.py workdir.")
_BASELINE = flags.DEFINE_multi_string(
    "baseline", [], "NAME=PATH of a model to compare with (repeatable), e.g. "
    "audio_only=runs/demo_audio_only.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                  "Output folder (default: <model folder>/eval_<subset>).")
_ROOT = flags.DEFINE_string("root", None, "Dataset root (default: the run config's data.root).")
_SPLIT = flags.DEFINE_string("split", None, "Split folder (default: the run config's).")
_SUBSET = flags.DEFINE_enum("subset", "test", ["train", "val", "test"], "Which clips.")
_SAMPLER = flags.DEFINE_enum("sampler", None, list(SAMPLERS),
                             "Diffusion sampler (default: the run config's eval.sampler, fast).")
_SEED = flags.DEFINE_integer("seed", None, "Seed of the sampler and the negative pairs.")
_MAX_CLIPS = flags.DEFINE_integer("max_clips", None, "Score only the first N clips (0: all).")
_NORMALIZE = flags.DEFINE_bool("normalize", None, "Peak-normalise signals before the metrics.")
_PLOTS = flags.DEFINE_bool("plots", False, "Draw the PNGs (supp. Fig. 1-5 analogues).")
_NAME = flags.DEFINE_string("name", None, "The model's name in the tables (default: the "
                            "config's name, e.g. clup).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not _MODEL.value:
        raise SystemExit("evaluate: error: --model is required (a .keras file or a workdir)")
    try:
        results = trained_runs.run(
            _MODEL.value, output_dir=_OUTPUT_DIR.value, baselines=_BASELINE.value,
            root=_ROOT.value, split=_SPLIT.value, subset=_SUBSET.value, sampler=_SAMPLER.value,
            seed=_SEED.value, max_clips=_MAX_CLIPS.value, normalize=_NORMALIZE.value,
            plots=_PLOTS.value, name=_NAME.value, log=print)
    except (EvaluationError, files.OutputError) as error:
        raise SystemExit(f"evaluate: error: {error}")
    print(trained_runs.format_markdown(results))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("evaluate"))
