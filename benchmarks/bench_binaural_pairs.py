"""Supp. Table 1 when the pair's distance also hears where the sound is: the binaural checks.

Usage:
  python benchmarks/bench_binaural_pairs.py --model RUN --root ROOT [--subset val] \
      [--check prior|mixture|response|ild] [--weights 0,3,10,30,100] [--context 3]

On the mono protocol (`evaluate_localization`, frame negatives) a negative frame that shows the
sounding class cannot be told from the positive: the mono says what sounds, not where. The
binaural recording says where. Each pair (the window's audio, a frame) gets d' = d + w * e, with
e how far the frame's map is from the window's binaural audio, by the run's spatial prior or by
one of the localizer's own binaural objectives:

  --check prior     (an upmixer or CLUP run with the spatial prior, `spatial_prior.SpatialPrior`):
                    the prior's estimate of the window's differential from its mono and the
                    frame's map and columns, as the upmixer makes it, against the true one,
                    mean |D^ - D|^2 / mean |M|^2 of the level-normalised window (d^ = 0 scores
                    mean |D|^2 / mean |M|^2); the run's localizer gives d;
  --check response  (`pointing.ResponseObjective.response_errors`): the map's mass per column
                    through the learnt column responses R_k(f) against the window's
                    differential, mean |M sum_k a_k R_k - D|^2 / mean |M|^2 at unit mono power;
  --check ild       (`pointing.BinauralCueObjective`): the ILD predicted from the map's column
                    profile against the window's, mean_k (ILD^_k - ILD_k)^2 over 8 bands in units
                    of 10 dB (`pointing.band_ild`).

e is 0 for silent windows; w = 0 is the mono protocol. With --context K, e is the mean of the
frame's e against the 2 K + 1 windows within K hops (0.1 s each) of the pair's own, each with its
own audio features (clamped at the clip's ends): the same frame heard for longer (2 K + 1 times
the work). Printed for each w of --weights: distance and accuracy (supp. Eq. 10-11) over all
pairs, over the unambiguous ones and over the ambiguous ones only (the negative frame shows every
class that sounds in the clip), the same windows and negatives as `evaluate_localization` with
the same seed. Choose w (and K) on the validation subset; quote the test subset.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts: it reads these once

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from keras_binaural import training
from keras_binaural.conventions import CHUNK_SAMPLES
from keras_binaural.data import fairplay
from keras_binaural.evaluation import localization
from keras_binaural.localization_metrics import softmax_scaled
from keras_binaural.models.localization_core import column_profile
from keras_binaural.models.pointing import BinauralCueObjective, ResponseObjective, band_ild
from keras_binaural.models.spatial_prior import RESPONSIBILITY_SPREAD, column_features, stft

flags.DEFINE_string("model", None, "A localizer, upmixer or CLUP run (workdir or .keras).")
flags.DEFINE_string("root", None, "A synthetic FAIR-Play-layout root (with metadata).")
flags.DEFINE_string("subset", "test", "Which subset of split 1.")
flags.DEFINE_enum("check", "response", ["prior", "mixture", "response", "ild"],
                  "What scores e.")
flags.DEFINE_float("spread", RESPONSIBILITY_SPREAD, "s of --check mixture (ratio units).")
flags.DEFINE_list("weights", ["0", "3", "10", "30", "100"], "The w to score with.")
flags.DEFINE_integer("seed", 0, "Draws the negatives (as evaluate_localization).")
flags.DEFINE_integer("context", 0, "e averaged over the windows within this many hops.",
                     lower_bound=0)
flags.mark_flags_as_required(["model", "root"])
FLAGS = flags.FLAGS

RESIZE_HW, CROP_HW = (136, 136), (128, 128)


def check_function(run, localizer, check: str):
    """e(V, A, binaural) -> `[batch]` for --check: V `[batch, h, w, 512]` the frames' encoding,
    A `[batch, h, w]` their maps, binaural `[batch, time, 2]` the windows."""
    if check in ("prior", "mixture"):
        upmixer = run  # the upmixer's own prior, as it conditions its denoiser
        if getattr(upmixer, "prior", None) is None:
            raise app.UsageError(f"{FLAGS.model}: --check {check} needs an upmixer or CLUP run "
                                 "with the spatial prior.")
        columns = upmixer.prior_columns

        def prior_error(visual, cell_map, binaural):
            embeddings = upmixer.prior.embed_columns(column_features(visual, cell_map, columns),
                                                     column_profile(cell_map, columns))
            mono = (binaural[..., 0] + binaural[..., 1]) / 2
            scale = upmixer.level_scale(mono)
            estimate, spectrum, share = upmixer.prior.estimate(mono / scale, embeddings)
            diff_spectrum = stft((binaural[..., 0] - binaural[..., 1]) / 2 / scale)
            power = tf.square(tf.abs(spectrum))
            if check == "mixture":
                log_likelihood = upmixer.prior.responses.log_likelihood(
                    share, spectrum, diff_spectrum, FLAGS.spread)
                return -(tf.reduce_sum(power * log_likelihood, axis=[1, 2])
                         / tf.maximum(tf.reduce_sum(power, axis=[1, 2]), 1e-12))
            error = tf.reduce_mean(tf.square(tf.abs(estimate - diff_spectrum)), axis=[1, 2])
            return error / tf.maximum(tf.reduce_mean(power, axis=[1, 2]), 1e-8)

        return prior_error
    kind, weight = {"response": (ResponseObjective, "lambda_response"),
                    "ild": (BinauralCueObjective, "lambda_cue")}[check]
    objectives = [o for o in localizer.pointing_objectives if isinstance(o, kind)]
    if not objectives:
        raise app.UsageError(f"{FLAGS.model}: the localizer has no {kind.__name__} ({weight}).")
    objective = objectives[0]
    if check == "response":
        return lambda visual, cell_map, binaural: objective.response_errors(
            column_profile(cell_map, objective.response_columns), binaural)
    return lambda visual, cell_map, binaural: tf.reduce_mean(tf.square(
        objective.predict_ild(cell_map) - band_ild(binaural, objective.cue_bands)[0]), axis=-1)


def binaural_errors(model, error_fn, visual, audio, windows, loud, batch_size=32) -> np.ndarray:
    """e of each (frame, window) pair, `[n]` (0 where `loud` `[n]` is 0: silent windows):
    `error_fn` of `check_function` on the frames' encodings `[n, h, w, 512]`, their maps with
    the windows' audio features `[n, 512]`, and the windows `[n, time, 2]`."""
    errors = []
    for i in range(0, len(audio), batch_size):
        visual_part = tf.constant(visual[i : i + batch_size])
        cell_map = tf.cast(model.cell_map(visual_part, tf.constant(audio[i : i + batch_size])),
                           tf.float32)
        chunk = tf.constant(windows[i : i + batch_size], tf.float32)
        errors.append(error_fn(visual_part, cell_map, chunk).numpy())
    return np.concatenate(errors) * loud


def context_errors(model, error_fn, visual, audio, windows, loud, context: int) -> np.ndarray:
    """`binaural_errors` of each frame of `visual` `[n, ...]` against the windows within
    `context` hops of its own (the clip's `audio`, `windows`, `loud`, `[n, ...]` in time order;
    clamped at the clip's ends), averaged: `[n]`."""
    index = np.arange(len(audio))
    return np.mean([binaural_errors(model, error_fn, visual, audio[near], windows[near], loud[near])
                    for near in (np.clip(index + offset, 0, len(audio) - 1)
                                 for offset in range(-context, context + 1))], axis=0)


def pair_records(model, error_fn, clips, seed: int, context: int = 0) -> dict[str, np.ndarray]:
    """Per window: d and e of the positive and of the negative pair, and whether the negative
    is unambiguous."""
    rng = np.random.default_rng(seed)
    pool_clip, _, pool_visual = localization.negative_frame_pool(model, clips, 256, RESIZE_HW,
                                                                 CROP_HW, rng, 32)
    metadata = [localization.load_metadata(clip) for clip in clips]
    position = {clip.clip_id: index for index, clip in enumerate(clips)}
    records = {key: [] for key in ("d_pos", "d_neg", "e_pos", "e_neg", "clear")}
    for example in fairplay.evaluation_dataset(clips, RESIZE_HW, CROP_HW):
        index = position[example["clip_id"].numpy().decode()]
        binaural = example["binaural"].numpy()
        starts = localization.window_starts(len(binaural))
        frame_numbers = localization.window_frames(starts, len(example["frames"]))
        visual = localization.encode_frames(model, example["frames"].numpy())[frame_numbers - 1]
        audio = localization.audio_features(
            model, localization.window_patches(example["mono"].numpy(), starts))
        windows = np.stack([binaural[s : s + CHUNK_SAMPLES] for s in starts])
        windows = np.pad(windows, ((0, 0), (0, CHUNK_SAMPLES - windows.shape[1]), (0, 0)))
        loud = band_ild(windows)[1].numpy()
        others = np.flatnonzero(pool_clip != index)
        negative = others[rng.integers(0, len(others), len(starts))]
        sounding = localization.object_classes(metadata[index], sounding_only=True)
        for key, value in (
            ("d_pos", localization.pair_distances(model, visual, audio)),
            ("d_neg", localization.pair_distances(model, pool_visual[negative], audio)),
            ("e_pos", context_errors(model, error_fn, visual, audio, windows, loud, context)),
            ("e_neg", context_errors(model, error_fn, pool_visual[negative], audio, windows,
                                     loud, context)),
            ("clear", np.array([not sounding <= localization.object_classes(
                metadata[pool_clip[n]], sounding_only=False) for n in negative])),
        ):
            records[key].append(value)
    return {key: np.concatenate(value) for key, value in records.items()}


def scores(d_positive, d_negative, mask) -> tuple[float, float]:
    """(distance, accuracy in %) of supp. Eq. 10-11 over the pairs in `mask`."""
    positive, negative = (x.numpy() for x in softmax_scaled(tf.constant(d_positive),
                                                            tf.constant(d_negative)))
    distance = np.hypot(positive, negative - 1.0)[mask].mean()
    paired, unpaired = (positive <= 0.5)[mask], (negative > 0.5)[mask]
    return float(distance), float(100.0 * (paired.sum() + unpaired.sum()) / (2 * mask.sum()))


def main(argv):
    del argv
    run = keras.saving.load_model(training.run_model_file(FLAGS.model), compile=False)
    model = run.localizer if hasattr(run, "denoiser") else run
    error_fn = check_function(run, model, FLAGS.check)
    clips = fairplay.list_clips(FLAGS.root, FLAGS.subset)
    records = pair_records(model, error_fn, clips, FLAGS.seed, FLAGS.context)
    clear = records["clear"].astype(bool)
    print(f"{FLAGS.model} on {FLAGS.root} ({FLAGS.subset}, {len(clear)} windows, "
          f"{100 * (1 - clear.mean()):.1f} % ambiguous negatives); e ({FLAGS.check}, context "
          f"{FLAGS.context}) mean: positives "
          f"{records['e_pos'].mean():.3f}, negatives {records['e_neg'].mean():.3f}, ambiguous "
          f"negatives {records['e_neg'][~clear].mean():.3f}")
    print("| w | distance | accuracy | unambiguous: distance | accuracy | ambiguous only: accuracy |")
    print("|---:|---:|---:|---:|---:|---:|")
    every = np.ones_like(clear)
    for weight in (float(w) for w in FLAGS.weights):
        d_positive = records["d_pos"] + weight * records["e_pos"]
        d_negative = records["d_neg"] + weight * records["e_neg"]
        (distance, accuracy), (clear_distance, clear_accuracy), (_, ambiguous_accuracy) = (
            scores(d_positive, d_negative, mask) for mask in (every, clear, ~clear))
        print(f"| {weight:g} | {distance:.3f} | {accuracy:.1f} % | {clear_distance:.3f} | "
              f"{clear_accuracy:.1f} % | {ambiguous_accuracy:.1f} % |", flush=True)


if __name__ == "__main__":
    app.run(main)
