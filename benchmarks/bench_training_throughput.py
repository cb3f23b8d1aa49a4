"""Training throughput of the demo configuration next to the input pipeline's rate.

Usage:
  python benchmarks/bench_training_throughput.py                  # makes 24 synthetic clips
  python benchmarks/bench_training_throughput.py --variant demo,audio_only --steps 30
  python benchmarks/bench_training_throughput.py --hold_localizer   # CLUP as `make demo` runs it

The model, optimizer and batches are exactly those of `tools/train.py --config
configs/clup.py:VARIANT` (`keras_binaural.training.build_model`, `make_optimizer`,
`training_batches`). In one process it measures:

  1. pipeline: examples/s that the training batches arrive at alone (decoding, frame
     augmentation, log-mel patches; after a warm-up);
  2. training, live: examples/s of `model.fit` on those batches (steady state: the median step
     time after the first, traced, steps);
  3. training, cached: the same on one cached batch repeated (no input work), so that (2) close
     to (3), and (1) far above (2), show that the pipeline is not the bottleneck.

With --breakdown (an upmixer or CLUP variant) it then times, on one batch, the forward and
backward pass (a `tf.function` each, the median of 5 after 2 warm-up calls) of the whole loss,
of the localizer's own losses and of the denoiser alone (random inputs of the batch's shape):
where a training step's time goes.

With --levers (CLUP or upmixer variants) it times, each in this one process on random inputs of
the batch's shape, the forward and backward pass of the two parts that dominate the step, under
the settings that could speed them up: the denoiser in float32 as trained, under XLA as one
cluster, with each layer's gate and 1 x 1 as an XLA cluster (as the sampler's
`compiled_denoise_fn`), and in mixed bfloat16; the spatial prior's audio CNN
(`SpatialPrior.assignment`) in float32 and in mixed bfloat16 (whatever the config's
`prior_audio_dtype`; `KERAS_BINAURAL_BF16=0` times the whole step with it in float32).

With --hold_localizer CLUP holds a localizer (`model.update_localizer=False`), as `make demo`
trains it: an untrained localizer of the variant's size, saved to --workdir, stands in for the
trained one (the step's work is the same).

Timings depend on the machine's load: the load average is printed with each figure.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("train")  # before TensorFlow starts: it reads these once

import importlib.util
import statistics
import time

import common
import keras
import tensorflow as tf
from absl import app, flags

from keras_binaural import training
from keras_binaural.data import fairplay
from keras_binaural.models.spatial_prior import stft

flags.DEFINE_string("root", None, "A FAIR-Play-layout root (default: make a small synthetic one).")
flags.DEFINE_string("workdir", "/tmp/keras_binaural_bench_throughput", "Data folder.")
flags.DEFINE_integer("num_clips", 24, "Clips to generate when --root is not given.")
flags.DEFINE_string("variant", "demo", "configs/clup.py variant (SIZE[,ABLATION]).")
flags.DEFINE_integer("steps", 20, "Timed training steps (after 2 warm-up steps).")
flags.DEFINE_integer("pipeline_batches", 30, "Timed pipeline batches (after 3 warm-up batches).")
flags.DEFINE_bool("breakdown", False, "Also time the parts of a step (upmixer or CLUP variants).")
flags.DEFINE_bool("levers", False, "Also time the denoiser's and the prior's settings.")
flags.DEFINE_bool("hold_localizer", False, "CLUP holding its localizer, as make demo runs it.")
FLAGS = flags.FLAGS


def demo_config():
    path = os.path.join(common.REPO, "configs", "clup.py")
    spec = importlib.util.spec_from_file_location("clup_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(FLAGS.variant)
    if FLAGS.hold_localizer:
        size = FLAGS.variant.split(",")[0]
        os.makedirs(FLAGS.workdir, exist_ok=True)
        path = os.path.join(FLAGS.workdir, f"{size}_localizer.keras")
        training.build_model(module.get_config(f"{size},localizer")).save(path)
        config.model_init.localizer, config.model.update_localizer = path, False
    return config


def pipeline_rate(config, clips) -> float:
    iterator = iter(training.training_batches(config, clips, seed=0))
    for _ in range(3):
        next(iterator)
    start = time.perf_counter()
    for _ in range(FLAGS.pipeline_batches):
        next(iterator)
    return FLAGS.pipeline_batches * config.train.batch_size / (time.perf_counter() - start)


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times, self.start = [], None

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def training_rate(config, clips, cached: bool) -> tuple[float, list[float]]:
    keras.utils.set_random_seed(config.seed)
    model = training.build_model(config)
    model.compile(optimizer=training.make_optimizer(config),
                  jit_compile=config.train.jit_compile)
    dataset = training.training_batches(config, clips, seed=0)
    if cached:
        dataset = dataset.take(1).cache().repeat()
    timer = StepTimer()
    model.fit(dataset, steps_per_epoch=FLAGS.steps + 2, epochs=1, callbacks=[timer], verbose=0)
    return config.train.batch_size / statistics.median(timer.times[2:]), timer.times


def gradient_seconds(loss_fn, variables, jit_compile: bool = False) -> float:
    """Median seconds of one forward and backward pass of `loss_fn` (traced once)."""
    @tf.function(jit_compile=jit_compile)
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn()
        return tape.gradient(loss, variables)

    step()
    step()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def denoiser_loss_fn(denoiser, mono):
    """A loss of `denoiser` alone on random inputs of the batch's shape (`mono` `[batch, time]`),
    for `gradient_seconds`; the denoiser is built by its first call here."""
    batch, samples = mono.shape[0], mono.shape[1]
    inputs = {"noisy": tf.random.normal([batch, samples, 1]), "step": tf.fill([batch], 3.0),
              "mono": tf.random.normal([batch, samples, denoiser.conditioner_inputs]),
              "guidance": tf.random.normal([batch, denoiser.guidance_channels])}
    denoiser(inputs)
    return lambda: tf.reduce_mean(tf.cast(denoiser(inputs, training=True), tf.float32) ** 2)


def breakdown(config, clips) -> dict[str, float]:
    """Seconds of the forward + backward pass of the whole loss and of its main parts."""
    model = training.build_model(config)
    data = next(iter(training.training_batches(config, clips, seed=0)))
    parts = {"whole loss": gradient_seconds(
        lambda: model.compute_losses(data, training=True)["loss"], model.trainable_variables)}
    if getattr(model, "trains_localizer", False) and getattr(model, "lambda_loc", 1.0):
        localizer = model.localizer
        parts["localizer's losses"] = gradient_seconds(
            lambda: localizer.compute_losses(data, training=True)["loss"],
            localizer.trainable_variables)
    parts["denoiser alone"] = gradient_seconds(denoiser_loss_fn(model.denoiser, data["mono"]),
                                               model.denoiser.trainable_variables)
    parts["the rest"] = parts["whole loss"] - sum(
        seconds for name, seconds in parts.items() if name != "whole loss")
    return parts


def levers(config, clips) -> dict[str, float]:
    """Seconds of the forward + backward pass of the denoiser and of the prior's audio CNN, as
    built by the variant's config, under each candidate setting."""
    data = next(iter(training.training_batches(config, clips, seed=0)))
    batch, samples = data["mono"].shape[0], data["mono"].shape[1]
    spectrum = stft(tf.random.normal([batch, samples]))
    model = training.build_model(config)  # its parts' configs, rebuilt in each policy below
    parts = {}
    for policy in ("float32", "mixed_bfloat16"):
        denoiser = type(model.denoiser).from_config(
            {**model.denoiser.get_config(), "dtype": policy})
        denoiser_loss = denoiser_loss_fn(denoiser, data["mono"])
        variables = denoiser.trainable_variables
        parts[f"denoiser, {policy}"] = gradient_seconds(denoiser_loss, variables)
        if policy == "float32":
            parts["denoiser, float32, XLA as one cluster"] = gradient_seconds(
                denoiser_loss, variables, jit_compile=True)
            for layer in denoiser.residual_layers:  # instance attributes shadow the method
                layer.gated_output = tf.function(layer.gated_output, jit_compile=True)
            parts["denoiser, float32, each layer's gate under XLA"] = gradient_seconds(
                denoiser_loss, variables)
        if model.prior is not None:
            prior = type(model.prior).from_config(
                {**model.prior.get_config(), "dtype": policy, "audio_dtype": None})
            prior.build()
            columns = tf.random.normal([batch, prior.width])
            parts[f"spatial prior's audio CNN, {policy}"] = gradient_seconds(
                lambda prior=prior, columns=columns: tf.reduce_mean(
                    tf.cast(prior.assignment(spectrum, columns), tf.float32) ** 2),
                prior.trainable_variables)
    return parts


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    config = demo_config()
    parts = [timed for timed, wanted in ((breakdown, FLAGS.breakdown), (levers, FLAGS.levers))
             if wanted]
    if parts and config.model_kind == "localizer":  # before minutes of training are timed
        raise app.UsageError("--breakdown and --levers time an upmixer's or CLUP's step; got a "
                             "localizer.")
    root = FLAGS.root or common.synthetic_root(FLAGS.workdir, FLAGS.num_clips, 6, "136x136")
    clips = fairplay.list_clips(root, "train")
    batch = config.train.batch_size
    held = ", localizer held" if FLAGS.hold_localizer else ""
    print(f"configs/clup.py:{FLAGS.variant} ({config.model_kind}{held}, batch {batch}); {root}: "
          f"{len(clips)} train clips; {os.cpu_count()} cores, TF {tf.__version__}, Keras "
          f"{keras.__version__}; {common.load()}", flush=True)
    rate = pipeline_rate(config, clips)
    print(f"pipeline alone: {rate:.1f} examples/s; {common.load()}", flush=True)
    for cached in (False, True):
        examples_per_second, times = training_rate(config, clips, cached)
        what = "cached batch" if cached else "live pipeline"
        print(f"training, {what}: {examples_per_second:.2f} examples/s (median step "
              f"{batch / examples_per_second:.2f} s; first step with tracing {times[0]:.0f} s); "
              f"{common.load()}", flush=True)
    for timed in parts:
        for name, seconds in timed(config, clips).items():
            print(f"forward + backward, {name}: {seconds:.3f} s", flush=True)
        print(common.load(), flush=True)


if __name__ == "__main__":
    app.run(main)
