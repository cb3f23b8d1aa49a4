"""Binaural quality on synthetic scenes: CLUP vs audio-only vs baseline-guided vs mono-mono.

Usage:
  python benchmarks/bench_quality.py                      # make data, train all three, evaluate
  python benchmarks/bench_quality.py --root DIR           # an existing synthetic root
  python benchmarks/bench_quality.py --reuse              # evaluate the saved models again

Without --root it first writes a synthetic dataset with tools/make_dataset.py into --workdir
(kept for reruns): --num_clips clips of --clip_seconds s, --frame_size square frames,
--max_sources sounding objects per clip, the generator's defaults otherwise (KEMAR HRIRs,
pinhole 90 degrees, up to 2 silent distractors, 25 % moving sources); split 1 is 80/10/10 %.

It then trains, on this CPU, three upmixers with the same denoiser (C = --channels, --num_cycles
x --layers_per_cycle residual layers; by default C = 32 and one cycle of 10 layers, dilations 1 ...
512, receptive field +-1023 samples per step, far more than an HRIR's few ms: a third of SPEC's
3 x 10, so that a CPU budget of about 40 minutes buys three times the steps), the same batches
(same seed), optimizer (Adam, --learning_rate with a 5 % warm-up and cosine decay, gradient norm
clipped to 1) and number of steps:
  clup       `CLUP`: OSA + SSM localizer and the object-guided upmixer, cyclic loss
  audio_only `Upmixer(guidance="none")`
  baseline   `Upmixer(guidance="baseline")`: guidance from the additional-baseline localizer,
             trained jointly with its own loss (supp. Eq. 1-3)
  oracle     (only when asked for) `oracle.OracleUpmixer`: guided by the true horizontal
             position of the sounding object (its box, from the clip's metadata): the guidance
             a perfect localizer would give, an upper reference for the guided models
and evaluates them on every test clip (whole clips, one pass each, fast 6-step sampler, the same
seed) with the six metrics of SPEC section 6 (`keras_binaural.metrics.evaluate_clip_numpy`, no
normalisation), next to the mono-mono baseline (L = R = m).

Targets (issue 5, supp. Table 2's ordering): CLUP beats mono-mono on all six metrics, beats
audio-only on STFT, ENV and SNR, and beats baseline-guided on STFT, ENV and WAV.
Writes --workdir/results.json, the models (<name>.keras) and prints a Markdown table. Timings
depend on the machine's load: the load average is printed with them.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("train")  # before TensorFlow starts: it reads these once

import json
import time

import common
import keras
import numpy as np
import oracle
import tensorflow as tf
from absl import app, flags

from keras_binaural import files, metrics
from keras_binaural.data import fairplay
from keras_binaural.models.clup import CLUP
from keras_binaural.models.upmixer import Upmixer

common.define_data_flags("quality", num_clips=300, clip_seconds=6.0, frame_size=128)
common.define_training_flags(8, 3e-4, "peak; warm-up, cosine decay", steps=300)
common.define_denoiser_flags()
common.define_run_flags("the data order, the weights and the sampler's noise")
flags.DEFINE_integer("max_sources", 2, "Sounding objects per generated clip: 1..max_sources.")
flags.DEFINE_list("models", ["clup", "audio_only", "baseline"], "Models to train and evaluate.")
flags.DEFINE_integer("layers_per_cycle", 10, "Residual layers per cycle.")
flags.DEFINE_integer("scene_columns", 1, "Columns of the guided models' scene feature.")
flags.DEFINE_float("lambda_cyc", 1.0, "CLUP's cyclic-loss weight.")
flags.DEFINE_integer("max_test_clips", 0, "Evaluate at most this many test clips (0: all).")
flags.DEFINE_string("sampler", "fast", "fast or full.")
flags.DEFINE_string("localizer_config", "{}", "JSON: LocalizationModel arguments of the guided "
                    "models (e.g. the visual encoder and the pointing objectives' lambdas).")
flags.DEFINE_bool("mirror", False, "Mirror half of the training examples (frame and ears).")
flags.DEFINE_bool("spatial_prior", False, "Guided models with the spatial prior (models/spatial_prior).")
FLAGS = flags.FLAGS

STEPS_PER_EPOCH = 50


def build_model(name: str) -> keras.Model:
    denoiser = {
        "residual_channels": FLAGS.channels,
        "num_cycles": FLAGS.num_cycles,
        "layers_per_cycle": FLAGS.layers_per_cycle,
        "seed": FLAGS.seed,
    }
    guided = {"scene_columns": FLAGS.scene_columns,
              "localizer_config": json.loads(FLAGS.localizer_config),
              "spatial_prior": FLAGS.spatial_prior}
    if name == "clup":
        return CLUP(lambda_cyc=FLAGS.lambda_cyc, name=name, **denoiser, **guided)
    if name == "audio_only":
        return Upmixer(guidance="none", name=name, **denoiser)
    if name == "baseline":
        return Upmixer(guidance="baseline", name=name, **denoiser, **guided)
    if name == "oracle":
        guided.pop("spatial_prior")  # its guidance is the true position alone
        return oracle.OracleUpmixer(name=name, **denoiser, **guided)
    raise ValueError(f"unknown model {name!r}")


class StepLogger(keras.callbacks.Callback):
    """Counts steps and prints the losses every `every` steps with the elapsed time."""

    def __init__(self, every: int = 25):
        super().__init__()
        self.every, self.steps, self.start = every, 0, None

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps % self.every == 0:
            values = " ".join(f"{k} {float(v):.4f}" for k, v in sorted((logs or {}).items()))
            print(
                f"  step {self.steps}: {values}; {time.time() - self.start:.0f} s; {common.load()}",
                flush=True,
            )


def train(name: str, train_clips, hw) -> tuple[keras.Model, dict]:
    keras.utils.set_random_seed(FLAGS.seed)
    model = build_model(name)
    model.compile(optimizer=common.warmup_cosine_adam(FLAGS.steps, FLAGS.learning_rate))
    dataset = fairplay.training_dataset(
        train_clips, seed=FLAGS.seed, chunks_per_clip=4, resize_hw=hw, crop_hw=hw, augment=True,
        mirror=FLAGS.mirror)
    # The reader interleaves 4 clips at a time: shuffle wider so that a batch mixes many clips.
    dataset = dataset.shuffle(256, seed=FLAGS.seed).batch(FLAGS.batch_size, drop_remainder=True)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    logger = StepLogger()
    start = time.time()
    history = model.fit(
        dataset,
        steps_per_epoch=STEPS_PER_EPOCH,
        epochs=max(1, FLAGS.steps // STEPS_PER_EPOCH),
        callbacks=[logger],
        verbose=0,
    )
    seconds = time.time() - start
    examples = logger.steps * FLAGS.batch_size
    stats = {
        "train_seconds": seconds,
        "steps": logger.steps,
        "examples": examples,
        "examples_per_second": examples / seconds,
        "load_after": common.load(),
        "final_logs": {k: float(v[-1]) for k, v in history.history.items()},
    }
    print(
        f"{name}: {logger.steps} steps, {examples} examples in {seconds / 60:.1f} min = "
        f"{examples / seconds:.2f} examples/s (incl. tracing); {common.load()}",
        flush=True,
    )
    return model, stats


def evaluate(model, test_clips, hw) -> dict:
    """Six metrics per test clip for the model (None: mono-mono), averaged over clips."""
    per_clip = []
    start = time.time()
    for clip in fairplay.evaluation_dataset(test_clips, resize_hw=hw, crop_hw=hw):
        binaural = clip["binaural"].numpy()
        mono = clip["mono"].numpy()
        if model is None:
            prediction = np.stack([mono, mono], axis=-1)
        else:
            prediction = model.generate(
                mono[None],
                clip["frames"].numpy()[None],
                sampler=FLAGS.sampler,
                seed=FLAGS.seed,
                window_seconds=FLAGS.clip_seconds + 1.0,
                progress=False,
            )[0]
        clip_scores = metrics.evaluate_clip_numpy(binaural, prediction)
        clip_scores["d_corr"] = metrics.diff_correlation_numpy(binaural, prediction)
        per_clip.append(clip_scores)
    scores = {name: float(np.mean([c[name] for c in per_clip]))
              for name in (*metrics.METRIC_NAMES, "d_corr")}
    scores["num_clips"] = len(per_clip)
    scores["eval_seconds"] = time.time() - start
    return scores


def main(argv):
    del argv
    os.makedirs(FLAGS.workdir, exist_ok=True)
    tf.get_logger().setLevel("ERROR")
    print(f"{os.cpu_count()} cores, TF {tf.__version__}, Keras {keras.__version__}; {common.load()}")
    root = FLAGS.root or common.synthetic_root(
        FLAGS.workdir, FLAGS.num_clips, FLAGS.clip_seconds, f"{FLAGS.frame_size}x{FLAGS.frame_size}",
        max_sources=FLAGS.max_sources)
    hw = (FLAGS.frame_size, FLAGS.frame_size)
    train_clips = fairplay.list_clips(root, "train")
    test_clips = fairplay.list_clips(root, "test")
    if FLAGS.max_test_clips:
        test_clips = test_clips[: FLAGS.max_test_clips]
    print(f"{root}: {len(train_clips)} train clips, {len(test_clips)} test clips", flush=True)
    results_path, results = common.previous_results(FLAGS.workdir)
    results["settings"] = {
        name: FLAGS[name].value
        for name in (
            "num_clips",
            "clip_seconds",
            "frame_size",
            "max_sources",
            "steps",
            "batch_size",
            "learning_rate",
            "channels",
            "num_cycles",
            "layers_per_cycle",
            "lambda_cyc",
            "scene_columns",
            "sampler",
            "localizer_config",
            "mirror",
            "spatial_prior",
            "seed",
        )
    }

    results["mono_mono"] = {"scores": evaluate(None, test_clips, hw)}
    for name in FLAGS.models:
        model_path = os.path.join(FLAGS.workdir, f"{name}.keras")
        clips = train_clips, test_clips
        if name == "oracle":  # the same clips, each frame a mask of the sounding object's box
            masks = oracle.mask_root(root, FLAGS.workdir)
            clips = [fairplay.list_clips(masks, split) for split in ("train", "test")]
            clips[1] = clips[1][: len(test_clips)]
        if FLAGS.reuse:
            model = keras.saving.load_model(model_path)
            stats = results.get(name, {}).get("training")
        else:
            model, stats = train(name, clips[0], hw)
            model.save(model_path)
        scores = evaluate(model, clips[1], hw)
        results[name] = {"training": stats, "scores": scores}
        files.write_json(results_path, results)
        print(name, json.dumps(scores), common.load(), flush=True)

    print("\n| model | STFT | ENV | WAV | AMP | PHA | SNR (dB) | d corr. | training |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("mono_mono", *FLAGS.models):
        entry = results.get(name)
        if entry is None:
            continue
        s, t = entry["scores"], entry.get("training") or {}
        trained = f"{t['steps']} steps, {t['train_seconds'] / 60:.1f} min" if t else "-"
        print(f"| {name} | " + " | ".join(f"{s[m]:.4f}" for m in metrics.METRIC_NAMES)
              + f" | {s.get('d_corr', float('nan')):.3f} | {trained} |")

    if "clup" in results:
        clup = results["clup"]["scores"]
        targets = [
            ("mono_mono", metrics.METRIC_NAMES),
            ("audio_only", ("stft", "env", "snr")),
            ("baseline", ("stft", "env", "wav")),
        ]
        print("\nTargets:")
        for other, names in targets:
            if other not in results:
                continue
            scores = results[other]["scores"]
            for metric in names:
                better = (
                    (clup[metric] < scores[metric])
                    if not metrics.HIGHER_IS_BETTER[metric]
                    else (clup[metric] > scores[metric])
                )
                print(
                    f"  CLUP vs {other} on {metric}: {clup[metric]:.4f} vs "
                    f"{scores[metric]:.4f} -> {'met' if better else 'MISSED'}"
                )


if __name__ == "__main__":
    app.run(main)
