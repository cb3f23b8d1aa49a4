"""oneDNN on or off for the two convolutions that dominate our workloads: the evidence behind
`keras_binaural.runtime`'s choice.

Usage:
  python benchmarks/bench_onednn.py [--repeats 3] [--dtypes float32,bfloat16]

TF_ENABLE_ONEDNN_OPTS is read once per process, so each setting runs in its own child process
(this file with --child), through `runtime.apply` with KERAS_BINAURAL_ONEDNN=0 or 1. Each child
times, in graph mode without XLA, best of --repeats after a warm-up:
  - conv1d: the denoiser's dilated convolution, [1, 64000, 64] -> 128 channels, kernel 3, once at
    each dilation 1, 2, 4, ..., 512 (what generation and the upmixer's training run);
  - conv2d: a 3x3 convolution of the ResNet-18's first stage, 64 -> 64 channels, on
    [8, 128, 128, 64] (issue 13's shape; what CLUP's and the localizer's training run),
and prints GFLOP/s (2 x multiply-adds / wall second) with the load average: the machine may be
shared, so compare the two settings of one run rather than runs of different days. The first
lines name the CPU and the settings of each process (`runtime`'s start-up line).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("test")  # in a child, KERAS_BINAURAL_ONEDNN decides

import json
import subprocess
import time

from absl import app, flags

flags.DEFINE_integer("repeats", 3, "Timed runs after the warm-up (the best is reported).")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Compute dtypes to time.")
flags.DEFINE_bool("child", False, "Internal: time in this process and print JSON.")
FLAGS = flags.FLAGS

CONV1D_SAMPLES, CONV1D_CHANNELS, DILATIONS = 64000, 64, [2**k for k in range(10)]
CONV2D_SHAPE = (8, 128, 128, 64)


def best_seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(dtype: str, repeats: int) -> dict:
    """{"conv1d": GFLOP/s, "conv2d": GFLOP/s} in this process."""
    import tensorflow as tf

    seed = (0, 0)
    x1 = tf.cast(tf.random.stateless_normal([1, CONV1D_SAMPLES, CONV1D_CHANNELS], seed), dtype)
    k1 = tf.cast(tf.random.stateless_normal([3, CONV1D_CHANNELS, 2 * CONV1D_CHANNELS], seed),
                 dtype)
    x2 = tf.cast(tf.random.stateless_normal(CONV2D_SHAPE, seed), dtype)
    k2 = tf.cast(tf.random.stateless_normal([3, 3, 64, 64], seed), dtype)

    @tf.function
    def conv1d():
        return [tf.nn.convolution(x1, k1, padding="SAME", dilations=[d]) for d in DILATIONS]

    @tf.function
    def conv2d():
        return tf.nn.convolution(x2, k2, padding="SAME")

    flops1 = len(DILATIONS) * 2.0 * CONV1D_SAMPLES * 3 * CONV1D_CHANNELS * 2 * CONV1D_CHANNELS
    flops2 = 2.0 * CONV2D_SHAPE[0] * CONV2D_SHAPE[1] * CONV2D_SHAPE[2] * 9 * 64 * 64
    return {
        "conv1d": flops1 / best_seconds(lambda: [y.numpy() for y in conv1d()], repeats) / 1e9,
        "conv2d": flops2 / best_seconds(lambda: conv2d().numpy(), repeats) / 1e9,
    }


def main(argv):
    del argv
    if FLAGS.child:
        print(json.dumps({dtype: measure(dtype, FLAGS.repeats) for dtype in FLAGS.dtypes}))
        return
    for onednn in ("0", "1"):
        environ = {**os.environ, "KERAS_BINAURAL_ONEDNN": onednn}
        start_load = f"{os.getloadavg()[0]:.1f}"
        result = subprocess.run(
            [sys.executable, __file__, "--child", f"--repeats={FLAGS.repeats}",
             f"--dtypes={','.join(FLAGS.dtypes)}"],
            env=environ, check=True, capture_output=True, text=True)
        line, *_, output = result.stdout.strip().splitlines()
        print(f"  child {line}")
        rates = json.loads(output)
        for dtype, figures in rates.items():
            print(f"oneDNN {'on ' if onednn == '1' else 'off'} {dtype:8s} "
                  f"conv1d {figures['conv1d']:6.1f} GFLOP/s  conv2d {figures['conv2d']:6.1f} "
                  f"GFLOP/s  (load {start_load} -> {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    app.run(main)
