"""Supp. Table 1 when the pair's distance also hears where the sound is: the binaural checks.

Usage:
  python benchmarks/bench_binaural_pairs.py --model RUN --root ROOT [--subset val] \
      [--check prior|mixture|response|ild] [--weights 0,3,10,30,100] [--context 0,3,clip]

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
  --check mixture   (the same run): how unlikely the window's differential is under the same
                    prior's mixture (`ColumnResponses.log_likelihood`, spread --spread),
                    -sum |M|^2 log L / sum |M|^2 over the window's bins: each bin need only be
                    explained by some column the prior gives a share;
  --check response  (`pointing.ResponseObjective.response_errors`): the map's mass per column
                    through the learnt column responses R_k(f) against the window's
                    differential, mean |M sum_k a_k R_k - D|^2 / mean |M|^2 at unit mono power;
  --check ild       (`pointing.BinauralCueObjective`): the ILD predicted from the map's column
                    profile against the window's, mean_k (ILD^_k - ILD_k)^2 over 8 bands in units
                    of 10 dB (`pointing.band_ild`).

e is 0 for silent windows; w = 0 is the mono protocol. With --context K, e is the mean of the
frame's e against the 2 K + 1 windows within K hops (0.1 s each) of the pair's own, each with its
own audio features (clamped at the clip's ends); with --context clip, against every window of
the clip: the same frame heard for longer. Every frame a clip's pairs use is scored against
every window within the widest context once (each window's audio heard once, `error_matrix`),
so one run gives a table for each entry of --context at the cost of the widest (the whole clip:
5-6 s a clip on two cores).
Printed for each context and each w of --weights: distance and accuracy (supp. Eq. 10-11), each
with its 95 % clip-bootstrap interval (`localization.clip_interval`), over all pairs, over the
unambiguous ones, over the ambiguous ones only (the negative frame shows every class that sounds
in the clip) and over the clips whose sources move ("–" where there are none); the same windows
and negatives as `evaluate_localization` with the same seed. Choose w and the context on the
validation subset; quote the test subset (or clips no model has seen).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts: it reads these once

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags
from tqdm import tqdm

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
flags.DEFINE_list("subset", ["test"], "Which subsets of split 1, scored together (train,val,test: "
                  "a whole dataset made for evaluation only, e.g. with another --seed).")
flags.DEFINE_enum("check", "response", ["prior", "mixture", "response", "ild"],
                  "What scores e.")
flags.DEFINE_float("spread", RESPONSIBILITY_SPREAD, "s of --check mixture (ratio units).")
flags.DEFINE_list("weights", ["0", "3", "10", "30", "100"], "The w to score with.")
flags.DEFINE_integer("seed", 0, "Draws the negatives (as evaluate_localization).")
flags.DEFINE_list("context", ["0"], "e averaged over the windows within each of these many "
                  "hops, or over the whole clip ('clip'): a table each.")
flags.mark_flags_as_required(["model", "root"])
FLAGS = flags.FLAGS

RESIZE_HW, CROP_HW = (136, 136), (128, 128)


def check_function(run, localizer, check: str):
    """(hear, error) for --check, as `tf.function`s (error compiled by XLA, which fuses the
    per-frame match and likelihood): hear(binaural `[1, time, 2]`) -> what e needs of one
    window, computed once; error(V, a, heard) -> e `[batch]` of frames against that window, V
    `[batch, h, w, 512]` their encodings, a `[512]` the window's audio feature."""
    hear, error = binaural_check(run, localizer, check)

    def pair_errors(visual, audio_feature, heard):
        feature = tf.repeat(audio_feature[None], tf.shape(visual)[0], axis=0)
        return error(visual, tf.cast(localizer.cell_map(visual, feature), tf.float32), heard)

    return tf.function(hear), tf.function(pair_errors, reduce_retracing=True, jit_compile=True)


def binaural_check(run, localizer, check: str):
    """`check_function`'s (hear, error) but for error taking the frames' maps A `[batch, h, w]`
    in place of the window's audio feature."""
    if check in ("prior", "mixture"):
        upmixer = run  # the upmixer's own prior, as it conditions its denoiser
        if getattr(upmixer, "prior", None) is None:
            raise app.UsageError(f"{FLAGS.model}: --check {check} needs an upmixer or CLUP run "
                                 "with the spatial prior.")
        prior, columns = upmixer.prior, upmixer.prior_columns

        def hear(binaural):
            mono = (binaural[..., 0] + binaural[..., 1]) / 2
            scale = upmixer.level_scale(mono)
            spectrum = stft(mono / scale)
            return (spectrum, stft((binaural[..., 0] - binaural[..., 1]) / 2 / scale),
                    prior.bin_embeddings(spectrum))

        def prior_error(visual, cell_map, heard):
            spectrum, diff_spectrum, u = heard  # batch 1: the window's, for every frame
            share = prior.match(u, prior.embed_columns(column_features(visual, cell_map, columns),
                                                       column_profile(cell_map, columns)))
            power = tf.square(tf.abs(spectrum))
            if check == "mixture":
                log_likelihood = prior.responses.log_likelihood(share, spectrum, diff_spectrum,
                                                                FLAGS.spread)
                return -(tf.reduce_sum(power * log_likelihood, axis=[1, 2])
                         / tf.maximum(tf.reduce_sum(power, axis=[1, 2]), 1e-12))
            error = tf.reduce_mean(tf.square(tf.abs(prior.responses.estimate(share, spectrum)
                                                    - diff_spectrum)), axis=[1, 2])
            return error / tf.maximum(tf.reduce_mean(power, axis=[1, 2]), 1e-8)

        return hear, prior_error
    kind, weight = {"response": (ResponseObjective, "lambda_response"),
                    "ild": (BinauralCueObjective, "lambda_cue")}[check]
    objectives = [o for o in localizer.pointing_objectives if isinstance(o, kind)]
    if not objectives:
        raise app.UsageError(f"{FLAGS.model}: the localizer has no {kind.__name__} ({weight}).")
    objective = objectives[0]
    if check == "response":
        return (lambda binaural: binaural,
                lambda visual, cell_map, binaural: objective.response_errors(
                    column_profile(cell_map, objective.response_columns),
                    tf.repeat(binaural, tf.shape(cell_map)[0], axis=0)))
    return (lambda binaural: band_ild(binaural, objective.cue_bands)[0],
            lambda visual, cell_map, ild: tf.reduce_mean(
                tf.square(objective.predict_ild(cell_map) - ild), axis=-1))


def error_matrix(check, visual, own, audio, windows, loud, reach=None,
                 batch_size=128) -> np.ndarray:
    """e of the frames of `visual` `[m, h, w, 512]` against the windows of one clip (its audio
    features `[n, 512]`, the windows `[n, time, 2]`, `loud` `[n]`, 0 for silent windows): `[m,
    n]`, 0 against the silent windows. Frame i is scored against the windows within `reach` hops
    of window `own[i]`, the one it is paired with (every window with `reach` None); the other
    entries stay 0. Each window is heard once (`check_function`)."""
    hear, error = check
    matrix = np.zeros([len(visual), len(audio)], np.float32)
    for j in np.flatnonzero(loud):
        rows = (np.arange(len(visual)) if reach is None
                else np.flatnonzero(np.abs(own - j) <= reach))
        heard = hear(tf.constant(windows[j : j + 1], tf.float32))
        for part in np.array_split(rows, -(-len(rows) // batch_size)):
            matrix[part, j] = error(tf.constant(visual[part]), tf.constant(audio[j]), heard)
    return matrix


def in_context(matrix, context: int | None) -> np.ndarray:
    """`[n]`: each frame t of the `[n, n]` `matrix` (`error_matrix`, frame t paired with window
    t) against the windows within `context` hops of t (clamped at the clip's ends), averaged;
    against the whole clip's windows with `context` None."""
    if context is None:
        return matrix.mean(axis=1)
    index = np.arange(len(matrix))
    return np.mean([matrix[index, np.clip(index + offset, 0, len(matrix) - 1)]
                    for offset in range(-context, context + 1)], axis=0)


def pair_records(model, check, clips, seed: int, contexts) -> dict:
    """Per window: d of the positive and of the negative pair, e of each in every context of
    `contexts` (`in_context`; "e_pos", "e_neg" map a context to `[windows]`), and whether the
    negative is unambiguous."""
    rng = np.random.default_rng(seed)
    pool_clip, _, pool_visual = localization.negative_frame_pool(model, clips, 256, RESIZE_HW,
                                                                 CROP_HW, rng, 32)
    metadata = [localization.load_metadata(clip) for clip in clips]
    position = {clip.clip_id: index for index, clip in enumerate(clips)}
    records = {key: [] for key in ("d_pos", "d_neg", "clear", "clip", "moving")}
    records.update(e_pos={context: [] for context in contexts},
                   e_neg={context: [] for context in contexts})
    reach = None if None in contexts else max(contexts)  # what in_context reads of the matrix
    for example in tqdm(fairplay.evaluation_dataset(clips, RESIZE_HW, CROP_HW), total=len(clips),
                        desc="clips", unit="clip"):
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
        records["clip"].append(np.full(len(starts), index))
        records["moving"].append(np.full(len(starts), localization.sources_move(metadata[index])))
        records["d_pos"].append(localization.pair_distances(model, visual, audio))
        records["d_neg"].append(localization.pair_distances(model, pool_visual[negative], audio))
        records["clear"].append(np.array([not sounding <= localization.object_classes(
            metadata[pool_clip[n]], sounding_only=False) for n in negative]))
        own = np.tile(np.arange(len(starts)), 2)  # the positives' frames, then the negatives'
        matrix = error_matrix(check, np.concatenate([visual, pool_visual[negative]]), own,
                              audio, windows, loud, reach)
        for context in contexts:
            records["e_pos"][context].append(in_context(matrix[: len(starts)], context))
            records["e_neg"][context].append(in_context(matrix[len(starts) :], context))
    return {key: ({c: np.concatenate(v) for c, v in value.items()} if isinstance(value, dict)
                  else np.concatenate(value)) for key, value in records.items()}


def pair_scores(d_positive, d_negative) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's distance and its share of right decisions (`localization.pair_scores`)."""
    return localization.pair_scores(*(x.numpy() for x in softmax_scaled(
        tf.constant(d_positive), tf.constant(d_negative))))


def summary(values, clip, scale: float = 1.0, number: str = "{:.3f}") -> str:
    """The mean of per-pair `values` and its 95 % clip-bootstrap interval (`clip_interval`) over
    the clips they come from (`clip`: each pair's clip), or a dash when there are none."""
    if not len(values):
        return "–"
    _, clip = np.unique(clip, return_inverse=True)
    low, high = localization.clip_interval(np.bincount(clip, values), np.bincount(clip))
    low, mean, high = (number.format(scale * x) for x in (low, np.mean(values), high))
    return f"{mean} ({low}-{high})"


def parse_context(value: str) -> int | None:
    """A --context entry: hops each side (an integer >= 0), or None for "clip"."""
    if value == "clip":
        return None
    if not value.isdigit():
        raise app.UsageError(f"--context: {value!r} is neither a number of hops nor 'clip'.")
    return int(value)


def main(argv):
    del argv
    contexts = [parse_context(value) for value in FLAGS.context]
    run = keras.saving.load_model(training.run_model_file(FLAGS.model), compile=False)
    model = run.localizer if hasattr(run, "denoiser") else run
    check = check_function(run, model, FLAGS.check)
    clips = [clip for subset in FLAGS.subset for clip in fairplay.list_clips(FLAGS.root, subset)]
    records = pair_records(model, check, clips, FLAGS.seed, contexts)
    clear, moving = records["clear"].astype(bool), records["moving"].astype(bool)
    print(f"{FLAGS.model} on {FLAGS.root} ({'+'.join(FLAGS.subset)}, {len(clips)} clips, "
          f"{len(clear)} windows, {100 * (1 - clear.mean()):.1f} % ambiguous negatives, "
          f"{100 * moving.mean():.1f} % with moving sources), e by --check {FLAGS.check}")
    for context in contexts:
        e_positive, e_negative = records["e_pos"][context], records["e_neg"][context]
        ambiguous = f"{e_negative[~clear].mean():.3f}" if (~clear).any() else "–"
        print(f"\ncontext {'the whole clip' if context is None else context}: e mean on "
              f"positives {e_positive.mean():.3f}, negatives {e_negative.mean():.3f}, ambiguous "
              f"negatives {ambiguous}")
        print("| w | distance | accuracy (%) | unambiguous: distance | accuracy (%) | "
              "ambiguous only: accuracy (%) | sources moving: distance | accuracy (%) |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for weight in (float(w) for w in FLAGS.weights):
            distance, correct = pair_scores(records["d_pos"] + weight * e_positive,
                                            records["d_neg"] + weight * e_negative)
            cells = []  # distance and accuracy of each column's pairs (accuracy only if ambiguous)
            for pairs, with_distance in ((slice(None), True), (clear, True), (~clear, False),
                                         (moving, True)):
                if with_distance:
                    cells.append(summary(distance[pairs], records["clip"][pairs]))
                cells.append(summary(correct[pairs], records["clip"][pairs], 100, "{:.1f}"))
            print(f"| {weight:g} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    app.run(main)
