"""Speed of fast 6-step generation with the diffusion denoiser: real-time factor and FLOP rate.

Usage:
  python benchmarks/bench_denoiser_speed.py [--seconds 4] [--channels 64,128] [--repeats 3]
      [--dtypes float32,bfloat16] [--xla off,on[,whole]]

For each residual-channel count C (30 residual layers, SPEC section 5), dtype (float32, or the
"mixed_bfloat16" Keras policy: bfloat16 compute, float32 variables) and XLA mode, it times the
generation of one differential from batch-1 mono: `condition` once, then the 6 fast steps of
`diffusion.sample_fast`, all in one `tf.function` (a `tf.while_loop` over the steps, no Python per
step). XLA modes: "off" (graph mode: oneDNN kernels, no fusion), "on" (`compiled_denoise_fn`: one
XLA cluster per residual layer), "whole" (the whole denoise step as one XLA cluster, which is
slower; kept to show why). It prints:
  - RTF: wall seconds per second of audio (best of --repeats after a warm-up run; the median in
    brackets), and the process CPU seconds per second of audio of the best run. Target: RTF <= 0.5
    for C = 64.
  - the achieved GFLOP/s (analytic FLOPs of conditioning + 6 denoise steps / wall time) and its
    fraction of the machine's float32 SGEMM peak (a 1024^2 product through numpy's BLAS, measured
    first) and of the peak of a plain dilated Conv1D ([1, time, C] -> 2C, kernel 3) of the same
    dtype (best of oneDNN and XLA), measured just before; also the same fraction per CPU second,
    which discounts the time other jobs took from us;
  - bfloat16 against float32: max and relative (L2) difference of the generated differential with
    the same weights, mono and seed; and XLA against no XLA.
Then (unless --clip_seconds 0) the RTF of a whole clip through `Upmixer.generate` (5 s windows
overlapping by 0.5 s, XLA on), its windows sampled one after another or --parallel_windows at a
time in threads: what a user binauralizing a clip waits for.
The output layer is re-initialised randomly (it is zero at init, which would make every output
equal) — the weights are untrained, so the quality of the audio means nothing here.

Timings depend on the machine's load: the load average is printed next to every measurement.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("generate")  # before TensorFlow starts: it reads these once

import statistics
import time

import common
import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from keras_binaural import diffusion
from keras_binaural.conventions import SAMPLE_RATE_HZ
from keras_binaural.models.denoiser import WaveNetDenoiser, compiled_denoise_fn
from keras_binaural.models.upmixer import Upmixer

flags.DEFINE_float("seconds", 4.0, "Length of the generated audio in seconds (16 kHz).")
flags.DEFINE_list("channels", ["64", "128"], "Residual channel counts C to time.")
flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "float32 and/or bfloat16 (mixed policy).")
flags.DEFINE_list(
    "xla",
    ["off", "on"],
    "XLA modes: off, on (one cluster per residual layer), whole (one cluster).",
)
flags.DEFINE_float("clip_seconds", 10.0, "Whole clip for Upmixer.generate (0: skip that part).")
flags.DEFINE_list("parallel_windows", ["1", "2"], "Upmixer.generate's parallel_windows to time.")
flags.DEFINE_integer("repeats", 3, "Timed runs after the warm-up (the best is reported).")
flags.DEFINE_integer("seed", 0, "Seed of weights, mono and sampler noise.")
FLAGS = flags.FLAGS

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def difference(x: np.ndarray, reference: np.ndarray) -> str:
    """Max and relative L2 difference of `x` from the float32 `reference`, and its RMS."""
    diff = x - reference
    relative = np.linalg.norm(diff) / max(np.linalg.norm(reference), 1e-12)
    return (f"max |diff| {np.abs(diff).max():.4f}, relative L2 {relative:.4f} (float32 RMS "
            f"{np.sqrt(np.mean(reference**2)):.3f})")


def best_time(fn, repeats: int) -> tuple[float, float, float]:
    """(min, median) wall seconds and the process CPU seconds of the fastest run of `fn()`, over
    `repeats` runs after one warm-up run."""
    fn()
    runs = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        runs.append((time.perf_counter() - wall, time.process_time() - cpu))
    best = min(runs)
    return best[0], statistics.median(wall for wall, _ in runs), best[1]


def conv1d_peak(channels: int, dtype: str, num_samples: int) -> tuple[float, float]:
    """Peak of a plain dilated Conv1D [1, time, C] -> [1, time, 2C] (kernel 3, dilation 64), the
    best of oneDNN (graph mode) and XLA: (GFLOP per wall second, GFLOP per CPU second)."""
    x = tf.cast(tf.random.stateless_normal([1, num_samples, channels], seed=(0, 0)), dtype)
    conv = keras.layers.Conv1D(2 * channels, 3, dilation_rate=64, padding="same", dtype=dtype)
    conv.build((None, None, channels))
    flops = 2.0 * num_samples * 3 * channels * 2 * channels
    wall_rates, cpu_rates = [], []
    for jit in (False, True):
        step = tf.function(conv.__call__, jit_compile=jit)
        wall, _, cpu = best_time(lambda step=step: step(x).numpy(), repeats=20)
        wall_rates.append(flops / wall / 1e9)
        cpu_rates.append(flops / cpu / 1e9)
    return max(wall_rates), max(cpu_rates)


def sgemm_peak(size: int = 1024, repeats: int = 20) -> float:
    """The machine's float32 matrix-product peak: a `size`^2 SGEMM through numpy's BLAS, best of
    `repeats` after a warm-up, in GFLOP per wall second (issue 13's yardstick)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), np.float32) for _ in range(2))
    wall, _, _ = best_time(lambda: a @ b, repeats)
    return 2.0 * size**3 / wall / 1e9


def denoiser_flops(model: WaveNetDenoiser, num_samples: int, num_steps: int) -> float:
    """Multiply-adds x 2 of conditioning once plus `num_steps` denoise steps (per-sample terms;
    the step embedding, a few MFLOP, is left out)."""
    channels = model.residual_channels
    layers = len(model.residual_layers)
    prenet, in_channels = 0, 1
    for _ in range(model.conditioner_layers):
        prenet += model.conditioner_kernel_size * in_channels * model.conditioner_channels
        in_channels = model.conditioner_channels
    conditioning = prenet + layers * in_channels * 2 * channels
    per_step = (
        channels  # input 1x1
        + layers * (model.kernel_size * channels * 2 * channels + channels * 2 * channels)
        + channels * channels  # skip 1x1
        + channels  # output 1x1
    )
    return 2.0 * num_samples * (conditioning + num_steps * per_step)


def build_denoiser(channels: int, policy: str, seed: int) -> WaveNetDenoiser:
    """A paper-size denoiser with C channels and the weights fixed by `seed` (whatever the
    policy: variables are float32); the zero-initialised output layer is randomised."""
    keras.utils.set_random_seed(seed)
    reference = WaveNetDenoiser(residual_channels=channels)
    reference.build()
    kernel = reference.output_projection.kernel
    kernel.assign(np.random.default_rng(seed).normal(0.0, 0.1, kernel.shape).astype("float32"))
    if policy == "float32":
        return reference
    model = WaveNetDenoiser(residual_channels=channels, dtype=policy)
    model.build()
    model.set_weights(reference.get_weights())
    return model


def build_upmixer(channels: int, policy: str, seed: int) -> Upmixer:
    """The audio-only upmixer around a paper-size denoiser (`build_denoiser`'s weights)."""
    model = Upmixer(guidance="none", residual_channels=channels, dtype=policy)
    model.denoiser.set_weights(build_denoiser(channels, "float32", seed).get_weights())
    return model


def make_generate(model: WaveNetDenoiser, mode: str, num_samples: int):
    """mono [1, time] -> generated differential [1, time, 1] float32, as one tf.function.

    mode: "off" (graph mode, no XLA), "on" (`compiled_denoise_fn`: one XLA cluster per residual
    layer) or "whole" (the whole denoise step as one XLA cluster, for comparison).
    """
    training = diffusion.linear_schedule()
    inference = diffusion.fast_schedule()
    if mode == "on":
        denoise = compiled_denoise_fn(model)
    else:
        denoise = tf.function(model.denoise, jit_compile=(mode == "whole"))

    @tf.function
    def generate(mono, seed):
        conditioning = model.condition(mono)
        return diffusion.sample_fast(
            lambda x, step: denoise(x, step, conditioning),
            training,
            inference,
            shape=(1, num_samples, 1),
            seed=seed,
        )

    return generate


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")  # one tf.function per setting: retracing is expected
    num_samples = round(FLAGS.seconds * SAMPLE_RATE_HZ)
    num_steps = diffusion.fast_schedule().num_steps
    mono = tf.random.stateless_uniform([1, num_samples], (FLAGS.seed, 1), -0.5, 0.5)
    print(
        f"{FLAGS.seconds:g} s of audio ({num_samples} samples), batch 1, {num_steps} fast steps,"
        f" {os.cpu_count()} cores, TF {tf.__version__}, Keras {keras.__version__}; {common.load()}"
    )

    sgemm = sgemm_peak()
    print(f"SGEMM peak (numpy BLAS, 1024 x 1024 float32, best of 20): {sgemm:.0f} GFLOP/s; "
          f"{common.load()}")
    print(
        "\nRTF: wall s per audio s (best [median]); CPU s/s: process CPU s per audio s; of peak: "
        "achieved / Conv1D peak, per wall s and per CPU s (the latter discounts other jobs); "
        "of SGEMM: achieved / the SGEMM peak."
    )
    header = (
        f"{'C':>4} {'dtype':>9} {'XLA':>6} {'RTF best [median]':>18} {'CPU s/s':>8} "
        f"{'GFLOP/s':>8} {'of peak':>8} {'(CPU)':>6} {'of SGEMM':>9}  machine"
    )
    outputs, epsilons = {}, {}
    probe = tf.random.stateless_normal([1, num_samples, 1], (FLAGS.seed, 2))
    for channels in map(int, FLAGS.channels):
        for dtype in FLAGS.dtypes:
            peak_wall, peak_cpu = conv1d_peak(channels, dtype, num_samples)
            print(
                f"\nConv1D peak C={channels} {dtype}: {peak_wall:.0f} GFLOP/s "
                f"({peak_cpu:.0f} GFLOP per CPU s); {common.load()}\n{header}"
            )
            model = build_denoiser(channels, POLICIES[dtype], FLAGS.seed)
            flops = denoiser_flops(model, num_samples, num_steps)
            eps = model.denoise(probe, [50.3], model.condition(mono))
            epsilons[channels, dtype] = keras.ops.convert_to_numpy(keras.ops.cast(eps, "float32"))
            for mode in FLAGS.xla:
                generate = make_generate(model, mode, num_samples)
                result = {}

                def run(generate=generate, result=result):
                    result["x"] = generate(mono, FLAGS.seed).numpy()

                best, median, cpu = best_time(run, FLAGS.repeats)
                outputs[channels, dtype, mode] = result["x"]
                rate = flops / best / 1e9
                print(
                    f"{channels:>4} {dtype:>9} {mode:>6} "
                    f"{best / FLAGS.seconds:>8.3f} [{median / FLAGS.seconds:.3f}]"
                    f" {cpu / FLAGS.seconds:>8.2f} {rate:>8.0f} {rate / peak_wall:>8.0%}"
                    f" {flops / cpu / 1e9 / peak_cpu:>6.0%} {rate / sgemm:>9.0%}  {common.load()}",
                    flush=True,
                )

    if FLAGS.clip_seconds:
        time_whole_clips()

    print("\nbfloat16 vs float32 (same weights, mono and seed):")
    for (channels, dtype), eps in epsilons.items():
        reference = epsilons.get((channels, "float32"))
        if dtype == "float32" or reference is None:
            continue
        print(f"  C={channels} one denoise step (ε at step 50.3): {difference(eps, reference)}")
    print("  generated differential (6 fast steps; the clamp saturates with untrained weights):")
    for (channels, dtype, mode), x in outputs.items():
        reference = outputs.get((channels, "float32", mode))
        if dtype == "float32" or reference is None:
            continue
        print(f"  C={channels} XLA {mode}: {difference(x, reference)}")
    for (channels, dtype, mode), x in outputs.items():
        if mode != "off" and (channels, dtype, "off") in outputs:
            diff = x - outputs[channels, dtype, "off"]
            print(f"  C={channels} {dtype}: XLA {mode} vs off max |diff| {np.abs(diff).max():.2e}")


def time_whole_clips() -> None:
    """RTF of `Upmixer.generate` on a whole clip (5 s windows overlapping by 0.5 s, XLA on), the
    windows sampled one after another or `parallel_windows` at a time in threads."""
    num_samples = round(FLAGS.clip_seconds * SAMPLE_RATE_HZ)
    mono = np.random.default_rng(FLAGS.seed).uniform(-0.5, 0.5, (1, num_samples)).astype("float32")
    print(f"\nWhole {FLAGS.clip_seconds:g} s clip, Upmixer.generate (fast sampler, XLA on):")
    print(f"{'C':>4} {'dtype':>9} {'parallel':>8} {'RTF best [median]':>18} {'CPU s/s':>8}  machine")
    for channels in map(int, FLAGS.channels):
        for dtype in FLAGS.dtypes:
            model = build_upmixer(channels, POLICIES[dtype], FLAGS.seed)
            for parallel in map(int, FLAGS.parallel_windows):
                def run(model=model, parallel=parallel):
                    model.generate(mono, seed=FLAGS.seed, progress=False, parallel_windows=parallel)

                best, median, cpu = best_time(run, FLAGS.repeats)
                seconds = FLAGS.clip_seconds
                print(
                    f"{channels:>4} {dtype:>9} {parallel:>8} {best / seconds:>8.3f} "
                    f"[{median / seconds:.3f}] {cpu / seconds:>8.2f}  {common.load()}",
                    flush=True,
                )


if __name__ == "__main__":
    app.run(main)
