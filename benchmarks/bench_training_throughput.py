"""Training throughput of CLUP (demo configuration) next to the input pipeline's rate.

Usage:
  python benchmarks/bench_training_throughput.py                 # makes 24 synthetic clips
  python benchmarks/bench_training_throughput.py --root DIR --steps 30 --batch_size 16

The demo configuration (configs/clup.py:demo): 128 x 128 frames (resized to 136 x 136, randomly
cropped), compact audio encoder (width 1/8), CLUP with every loss term, denoiser C = 16 (3 x 10
layers, pre-net 16 channels), batches of 16 chunks of 0.63 s. It measures, in one process:

  1. pipeline: examples/s that `fairplay.training_dataset(...).batch(B)` delivers alone
     (decoding, frames, log-mel patches; after a warm-up);
  2. training, live: examples/s of `model.fit` on that pipeline (steady state: the median step
     time after the first, traced, steps);
  3. training, cached: the same on one cached batch repeated (no input work), so that (2) close
     to (3) shows the pipeline is not the bottleneck.

Timings depend on the machine's load: the load average is printed with each figure. The
training steps print per-step wall times; the first step includes tracing and is excluded.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import statistics
import time

import common
import keras
import tensorflow as tf
from absl import app, flags

from keras_binaural.data import fairplay
from keras_binaural.models.clup import CLUP
from keras_binaural.models.upmixer import Upmixer

flags.DEFINE_string("root", None, "A FAIR-Play-layout root (default: make a small synthetic one).")
flags.DEFINE_string("workdir", "/tmp/keras_binaural_bench_throughput", "Data folder.")
flags.DEFINE_integer("num_clips", 24, "Clips to generate when --root is not given.")
flags.DEFINE_integer("batch_size", 16, "Training batch size (demo: 16).")
flags.DEFINE_integer("steps", 20, "Timed training steps (after 2 warm-up steps).")
flags.DEFINE_integer("pipeline_batches", 30, "Timed pipeline batches (after 3 warm-up batches).")
flags.DEFINE_integer("channels", 16, "Denoiser residual channels C (demo: 16).")
flags.DEFINE_enum("model", "clup", ["clup", "audio_only"], "Which model to train.")
FLAGS = flags.FLAGS

RESIZE_HW, CROP_HW = (136, 136), (128, 128)


def load() -> str:
    return "load {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())


def pipeline(clips) -> tf.data.Dataset:
    dataset = fairplay.training_dataset(
        clips, seed=0, chunks_per_clip=4, resize_hw=RESIZE_HW, crop_hw=CROP_HW, augment=True
    )
    return dataset.batch(FLAGS.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def pipeline_rate(clips) -> float:
    iterator = iter(pipeline(clips))
    for _ in range(3):
        next(iterator)
    start = time.perf_counter()
    for _ in range(FLAGS.pipeline_batches):
        next(iterator)
    return FLAGS.pipeline_batches * FLAGS.batch_size / (time.perf_counter() - start)


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times, self.start = [], None

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def training_rate(clips, cached: bool) -> tuple[float, list[float]]:
    keras.utils.set_random_seed(0)
    size = {
        "residual_channels": FLAGS.channels,
        "conditioner_channels": FLAGS.channels,
        "localizer_config": {"audio_width_multiplier": 0.125},
        "seed": 0,
    }
    if FLAGS.model == "clup":
        model = CLUP(**size)
    else:
        model = Upmixer(guidance="none", **size)
    model.compile(optimizer=keras.optimizers.Adam(3e-4, global_clipnorm=1.0))
    dataset = pipeline(clips)
    if cached:
        dataset = dataset.take(1).cache().repeat()
    timer = StepTimer()
    model.fit(dataset, steps_per_epoch=FLAGS.steps + 2, epochs=1, callbacks=[timer], verbose=0)
    steady = timer.times[2:]
    return FLAGS.batch_size / statistics.median(steady), timer.times


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    root = FLAGS.root or common.synthetic_root(FLAGS.workdir, FLAGS.num_clips, 6, "128x128")
    clips = fairplay.list_clips(root, "train")
    print(
        f"{root}: {len(clips)} train clips; {os.cpu_count()} cores, TF {tf.__version__}, "
        f"Keras {keras.__version__}; {load()}",
        flush=True,
    )
    rate = pipeline_rate(clips)
    print(f"pipeline alone: {rate:.1f} examples/s (batch {FLAGS.batch_size}); {load()}", flush=True)
    for cached in (False, True):
        examples_per_second, times = training_rate(clips, cached)
        what = "cached batch" if cached else "live pipeline"
        print(
            f"{FLAGS.model} training, {what}: {examples_per_second:.2f} examples/s "
            f"(median step {FLAGS.batch_size / examples_per_second:.2f} s; first step with "
            f"tracing {times[0]:.0f} s); {load()}",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
