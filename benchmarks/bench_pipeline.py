"""Input-pipeline throughput: training examples per second from a synthetic FAIR-Play-layout root.

Usage:
  python benchmarks/bench_pipeline.py [--root DIR] [--num_clips 24] [--batches 40]

Without --root it first writes a synthetic dataset of 10 s clips with tools/make_dataset.py (kept in
/tmp for reruns). It then times `fairplay.training_dataset(...).batch(32).prefetch()` after a
warm-up, for FAIR-Play's frame sizes (frames resized to 240x480, cropped to 224x448) and for the
demo's (128x128 cropped to 112x112), with augmentation on. Target: >= 100 examples/s on 2 cores.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("train")  # before TensorFlow starts: it reads these once

import time

import common
from absl import app, flags

from keras_binaural.data import fairplay

flags.DEFINE_string("root", None, "An existing FAIR-Play-layout root (default: make one).")
flags.DEFINE_integer("num_clips", 24, "Clips to generate when --root is not given.")
flags.DEFINE_integer("batches", 40, "Batches of 32 to time after the warm-up.")
FLAGS = flags.FLAGS

SETTINGS = {
    "FAIR-Play frames 240x480 -> 224x448": ((240, 480), (224, 448)),
    "demo frames 128x128 -> 112x112": ((128, 128), (112, 112)),
}


def examples_per_second(clips, resize_hw, crop_hw, batches: int, batch_size: int = 32) -> float:
    dataset = fairplay.training_dataset(clips, seed=0, resize_hw=resize_hw, crop_hw=crop_hw)
    iterator = iter(dataset.batch(batch_size).prefetch(4))
    for _ in range(5):  # warm-up: graph tracing, file cache, autotuning
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main(argv):
    del argv
    root = FLAGS.root or common.synthetic_root("/tmp/keras_binaural_bench_pipeline", FLAGS.num_clips, 10, "480x240")
    clips = fairplay.list_clips(root, "train")
    print(f"{len(clips)} training clips from {root}; {os.cpu_count()} cores")
    for name, (resize_hw, crop_hw) in SETTINGS.items():
        rate = examples_per_second(clips, resize_hw, crop_hw, FLAGS.batches)
        print(f"{name}: {rate:.0f} training examples/s")


if __name__ == "__main__":
    app.run(main)
