r"""Trains a model of a config (configs/clup.py) in a workdir, resuming where a run stopped.

Usage:
  python tools/train.py --config configs/clup.py:demo --workdir runs/demo
  python tools/train.py --config configs/clup.py:demo,audio_only --workdir runs/demo_audio_only
  python tools/train.py --config configs/clup.py:paper --workdir runs/paper \
      --config.data.root /data/fairplay16k --strategy mirrored
  python tools/train.py --config configs/clup.py:tiny --workdir /tmp/tiny \
      --strategy mirrored --cpu_devices 2          # data parallel over 2 logical CPU devices
  tensorboard --logdir runs/demo

The variant after the colon is SIZE[,ABLATION] (configs/clup.py lists them); any config value can
be overridden (`--config.train.epochs 20`); a key that does not exist is an error.

Writes to --workdir: config.json, checkpoints/epoch_NNNN.weights.h5 (one per epoch, the newest
`train.keep_checkpoints` kept) and checkpoints/state.json, history.csv (one row per epoch: loss,
val_loss and the model's metrics), logs/ (TensorBoard), and model.keras when training ends (written
atomically). A progress bar shows each epoch (--verbose=2: one line per epoch, and a line with
the step, time per step and ETA every 20 s within it); validation on the val split runs after each.

Resume: kill the process at any moment and rerun the same command; it restores the last finished
epoch and trains the rest (no epoch lost or repeated). A rerun after the last epoch does nothing.
A rerun may change only --config.train.epochs (train longer), --config.data.root (a moved dataset)
and --config.eval.*; any other difference from the run in --workdir is refused.

--strategy: default (one device), mirrored (tf.distribute.MirroredStrategy over the GPUs, or over
--cpu_devices logical CPU devices without GPUs), multi_worker (MultiWorkerMirroredStrategy, cluster
from TF_CONFIG; only the chief writes --workdir). --config.train.batch_size is the global batch.

Everything is checked before training starts (config values, the dataset's train/val splits down
to every WAV header and PNG signature, --workdir: writable, room for the checkpoints); a problem
prints one line naming the flag or file and what would be right, and exits with status 1. A run
that fails before its first epoch finishes leaves nothing in --workdir; a killed run's temporary
files are removed by the rerun. The work is done by `keras_binaural.training.train`.
"""

import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("train")  # before TensorFlow starts: it reads these once

# tensorflow_hub (imported by keras_binaural.models) warns about pkg_resources on every start.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

from absl import app, flags, logging
from ml_collections import config_flags

from keras_binaural import cli, distribute, files, training

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file and variant, e.g. configs/clup.py:demo,no_cyc.",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Folder of the run (created if missing).")
_STRATEGY = flags.DEFINE_enum("strategy", "default", list(distribute.STRATEGIES),
                              "tf.distribute strategy.")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", 0, "Split the CPU into this many logical devices (for --strategy mirrored "
    "without GPUs); 0 or 1: no split.")
_VERBOSE = flags.DEFINE_enum("verbose", "1", ["0", "1", "2"],
                             "Keras progress: 1 progress bar, 2 one line per epoch, 0 silent.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not flags.FLAGS["config"].present:
        raise SystemExit("train: error: --config is required (e.g. --config configs/clup.py:demo)")
    config_file = config_flags.get_config_filename(flags.FLAGS["config"]).split(":")[0]
    if not os.path.isfile(config_file):
        raise SystemExit(f"train: error: --config={config_file}: no such file (e.g. "
                         "--config configs/clup.py:demo)")
    if not _WORKDIR.value:
        raise SystemExit("train: error: --workdir is required (the run's folder, e.g. runs/demo)")
    if _CPU_DEVICES.value > 1 and _STRATEGY.value == "default":
        raise SystemExit("train: error: --cpu_devices needs --strategy mirrored (or multi_worker)")
    try:
        distribute.split_cpu(_CPU_DEVICES.value, training.TrainingError)
        summary = training.train(_CONFIG.value, _WORKDIR.value, _STRATEGY.value,
                                 verbose=int(_VERBOSE.value))
    except (training.TrainingError, files.OutputError) as error:
        raise SystemExit(f"train: error: {error}")
    logging.info("%d epochs in %s (%.0f s of training now)", summary["epochs"], summary["workdir"],
                 summary["seconds"])
    print(f"trained {summary['epochs']} epochs; model: {summary['model_path']}")


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("train"))
