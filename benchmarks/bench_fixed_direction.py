"""A control for the upmixer: can it learn one fixed direction from audio alone on this CPU?

Usage:
  python benchmarks/bench_fixed_direction.py --root DIR [--azimuth 45 --steps 800]

Every clip's mono m (from a synthetic FAIR-Play-layout root, default: made with one source per
clip) is re-rendered as if it came from one fixed azimuth: L = h_L * m, R = h_R * m with the MIT
KEMAR HRIR pair there. The binaural target is then a fixed linear filter of the new mono
m' = (L + R) / 2, the same for every clip, so the audio-only upmixer (`Upmixer(guidance="none")`,
the quality benchmark's denoiser size) can learn it without any picture. It trains on 0.63 s
chunks for --steps steps (Adam, warm-up and cosine decay, as benchmarks/bench_quality.py) and
scores whole test clips (fast sampler) against mono-mono with the six metrics.

If the upmixer beats mono-mono here but not on the real task, what it lacks there is the
direction, i.e. guidance it has learnt to use; if it does not beat it even here, the limit is the
denoiser's training itself.
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
import scipy.signal
import tensorflow as tf
from absl import app, flags

from keras_binaural import files, metrics
from keras_binaural.data import fairplay, hrtf
from keras_binaural.models.upmixer import Upmixer

common.define_data_flags("fixed_direction")
common.define_training_flags(8, 3e-4, "peak; warm-up, cosine decay", steps=800)
common.define_denoiser_flags()
flags.DEFINE_float("azimuth", 45.0, "The fixed source azimuth in degrees (+ is left).")
flags.DEFINE_integer("max_test_clips", 12, "Test clips to score.")
FLAGS = flags.FLAGS


def render(mono: tf.Tensor, hrir: tf.Tensor) -> tf.Tensor:
    """`[batch, time]` mono -> `[batch, time, 2]`: causal convolution with the `[taps, 2]` pair."""
    taps = hrir.shape[0]
    padded = tf.pad(mono, [[0, 0], [taps - 1, 0]])[..., None]
    kernel = tf.reverse(hrir, [0])[:, None, :]  # conv1d correlates: flip for a convolution
    return tf.nn.conv1d(padded, kernel, stride=1, padding="VALID")


def main(argv):
    del argv
    root = FLAGS.root or common.synthetic_root(FLAGS.workdir, 300, 6.0, "128x128", max_sources=1)
    hrir = hrtf.load_hrirs().hrir(FLAGS.azimuth).astype(np.float32)
    train_clips = fairplay.list_clips(root, "train")
    test_clips = fairplay.list_clips(root, "test")[: FLAGS.max_test_clips]

    def example(chunk):
        binaural = render(chunk["mono"][None], tf.constant(hrir))[0]
        return {"mono": tf.reduce_mean(binaural, -1),
                "diff": (binaural[:, 0] - binaural[:, 1]) / 2}

    dataset = (fairplay.training_dataset(train_clips, seed=0, chunks_per_clip=4, augment=False)
               .map(example, num_parallel_calls=tf.data.AUTOTUNE)
               .shuffle(256, seed=0).batch(FLAGS.batch_size, drop_remainder=True)
               .prefetch(tf.data.AUTOTUNE))
    keras.utils.set_random_seed(0)
    model = Upmixer(guidance="none", residual_channels=FLAGS.channels,
                    conditioner_channels=FLAGS.channels, num_cycles=FLAGS.num_cycles, seed=0)
    model.compile(optimizer=common.warmup_cosine_adam(FLAGS.steps, FLAGS.learning_rate))
    start = time.time()
    history = model.fit(dataset, steps_per_epoch=FLAGS.steps // 8, epochs=8, verbose=2)
    train_seconds = time.time() - start

    scores = {"upmixer": [], "mono_mono": []}
    for clip in fairplay.evaluation_dataset(test_clips, resize_hw=(8, 8), crop_hw=(8, 8)):
        mono = clip["mono"].numpy()
        binaural = np.stack([scipy.signal.lfilter(hrir[:, c], [1.0], mono) for c in (0, 1)], -1)
        binaural = binaural.astype(np.float32)
        new_mono = binaural.mean(-1)
        predicted = model.generate(new_mono[None], seed=0, progress=False)[0]
        scores["upmixer"].append(metrics.evaluate_clip_numpy(binaural, predicted))
        scores["mono_mono"].append(
            metrics.evaluate_clip_numpy(binaural, np.stack([new_mono, new_mono], -1)))
    means = {name: {key: float(np.mean([s[key] for s in rows])) for key in rows[0]}
             for name, rows in scores.items()}
    results = {"azimuth_deg": FLAGS.azimuth, "steps": FLAGS.steps, "train_seconds": train_seconds,
               "final_diff_loss": float(history.history["diff_loss"][-1]),
               "test_clips": len(scores["upmixer"]), "scores": means}
    files.write_json(os.path.join(FLAGS.workdir, "results.json"), results)
    print(json.dumps(results, indent=1))
    print("| system | STFT | ENV | WAV | AMP | PHA | SNR (dB) |\n|---|---|---|---|---|---|---|")
    for name, row in means.items():
        print(f"| {name} | " + " | ".join(f"{row[k]:.4f}" for k in
                                          ("stft", "env", "wav", "amp", "pha", "snr")) + " |")


if __name__ == "__main__":
    app.run(main)
