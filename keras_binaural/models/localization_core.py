"""The localization math: plain functions of tensors, testable without a model (SPEC section 4).

The heads (`keras_binaural.models.localization_heads`) and the model
(`keras_binaural.models.localization`) only call these, as a ddsp synth only calls `core.py`.

Paper symbols -> code names (supp. section 1 and 2; "our reading" of main-paper Eq. 5-6):
    e            audio embedding of a 0.96 s log-mel patch      `audio_embedding` [batch, 128]
    a = f_a^m    LayerNorm(FC(ReLU(FC(e))))                     `audio_feature`   [batch, 512]
    V, V-        ResNet-18 map of the positive / negative frame `visual`, `negative_visual`
                                                                [batch, h, w, 512]
    s = f_v^n    LayerNorm(GlobalAvgPool(V))  (scene)           `scene_feature`   [batch, 512]
    A            softmax_ij(<V^_ij, a^> / tau)  (Eq. 5)         `attention`       [batch, h, w]
    o, o-        FC(ReLU(FC(sum_ij A_ij V_ij)))  (Eq. 5, 6)     `object_feature`  [batch, 512]
    d+, d-       ||a - f+||_2, ||a - f-||_2  (supp. Eq. 2)       `d_positive`, `d_negative`
    D+, D-       softmax([d+, d-])  (so D+ -> 0 when f+ is near) `scaled_positive`, ...
    l            ||(D+, D-) - (0, 1)||_2  (supp. Eq. 3, 10)      `pair_loss`
    l_sce_loc    l with f = s;  l_obj_loc: l with f = o          `sce_loss`, `obj_loss`
    f_v, f_pa,   pooled visual feature, projected positive /    `visual_feature`,
    f_na, f'_v   negative audio, gated visual f_v sigma(f_v^T f_pa) (supp. Eq. 1) `gated`

The softmax scaling (D+, D-) and the pair distance ||(D+, D-) - (0, 1)|| are the evaluation's
(supp. Eq. 10, `keras_binaural.localization_metrics`); the loss reuses them.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_binaural.localization_metrics import scaled_pair_distance, softmax_scaled

VISUAL_STRIDE = 32  # ResNet-18's output stride: one map cell per 32 x 32 pixels
_EPSILON = 1e-12


def l2_distance(x, y):
    """Euclidean distance ||x - y||_2 over the last axis, `[..., n]` -> `[...]`.

    The squared norm is floored at 1e-12 so that the gradient stays finite at x = y.
    """
    squared = keras.ops.sum(keras.ops.square(x - y), axis=-1)
    return keras.ops.sqrt(keras.ops.maximum(squared, _EPSILON))


def pair_loss(d_positive, d_negative):
    """The softmax-scaled pair loss l = ||softmax([d+, d-]) - (0, 1)||_2 (supp. Eq. 3).

    Args:
      d_positive, d_negative: `[batch]` raw distances.

    Returns:
      `[batch]` in [0, sqrt(2)]; since D- = 1 - D+, l = sqrt(2) D+ = sqrt(2) sigmoid(d+ - d-).
    """
    return scaled_pair_distance(*softmax_scaled(d_positive, d_negative))


def ssm_loss(d_positive, d_negative_frame, d_negative_swap):
    """The SSM loss: the mean of the pair losses against both negatives, `[batch]`.

    Args:
      d_positive: `[batch]` ||a - o(V, a)|| for the clip's binaural audio and its frame.
      d_negative_frame: the same audio with the negative frame V- (another clip).
      d_negative_swap: the channel-swapped audio a' with the clip's own frame, ||a' - o(V, a')||.
    """
    return 0.5 * (pair_loss(d_positive, d_negative_frame) + pair_loss(d_positive, d_negative_swap))


def masked_pair_loss(d_positive, d_candidates, mask):
    """Mean pair loss of each positive against its masked negatives (in-batch negatives).

    Args:
      d_positive: `[batch]` d+ of each example's positive pair.
      d_candidates: `[batch, k]` distances of the same anchor to k candidate negatives.
      mask: `[batch, k]` 1 where the candidate is a valid negative (another clip).

    Returns:
      (`[batch]` mean over the valid negatives of `pair_loss(d+, d-)` (0 without any),
      `[batch]` 1 where the example has at least one valid negative).
    """
    mask = keras.ops.cast(mask, d_positive.dtype)
    positive = keras.ops.broadcast_to(keras.ops.expand_dims(d_positive, -1),
                                      keras.ops.shape(d_candidates))
    losses = pair_loss(positive, d_candidates)
    count = keras.ops.sum(mask, axis=-1)
    valid = keras.ops.cast(count > 0, d_positive.dtype)
    return keras.ops.sum(losses * mask, axis=-1) / keras.ops.maximum(count, 1.0), valid


def drop_hardest_negatives(closeness, mask, fraction: float):
    """`mask` without each row's `fraction` of valid candidates that match best (ours).

    Synthetic scenes (and FAIR-Play) share object classes between clips: another clip's frame
    that shows the sounding class is a negative no appearance can tell from the positive (about
    15 % of them here). Once the true negatives are separated, those false negatives dominate
    the contrastive gradient, and the only way left to separate them is to recognise the clip
    (its room around the object): the map drifts off the object onto its edges (BENCHMARKS.md).
    Leaving out, per anchor, the candidates the model already finds closest (no labels needed:
    by the model's own, gradient-stopped score) removes most false negatives, as false-negative-
    aware contrastive learning does (Sun et al., "Learning Audio-Visual Source Localization via
    False Negative Aware Contrastive Learning", CVPR 2023).

    Args:
      closeness: `[batch, k]` higher = a better match (e.g. minus a distance).
      mask: `[batch, k]` bool, the valid negatives.
      fraction: in [0, 1); floor(fraction x count) of each row's valid negatives are dropped.

    Returns:
      `[batch, k]` bool.
    """
    if not fraction:
        return mask
    closeness = tf.stop_gradient(tf.cast(closeness, tf.float32))
    masked = tf.where(mask, closeness, -np.inf)
    order = tf.argsort(masked, axis=-1, direction="DESCENDING")
    rank = tf.argsort(order, axis=-1)  # 0 = the best-matching candidate
    count = tf.reduce_sum(tf.cast(mask, tf.float32), axis=-1, keepdims=True)
    dropped = tf.cast(rank, tf.float32) < tf.floor(fraction * count)
    return tf.logical_and(mask, tf.logical_not(dropped))


def weighted_mean(values, weights=None):
    """Mean of `[batch]` values, or their weighted mean (0 when all weights are 0)."""
    if weights is None:
        return keras.ops.mean(values)
    weights = keras.ops.cast(weights, values.dtype)
    return keras.ops.sum(values * weights) / keras.ops.maximum(keras.ops.sum(weights), 1.0)


def l2_normalize(x, axis=-1):
    """x / ||x||_2 along `axis` (the norm floored at 1e-6)."""
    norm = keras.ops.sqrt(keras.ops.sum(keras.ops.square(x), axis=axis, keepdims=True))
    return x / keras.ops.maximum(norm, 1e-6)


def own_cell_similarity(visual, query):
    """cos(V_b,ij, a_b), each example's map against its own query: `[b, h, w, c]`, `[b, c]` ->
    `[b, h, w]`."""
    return keras.ops.einsum("bhwc,bc->bhw", l2_normalize(visual), l2_normalize(query))


def object_attention(visual, query, temperature: float):
    """Object attention A (main-paper Eq. 5, our reading): softmax over the h*w cells.

    Args:
      visual: `[batch, h, w, c]` visual map V.
      query: `[batch, c]` audio feature a.
      temperature: tau > 0; the cosine similarities (in [-1, 1]) are divided by it.

    Returns:
      `[batch, h, w]`, non-negative, summing to 1 over (h, w) for each example.
    """
    logits = own_cell_similarity(visual, query)
    shape = keras.ops.shape(logits)
    flat = keras.ops.reshape(logits / temperature, (shape[0], -1))
    return keras.ops.reshape(keras.ops.softmax(flat, axis=-1), shape)


def attention_pool(visual, attention):
    """sum_ij A_ij V_ij: `[batch, h, w, c]`, `[batch, h, w]` -> `[batch, c]`."""
    return keras.ops.einsum("bhwc,bhw->bc", visual, attention)


def attention_centroid(attention):
    """The attention's centre of mass (x, y), each in [-1, 1], `[batch, h, w]` -> `[batch, 2]`.

    x runs from the image's left (-1) to its right (+1), y from top to bottom; cell centres are
    at (2 j + 1) / w - 1.
    """
    shape = keras.ops.shape(attention)
    height, width = shape[1], shape[2]
    ys = (2.0 * keras.ops.cast(keras.ops.arange(height), attention.dtype) + 1.0) / (
        keras.ops.cast(height, attention.dtype)) - 1.0
    xs = (2.0 * keras.ops.cast(keras.ops.arange(width), attention.dtype) + 1.0) / (
        keras.ops.cast(width, attention.dtype)) - 1.0
    x = keras.ops.sum(keras.ops.sum(attention, axis=1) * xs, axis=-1)
    y = keras.ops.sum(keras.ops.sum(attention, axis=2) * ys, axis=-1)
    return keras.ops.stack([x, y], axis=-1)


def baseline_gate(visual_feature, audio_feature):
    """The additional baseline's visual object feature f'_v = f_v sigma(f_v^T f_pa) (supp. Eq. 1).

    Args:
      visual_feature: `[..., c]` f_v.
      audio_feature: `[..., c]` f_pa.

    Returns:
      `[..., c]` f'_v.
    """
    similarity = keras.ops.sum(visual_feature * audio_feature, axis=-1, keepdims=True)
    return visual_feature * keras.ops.sigmoid(similarity)


def column_bins(width: int, bins: int) -> np.ndarray:
    """`[width, bins]` float32: the share of each of `width` map columns in each of `bins` equal
    column bins (a map column straddling two bins is split between them)."""
    edges = np.linspace(0.0, width, bins + 1)
    columns = np.arange(width, dtype=np.float64)
    overlap = np.clip(np.minimum(columns[:, None] + 1, edges[None, 1:])
                      - np.maximum(columns[:, None], edges[None, :-1]), 0.0, None)
    return overlap.astype(np.float32)


def column_profile(cell_map, bins: int):
    """The map's mass per column, summed over rows and into `bins` equal column bins.

    Args:
      cell_map: `[B, h, w]` (static w).

    Returns:
      `[B, bins]` (sums to the map's total mass).
    """
    return tf.matmul(tf.reduce_sum(cell_map, axis=1), column_bins(cell_map.shape[2], bins))


def upsample_map(cell_map, frame_hw: tuple[int, int], stride: int = VISUAL_STRIDE):
    """A map over the cells of a stride-`stride` encoder -> a map over the frame's pixels.

    The encoders pad the frame to a multiple of their stride (ceil rounding), so cell (i, j)
    covers the pixels [s i, s i + s) x [s j, s j + s) of the padded frame (s = `stride`, 32 for
    ResNet-18): the map is resized bilinearly to (s h, s w), cell centres landing on pixel
    s i + (s - 1) / 2, and cropped to the frame.

    Args:
      cell_map: `[batch, h, w]`.
      frame_hw: the frame's (height, width) in pixels, Python ints.
      stride: the visual encoder's output stride (`output_stride`).

    Returns:
      `[batch, height, width]`.
    """
    height, width = frame_hw
    cells_h, cells_w = cell_map.shape[1], cell_map.shape[2]
    if not all(isinstance(size, int) for size in (height, width, cells_h, cells_w)):
        raise ValueError(
            "The localization map needs frames with a static height and width (batches of a "
            f"tf.data pipeline have them); got frame size {frame_hw} and map size "
            f"{(cells_h, cells_w)}."
        )
    resized = keras.ops.image.resize(
        keras.ops.expand_dims(cell_map, -1), (cells_h * stride, cells_w * stride),
        interpolation="bilinear", data_format="channels_last",
    )
    return resized[:, :height, :width, 0]


def negative_audio_indices(clip_ids=None, batch_size=None):
    """For each example, the nearest other example of the batch from another clip.

    Example i takes the audio of example (i + k) mod batch with the smallest k >= 1 whose clip id
    differs from its own (the baseline's negative audio f_na). TensorFlow, as it runs in the
    train step on string ids.

    Args:
      clip_ids: `[batch]` string (or int) clip ids, or None: then every example takes the next
        one (k = 1) and all are valid when batch > 1.
      batch_size: the batch size (a scalar tensor), needed when `clip_ids` is None.

    Returns:
      (indices `[batch]` int32, valid `[batch]` bool): valid is False for an example with no
      other clip in its batch (its loss term is dropped).
    """
    if clip_ids is None:
        batch = tf.convert_to_tensor(batch_size, tf.int32)
        indices = (tf.range(batch) + 1) % batch
        return indices, tf.fill([batch], batch > 1)
    batch = tf.shape(clip_ids)[0]
    # Shifts 1 .. batch - 1, then 0 (itself, never valid) so that the axis is never empty.
    shifts = tf.concat([tf.range(1, batch), [0]], axis=0)
    candidates = (tf.range(batch)[:, None] + shifts[None, :]) % batch
    other = tf.not_equal(tf.gather(clip_ids, candidates), clip_ids[:, None])
    first = tf.argmax(tf.cast(other, tf.int32), axis=1, output_type=tf.int32)
    indices = tf.gather(candidates, first, batch_dims=1)
    return indices, tf.reduce_any(other, axis=1)
