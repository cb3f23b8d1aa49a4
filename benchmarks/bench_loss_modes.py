"""A trained model's loss terms on the same batches in training and in inference mode.

Usage:
  python benchmarks/bench_loss_modes.py --model RUN [--root DIR] [--batches 4]

For the train and the val split of the run's data (`config.json` beside the model; --root
overrides its `data.root`), the first --batches validation batches (central crops, no jitter)
go through `model.compute_losses` once with `training=False` and once with `training=True`,
and each scalar term's mean is printed per split and mode. A term far lower in training mode
than in inference mode on the same batches is met by something that exists only in training
(BatchNorm's batch statistics, dropout), not by what the term asks for; that is how the erasure
term's BatchNorm shortcut was found (BENCHMARKS.md, issue 12). Training mode updates BatchNorm's
moving statistics of the loaded copy, so inference mode runs first; nothing is saved.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts: it reads these once

import numpy as np
from absl import app, flags

from keras_binaural import runs, training

flags.DEFINE_string("model", None, "A tools/train.py workdir or its model.keras.", required=True)
flags.DEFINE_string("root", None, "Dataset root (default: the run config's data.root).")
flags.DEFINE_integer("batches", 4, "Batches per split.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    path = runs.resolve_model_path(FLAGS.model, error=app.UsageError)
    config = runs.run_config(path, app.UsageError)
    if config is None:
        raise app.UsageError(f"--model={FLAGS.model}: no config.json beside {path}")
    if FLAGS.root:
        config.data.root = FLAGS.root
    config.train.validation_steps = FLAGS.batches
    model = runs.load_model(path, error=app.UsageError)
    for subset in ("val", "train"):
        batches = list(training.validation_batches(config, training.split_clips(config, subset)))
        for mode in (False, True):
            terms = [model.compute_losses(batch, training=mode) for batch in batches]
            names = [name for name, value in terms[0].items()
                     if name.endswith("_loss") and np.ndim(value) == 0]
            means = " ".join(f"{name} {np.mean([float(t[name]) for t in terms]):.4f}"
                             for name in names)
            print(f"{subset} training={mode}: {means}", flush=True)


if __name__ == "__main__":
    app.run(main)
