"""Evaluation of a `LocalizationModel`: supp. Table 1, a pointing game, supp. Fig. 1-2 and Fig. 5.

- **Table 1 protocol** (`evaluate_localization`, supp. Eq. 10-11): every 0.1 s sliding window of
  every test clip (0.63 s windows, hop 0.1 s, starts 0, 0.1 s, ... while the window fits; a clip
  shorter than one window gives one zero-padded window, as the training reader). Each window
  gives one positive pair (its mono patch with its own centre frame, `fairplay.frame_index`) and
  one negative pair: the same audio with a frame of another clip (`negatives="frame"`, what OSA
  trains on), or the same frame with the audio of another clip (`negatives="audio"`, the
  additional baseline's training pairs, supp. section 2; the supplement does not say which kind
  Table 1 used, so the benchmark reports both). Distance = mean
  ||(D+, D-) - (0, 1)||_2, accuracy = (TP + TN) / (2 (TP + FN)) with "paired" when D <= 0.5.
  Negative frames come from a pool of `negative_pool_size` frames drawn (seeded) from random
  clips of the split, never from the window's own clip; the pool is encoded once, so memory does
  not grow with the split.
- **Pointing game** (synthetic clips, `metadata/<id>.json` of `keras_binaural.data.synthetic`): the
  localization map's peak (`map_peaks`: the centre of its largest cell, or with sub-cell
  refinement the centre of mass of the 3 x 3 cells around it; both are reported) of each
  window's positive pair is a hit when it falls inside the box of a *sounding* object in the
  window's frame (also when a silent object's box overlaps there), "silent" when only inside
  silent distractors' boxes, "background" otherwise. Window hit rate = hits / windows; a clip
  is hit when at least half of its windows are (clip hit rate = hit clips / clips). The column
  hit rate counts peaks whose x lies within a sounding object's columns, whatever their height
  (the left-right position a binaural upmixer needs).
- **Ambiguous negatives** (synthetic clips): a negative pair is ambiguous when the negative
  frame shows an object of every class that sounds in the positive clip (silent objects may look
  exactly like sounding ones), so appearance alone cannot tell it from the positive. Their
  fraction, and distance and accuracy without them, are reported beside the Table 1 figures.
- **How sure a figure is** (`clip_interval`): the windows of one clip share its scene, sources and
  motion, so they are far from independent samples; distance and accuracy get a 95 % interval
  from a clip bootstrap (whole clips drawn again with replacement, their windows kept together).
  On 64 clips of 34 windows it is about +-2 points of accuracy.
- **Correlation analysis** (`correlation_matrix`, supp. Fig. 1-2): n clips' audio x the same n
  clips' frames. distance[i, j] = d(audio i, frame j); for j != i, scaled[i, j] = D- of the pair
  softmax([d_ii, d_ij]); scaled[i, i] = the mean over j != i of D+ of the same pairs.
  correlation = 1 - scaled (diagonal -> 1 and off-diagonal -> 0 for a perfect model; a positive
  is "paired" when its correlation >= 0.5). `evaluation.plots.plot_correlation_matrix` draws it.
- **Localization maps over frames** (`localization_panels`, drawn by
  `evaluation.plots.plot_localization_maps`, supp. Fig. 5): frames with the map overlaid and, for
  synthetic clips, the object boxes (sounding solid, silent dashed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_binaural.audio import frontend
from keras_binaural.conventions import CHUNK_SAMPLES, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME
from keras_binaural.data import fairplay
from keras_binaural.localization_metrics import AudioVisualDistance, PairAccuracy, softmax_scaled
from keras_binaural.models.localization_core import VISUAL_STRIDE

# === Windows ===


def window_starts(num_samples: int, chunk_samples: int = CHUNK_SAMPLES,
                  hop_samples: int = SAMPLES_PER_FRAME) -> np.ndarray:
    """First samples of the sliding windows of a clip: 0, hop, 2 hop, ... while a window fits.

    Returns:
      `[num_windows]` int64; `[0]` for a clip shorter than one window.
    """
    if num_samples <= chunk_samples:
        return np.zeros([1], np.int64)
    return np.arange(0, num_samples - chunk_samples + 1, hop_samples, dtype=np.int64)


def window_patches(mono, starts, chunk_samples: int = CHUNK_SAMPLES) -> np.ndarray:
    """The VGGish log-mel patch centred on each window, as `frontend.centred_patch`.

    Args:
      mono: `[time]` float32 at 16 kHz.
      starts: `[num_windows]` window starts in samples.

    Returns:
      `[num_windows, 96, 64]` float32 (zero-padded at the clip's edges).
    """
    half = frontend.PATCH_SAMPLES // 2
    padded = np.pad(np.asarray(mono, np.float32), (half, half))
    centres = np.asarray(starts, np.int64) + chunk_samples // 2
    # Sample c sits at c + half of the padded signal and its patch starts half earlier.
    segments = np.stack([padded[c : c + frontend.PATCH_SAMPLES] for c in centres])
    return frontend.log_mel_spectrogram(segments).numpy()


def window_frames(starts, num_frames: int, chunk_samples: int = CHUNK_SAMPLES) -> np.ndarray:
    """1-based index of each window's centre frame (`fairplay.frame_index`), `[num_windows]`."""
    start_s = np.asarray(starts, np.float64) / SAMPLE_RATE_HZ
    end_s = start_s + chunk_samples / SAMPLE_RATE_HZ
    return fairplay.frame_index(start_s, end_s, num_frames).numpy()


# === Encoding helpers ===


def encode_frames(model, frames, batch_size: int = 32) -> np.ndarray:
    """V of `[n, H, W, 3]` frames in batches -> `[n, h, w, 512]` (inference mode)."""
    parts = [keras.ops.convert_to_numpy(model.encode_frames(
        tf.convert_to_tensor(frames[i : i + batch_size]), training=False))
        for i in range(0, len(frames), batch_size)]
    return np.concatenate(parts)


def audio_features(model, patches, batch_size: int = 64) -> np.ndarray:
    """The localizer's audio feature of `[n, 96, 64]` patches -> `[n, 512]`."""
    parts = [keras.ops.convert_to_numpy(model.audio_feature(model.encode_audio(
        tf.convert_to_tensor(patches[i : i + batch_size]), training=False)))
        for i in range(0, len(patches), batch_size)]
    return np.concatenate(parts)


def pair_distances(model, visual, audio, batch_size: int = 64) -> np.ndarray:
    """`model.pair_distance` of `[n, h, w, 512]` maps and `[n, 512]` audio features -> `[n]`."""
    parts = [keras.ops.convert_to_numpy(model.pair_distance(
        tf.convert_to_tensor(visual[i : i + batch_size]),
        tf.convert_to_tensor(audio[i : i + batch_size])))
        for i in range(0, len(audio), batch_size)]
    return np.concatenate(parts)


def map_peaks(cell_maps, frame_hw: tuple[int, int], refine: bool = False,
              stride: int = VISUAL_STRIDE) -> np.ndarray:
    """The peak of each localization map, in (fractional) pixel indices (row, column).

    The upsampled map (`upsample_map`) takes its largest value at the centre of its largest cell,
    pixel s i + (s - 1) / 2 for stride s (bilinear interpolation peaks at the cell centres; at the frame's edges it
    is flat from the edge to the centre, so a pixel-wise arg-max would land on the edge instead).
    With `refine`, the peak moves to the centre of mass of the 3 x 3 cells around the largest one
    (sub-cell precision: an object between two cell centres shares its attention between them).

    Args:
      cell_maps: `[n, h, w]` maps over the encoder's cells (`model.cell_map`).
      frame_hw: the frame's (height, width); peaks are clipped into it.
      refine: refine to the local centre of mass.
      stride: pixels per cell (the model's `output_stride`; 32 for ResNet-18).

    Returns:
      `[n, 2]` float (row, column) pixel indices (pixel k covers [k, k + 1)).
    """
    cell_maps = np.asarray(cell_maps, np.float64)
    n, h, w = cell_maps.shape
    rows, columns = np.unravel_index(cell_maps.reshape(n, -1).argmax(1), (h, w))
    peaks = np.stack([rows, columns], axis=1).astype(np.float64)
    if refine:
        for index, (row, column) in enumerate(zip(rows, columns)):
            r0, r1 = max(row - 1, 0), min(row + 2, h)
            c0, c1 = max(column - 1, 0), min(column + 2, w)
            patch = cell_maps[index, r0:r1, c0:c1] - cell_maps[index].min()
            if patch.sum() > 0:
                grid_r, grid_c = np.mgrid[r0:r1, c0:c1]
                peaks[index] = [(patch * grid_r).sum() / patch.sum(),
                                (patch * grid_c).sum() / patch.sum()]
    pixels = stride * peaks + (stride - 1) / 2.0
    return np.clip(pixels, 0.0, np.array(frame_hw, np.float64) - 1.0)


# === Synthetic metadata ===


def load_metadata(clip: fairplay.Clip) -> dict | None:
    """`metadata/<id>.json` beside the clip's `binaural_audios/` folder, or None."""
    root = os.path.dirname(os.path.dirname(clip.audio_path))
    path = os.path.join(root, "metadata", f"{clip.clip_id}.json")
    if not os.path.isfile(path):
        return None
    with open(path) as file:
        return json.load(file)


def crop_to_original(points_rc, original_wh, resize_hw, crop_hw) -> np.ndarray:
    """Pixel (row, column) of evaluation frames -> continuous (x, y) in the original frame.

    The reader resizes the original (width, height) frame to `resize_hw` and takes the central
    `crop_hw` (`fairplay.prepare_frame` without augmentation); pixel centres map back through
    both steps.

    Returns:
      `[n, 2]` float (x, y) in original pixels (x = 0 the left edge).
    """
    points = np.asarray(points_rc, np.float64)
    top = (resize_hw[0] - crop_hw[0]) // 2
    left = (resize_hw[1] - crop_hw[1]) // 2
    x = (points[:, 1] + 0.5 + left) * original_wh[0] / resize_hw[1]
    y = (points[:, 0] + 0.5 + top) * original_wh[1] / resize_hw[0]
    return np.stack([x, y], axis=1)


def point_outcomes(points_xy, frame_numbers, metadata: dict) -> np.ndarray:
    """Pointing-game outcome per point: "hit", "silent" or "background".

    Args:
      points_xy: `[n, 2]` (x, y) in original pixels.
      frame_numbers: `[n]` 1-based frame of each point.
      metadata: the clip's metadata (objects with `sounding` and `boxes_xyxy` per frame, pixel
        edges, x1 and y1 exclusive).
    """
    outcomes = []
    for (x, y), frame in zip(points_xy, frame_numbers):
        inside = {True: False, False: False}
        for item in metadata["objects"]:
            x0, y0, x1, y1 = item["boxes_xyxy"][int(frame) - 1]
            if x0 <= x < x1 and y0 <= y < y1:
                inside[bool(item["sounding"])] = True
        outcomes.append("hit" if inside[True] else "silent" if inside[False] else "background")
    return np.asarray(outcomes)


def column_hits(points_xy, frame_numbers, metadata: dict) -> np.ndarray:
    """Whether each point's x lies within the columns of a sounding object's box, `[n]` bool.

    The horizontal half of the pointing game: what a binaural upmixer needs from the map is
    where the source is left to right (its horizontal profile), not its height.
    """
    hits = []
    for (x, _), frame in zip(points_xy, frame_numbers):
        hits.append(any(item["sounding"] and item["boxes_xyxy"][int(frame) - 1][0] <= x
                        < item["boxes_xyxy"][int(frame) - 1][2] for item in metadata["objects"]))
    return np.asarray(hits)


def object_classes(metadata: dict, sounding_only: bool) -> frozenset[str]:
    """The classes of a synthetic clip's objects (`metadata/<id>.json`), or of its sounding ones."""
    return frozenset(o["class"] for o in metadata["objects"] if o["sounding"] or not sounding_only)


def sources_move(metadata: dict) -> bool:
    """Whether a sounding object of a synthetic clip (`metadata/<id>.json`) changes azimuth."""
    return any(o["moving"] for o in metadata["objects"] if o["sounding"])


# === Table 1 protocol and pointing game ===


def clip_interval(totals, counts, level: float = 0.95, draws: int = 2000,
                  seed: int = 0) -> tuple[float, float]:
    """The `level` interval of a pooled mean sum(totals) / sum(counts), by a clip bootstrap.

    Each of `draws` draws takes as many clips as there are, with replacement, and pools their
    windows; the interval is the central `level` of the draws' means (the percentile bootstrap
    of a cluster sample: B. Efron and R. Tibshirani, "An Introduction to the Bootstrap", 1993).

    Args:
      totals: `[clips]` the sum of a per-window value over each clip's windows.
      counts: `[clips]` each clip's number of windows (> 0 in all).
    """
    totals, counts = np.asarray(totals, np.float64), np.asarray(counts, np.float64)
    if totals.shape != counts.shape or totals.ndim != 1 or not len(totals):
        raise ValueError(f"totals and counts must be two equal vectors; got {totals.shape} and "
                         f"{counts.shape}.")
    picks = np.random.default_rng(seed).multinomial(len(totals), np.full(len(totals),
                                                                          1 / len(totals)), draws)
    means = picks @ totals / (picks @ counts)
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def pair_scores(scaled_positive, scaled_negative) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, supp. Eq. 10-11 in numpy: the distance ||(D+, D-) - (0, 1)||_2 and the share of
    its two decisions that are right (0, 0.5 or 1; "paired" when D <= 0.5)."""
    positive, negative = np.asarray(scaled_positive), np.asarray(scaled_negative)
    return np.hypot(positive, negative - 1.0), ((positive <= 0.5) * 1.0 + (negative > 0.5)) / 2


def negative_frame_pool(model, clips, size, resize_hw, crop_hw, rng, batch_size):
    """(clip index `[size]`, frame number `[size]`, V `[size, h, w, 512]`) of random frames: the
    Table 1 protocol's negative frames, drawn with `rng` and encoded once."""
    clip_index = rng.integers(0, len(clips), size)
    frame_number = np.array([rng.integers(1, clips[c].num_frames + 1) for c in clip_index])
    frames = np.stack([
        fairplay.prepare_frame(fairplay.read_frame(clips[c].frame_path(int(k))),
                               tf.zeros([2], tf.int32), resize_hw, crop_hw, augment=False).numpy()
        for c, k in zip(clip_index, frame_number)])
    return clip_index, frame_number, encode_frames(model, frames, batch_size)


def _negative_audio_pool(model, clips, size, rng, batch_size):
    """(clip index `[size]`, audio features `[size, 512]`) of random windows of random clips."""
    clip_index = rng.integers(0, len(clips), size)
    patches = []
    for c in clip_index:
        mono = tf.reduce_mean(fairplay.read_binaural(clips[c].audio_path), axis=-1).numpy()
        starts = window_starts(len(mono))
        patches.append(window_patches(mono, starts[rng.integers(0, len(starts), 1)])[0])
    return clip_index, audio_features(model, np.stack(patches), batch_size)


def evaluate_localization(
    model,
    clips: Sequence[fairplay.Clip],
    resize_hw: tuple[int, int],
    crop_hw: tuple[int, int],
    seed: int = 0,
    negative_pool_size: int = 256,
    hop_samples: int = SAMPLES_PER_FRAME,
    batch_size: int = 32,
    pointing_game: bool | None = None,
    negatives: str = "frame",
) -> dict:
    """Supp. Table 1's protocol on whole clips, plus the pointing game on synthetic clips.

    Args:
      model: a `LocalizationModel` (any localizer).
      clips: the split's clips (`fairplay.list_clips(root, "test")`), at least two.
      resize_hw, crop_hw: frame preparation, as in training (central crop).
      seed: draws the negative pool and each window's negative.
      negative_pool_size: frames in the negative pool.
      hop_samples: window hop (1,600 = 0.1 s).
      batch_size: frames / windows per model call.
      pointing_game: score the pointing game (needs `metadata/<id>.json` for every clip); None:
        when the metadata exist.
      negatives: "frame" (default): the negative pair is the window's audio with a frame of
        another clip (what OSA is trained on); "audio": the window's frame with the audio of a
        random window of another clip (what the additional baseline is trained on, supp.
        section 2). The audio pool holds `negative_pool_size` windows. Ambiguous then means
        that the window's frame shows every class that sounds in the negative clip.

    Returns:
      dict: negatives, distance, accuracy (supp. Eq. 10, 11), distance_interval and
      accuracy_interval (95 %, `clip_interval`), counts {true_positives, false_negatives,
      true_negatives, false_positives}, num_windows, num_clips; with metadata also
      ambiguous_fraction, distance_unambiguous, accuracy_unambiguous; with the pointing game
      pointing_window_hit_rate, pointing_clip_hit_rate, pointing_silent_rate,
      pointing_background_rate, pointing_column_hit_rate (`column_hits`: the peak within the
      columns of a sounding object) and per_clip {clip_id: window hit rate}, and the same with the
      suffix `_refined` for peaks refined to sub-cell precision (`map_peaks(refine=True)`).
    """
    clips = list(clips)
    if len(clips) < 2:
        raise ValueError("The localization evaluation needs at least two clips (negative frames "
                         f"come from other clips); got {len(clips)}.")
    metadata = [load_metadata(clip) for clip in clips]
    have_metadata = all(m is not None for m in metadata)
    if pointing_game is None:
        pointing_game = have_metadata
    if pointing_game and not have_metadata:
        missing = [c.clip_id for c, m in zip(clips, metadata) if m is None]
        raise ValueError(f"The pointing game needs metadata/<id>.json; missing for {missing[:5]}.")

    if negatives not in ("frame", "audio"):
        raise ValueError(f"negatives must be 'frame' or 'audio'; got {negatives!r}.")
    rng = np.random.default_rng(seed)
    if negatives == "frame":
        pool_clip, _, pool_visual = negative_frame_pool(model, clips, negative_pool_size, resize_hw,
                                                   crop_hw, rng, batch_size)
    else:
        pool_clip, pool_audio = _negative_audio_pool(model, clips, negative_pool_size, rng,
                                                     batch_size)
    if len(set(pool_clip.tolist())) < 2:
        raise ValueError("The negative pool holds frames of one clip only; raise "
                         "negative_pool_size.")
    distance, accuracy = AudioVisualDistance(), PairAccuracy()
    distance_clear, accuracy_clear = AudioVisualDistance(), PairAccuracy()
    ambiguous_total = 0
    clip_totals = []  # per clip: windows, distance summed, right decisions / 2 (`pair_scores`)
    # Pointing-game records by `refine` (False: the largest cell's centre; True: refined).
    outcomes_all, columns_all = {False: [], True: []}, {False: [], True: []}
    per_clip = {False: {}, True: {}}

    position = {clip.clip_id: index for index, clip in enumerate(clips)}
    for example in fairplay.evaluation_dataset(clips, resize_hw, crop_hw):
        clip_index = position[example["clip_id"].numpy().decode()]
        frames = example["frames"].numpy()
        starts = window_starts(int(example["mono"].shape[0]), hop_samples=hop_samples)
        frame_numbers = window_frames(starts, len(frames))
        visual = encode_frames(model, frames, batch_size)[frame_numbers - 1]
        audio = audio_features(model, window_patches(example["mono"].numpy(), starts), batch_size)
        others = np.flatnonzero(pool_clip != clip_index)
        negative = others[rng.integers(0, len(others), len(starts))]

        d_positive = pair_distances(model, visual, audio, batch_size)
        if negatives == "frame":
            d_negative = pair_distances(model, pool_visual[negative], audio, batch_size)
        else:
            d_negative = pair_distances(model, visual, pool_audio[negative], batch_size)
        scaled = softmax_scaled(tf.constant(d_positive), tf.constant(d_negative))
        distance.update_state(*scaled)
        accuracy.update_state(*scaled)
        distances, correct = pair_scores(*(x.numpy() for x in scaled))
        clip_totals.append((len(starts), distances.sum(), correct.sum()))
        if have_metadata:
            if negatives == "frame":  # the other frame shows all the classes that sound here
                sounding = object_classes(metadata[clip_index], sounding_only=True)
                clear = np.array([not sounding <= object_classes(metadata[pool_clip[n]], False)
                                  for n in negative], np.float32)
            else:  # this frame shows all the classes that sound in the other clip
                visible = object_classes(metadata[clip_index], sounding_only=False)
                clear = np.array([not object_classes(metadata[pool_clip[n]], True) <= visible
                                  for n in negative], np.float32)
            ambiguous_total += int(len(clear) - clear.sum())
            distance_clear.update_state(*scaled, sample_weight=clear)
            accuracy_clear.update_state(*scaled, sample_weight=clear)
        if pointing_game:
            cell_maps = np.concatenate([keras.ops.convert_to_numpy(model.cell_map(
                tf.convert_to_tensor(visual[i : i + batch_size]),
                tf.convert_to_tensor(audio[i : i + batch_size])))
                for i in range(0, len(audio), batch_size)])
            for refine in (False, True):
                points = crop_to_original(map_peaks(cell_maps, crop_hw, refine, model.output_stride),
                                          metadata[clip_index]["frame_size"], resize_hw, crop_hw)
                outcomes = point_outcomes(points, frame_numbers, metadata[clip_index])
                outcomes_all[refine].append(outcomes)
                columns_all[refine].append(column_hits(points, frame_numbers,
                                                       metadata[clip_index]))
                per_clip[refine][clips[clip_index].clip_id] = float(np.mean(outcomes == "hit"))

    counts = accuracy.counts()
    num_windows = int(counts["true_positives"] + counts["false_negatives"])
    result = {
        "negatives": negatives,
        "distance": float(distance.result()),
        "accuracy": float(accuracy.result()),
        "counts": counts,
        "num_windows": num_windows,
        "num_clips": len(clips),
    }
    windows, distances, correct = np.array(clip_totals).T
    result.update(distance_interval=list(clip_interval(distances, windows)),  # as JSON has it
                  accuracy_interval=list(clip_interval(correct, windows)))
    if have_metadata:
        result.update(
            ambiguous_fraction=ambiguous_total / max(num_windows, 1),
            distance_unambiguous=float(distance_clear.result()),
            accuracy_unambiguous=float(accuracy_clear.result()),
        )
    if pointing_game:
        for refine, suffix in ((False, ""), (True, "_refined")):
            outcomes = np.concatenate(outcomes_all[refine])
            rates = per_clip[refine].values()
            result.update({
                f"pointing_window_hit_rate{suffix}": float(np.mean(outcomes == "hit")),
                f"pointing_clip_hit_rate{suffix}": float(np.mean([r >= 0.5 for r in rates])),
                f"pointing_silent_rate{suffix}": float(np.mean(outcomes == "silent")),
                f"pointing_background_rate{suffix}": float(np.mean(outcomes == "background")),
                f"pointing_column_hit_rate{suffix}": float(np.mean(np.concatenate(
                    columns_all[refine]))),
                f"per_clip{suffix}": per_clip[refine],
            })
    return result


# === Correlation analysis (supp. Fig. 1-2) ===


def centre_windows(clips: Sequence[fairplay.Clip], resize_hw, crop_hw, num_clips: int = 10,
                   seed: int = 0) -> dict:
    """The middle window of `num_clips` random distinct clips: inputs of `correlation_matrix`.

    Returns:
      dict: `mono_patch` `[n, 96, 64]`, `frame` `[n, crop_h, crop_w, 3]`, `clip_id` [n] str,
      `frame_number` `[n]` (1-based).
    """
    if len(clips) < num_clips:
        raise ValueError(f"{num_clips} clips asked for, the split has {len(clips)}.")
    chosen = sorted(np.random.default_rng(seed).choice(len(clips), num_clips, replace=False))
    subset = [clips[i] for i in chosen]
    patches, frames, numbers = [], [], []
    for example in fairplay.evaluation_dataset(subset, resize_hw, crop_hw):
        length = int(example["mono"].shape[0])
        start = max(0, (length - CHUNK_SAMPLES) // 2)
        number = int(window_frames([start], int(example["frames"].shape[0]))[0])
        patches.append(window_patches(example["mono"].numpy(), [start])[0])
        frames.append(example["frames"][number - 1].numpy())
        numbers.append(number)
    return {"mono_patch": np.stack(patches), "frame": np.stack(frames),
            "clip_id": [c.clip_id for c in subset], "frame_number": np.array(numbers)}


def correlation_matrix(model, mono_patch, frames, batch_size: int = 32) -> dict:
    """Audio x frame distances of n clips (supp. Fig. 1-2); row i = audio i, column j = frame j.

    Returns:
      dict of `[n, n]` float arrays: `distance` d(audio i, frame j); `scaled` (off-diagonal: D-
      of softmax([d_ii, d_ij]); diagonal: the mean D+ of row i's pairs); `correlation` =
      1 - scaled.
    """
    visual = encode_frames(model, np.asarray(frames, np.float32), batch_size)
    audio = audio_features(model, np.asarray(mono_patch, np.float32), batch_size)
    n = len(audio)
    rows, columns = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    distance = pair_distances(model, visual[columns.ravel()], audio[rows.ravel()],
                              batch_size).reshape(n, n)
    positive = np.repeat(np.diag(distance)[:, None], n, axis=1)
    scaled_positive, scaled_negative = (keras.ops.convert_to_numpy(v) for v in softmax_scaled(
        tf.constant(positive, tf.float32), tf.constant(distance, tf.float32)))
    off_diagonal = ~np.eye(n, dtype=bool)
    scaled = np.where(off_diagonal, scaled_negative, 0.0)
    scaled[np.diag_indices(n)] = (scaled_positive * off_diagonal).sum(1) / max(n - 1, 1)
    return {"distance": distance, "scaled": scaled, "correlation": 1.0 - scaled}


def localization_panels(model, clips: Sequence[fairplay.Clip], resize_hw, crop_hw,
                        num_clips: int = 4, times_s: Sequence[float] = (1.5, 4.0, 6.5, 9.0),
                        seed: int = 0) -> dict:
    """Frames, maps and boxes (in the evaluation frame's pixels) of a few clips at a few times.

    Returns:
      dict for `plot_localization_maps`: `frames`, `maps`, `titles`, `boxes` (None without
      metadata), `peaks`; panels are ordered clip by clip, `len(times_s)` per clip.
    """
    chosen = sorted(np.random.default_rng(seed).choice(len(clips), num_clips, replace=False))
    subset = [clips[i] for i in chosen]
    frames, patches, titles, boxes = [], [], [], []
    for clip, example in zip(subset, fairplay.evaluation_dataset(subset, resize_hw, crop_hw)):
        length = int(example["mono"].shape[0])
        metadata = load_metadata(clip)
        for time_s in times_s:
            start = int(np.clip(time_s * SAMPLE_RATE_HZ - CHUNK_SAMPLES // 2, 0,
                                max(0, length - CHUNK_SAMPLES)))
            number = int(window_frames([start], int(example["frames"].shape[0]))[0])
            frames.append(example["frames"][number - 1].numpy())
            patches.append(window_patches(example["mono"].numpy(), [start])[0])
            titles.append(f"{clip.clip_id} t={(start + CHUNK_SAMPLES / 2) / SAMPLE_RATE_HZ:.1f}s")
            if metadata is not None:
                boxes.append(_boxes_in_crop(metadata, number, resize_hw, crop_hw))
    maps, cells = [], []
    for i in range(0, len(frames), 16):
        outputs = model({"frame": tf.constant(np.stack(frames[i : i + 16])),
                         "mono_patch": tf.constant(np.stack(patches[i : i + 16]))},
                        training=False)
        maps.append(keras.ops.convert_to_numpy(outputs["map"]))
        cells.append(keras.ops.convert_to_numpy(outputs["attention"]))
    frames = np.stack(frames)
    return {"frames": frames, "maps": np.concatenate(maps), "titles": titles,
            "boxes": boxes if len(boxes) == len(frames) else None,
            "peaks": map_peaks(np.concatenate(cells), frames.shape[1:3],
                               stride=model.output_stride)}


def _boxes_in_crop(metadata: dict, frame_number: int, resize_hw, crop_hw):
    """The metadata boxes of a frame in the pixels of its resized, centrally cropped version."""
    width, height = metadata["frame_size"]
    top = (resize_hw[0] - crop_hw[0]) // 2
    left = (resize_hw[1] - crop_hw[1]) // 2
    sx, sy = resize_hw[1] / width, resize_hw[0] / height
    boxes = []
    for item in metadata["objects"]:
        x0, y0, x1, y1 = item["boxes_xyxy"][frame_number - 1]
        boxes.append(([x0 * sx - left, y0 * sy - top, x1 * sx - left, y1 * sy - top],
                      bool(item["sounding"])))
    return boxes
