"""The audio-visual pair metrics of the localization evaluation (supp. Eq. 10-11, SPEC section 4).

A pair is an audio clip with a frame; its raw distance d comes from a localizer
(`LocalizationModel.pair_distance`). A positive pair (the audio's own frame) and a negative pair
(another clip's frame or audio) are scaled together, (D+, D-) = softmax([d+, d-]), so that
D+ + D- = 1 and D+ -> 0 when the positive is much closer (`softmax_scaled`):

- **Distance** (supp. Eq. 10): ||(D+, D-) - (0, 1)||_2 per pair (`scaled_pair_distance`), its
  mean over pairs `AudioVisualDistance`. The localizers' training loss is the same quantity
  (supp. Eq. 3, `localization_core.pair_loss`).
- **Accuracy** (supp. Eq. 11): a pair counts as "paired" when its D <= 0.5; accuracy =
  (TP + TN) / (2 (TP + FN)) (`pair_accuracy`), accumulated over batches by `PairAccuracy`.

The binaural quality metrics (supp. Eq. 4-9) are in `keras_binaural.metrics`.
"""

from __future__ import annotations

import keras

_EPSILON = 1e-12


def softmax_scaled(d_positive, d_negative):
    """Softmax over a positive/negative pair of distances (supp. Eq. 10's scaling).

    Args:
      d_positive, d_negative: `[batch]` raw distances d+ and d-.

    Returns:
      (D+, D-), each `[batch]` in [0, 1] with D+ + D- = 1; D+ -> 0 when d+ << d-.
    """
    scaled = keras.ops.softmax(keras.ops.stack([d_positive, d_negative], axis=-1), axis=-1)
    return scaled[..., 0], scaled[..., 1]


def scaled_pair_distance(scaled_positive, scaled_negative):
    """||(D+, D-) - (0, 1)||_2 per pair (supp. Eq. 3 and 10): `[batch]` -> `[batch]`."""
    squared = keras.ops.square(scaled_positive) + keras.ops.square(scaled_negative - 1.0)
    return keras.ops.sqrt(keras.ops.maximum(squared, _EPSILON))



def pair_accuracy(true_positives, true_negatives, false_negatives):
    """Supp. Eq. 11: (TP + TN) / (2 (TP + FN)); 0 when there are no positive pairs.

    TP: positive pairs predicted paired (D+ <= 0.5); FN: positive pairs predicted unpaired;
    TN: negative pairs predicted unpaired (D- > 0.5). With one negative per positive the
    denominator is the number of pairs.
    """
    positives = keras.ops.convert_to_tensor(true_positives + false_negatives, "float32")
    correct = keras.ops.convert_to_tensor(true_positives + true_negatives, "float32")
    return keras.ops.where(positives > 0, correct / (2.0 * keras.ops.maximum(positives, 1.0)), 0.0)


@keras.saving.register_keras_serializable(package="keras_binaural")
class AudioVisualDistance(keras.metrics.Metric):
    """Mean audio-visual distance ||(D+, D-) - (0, 1)||_2 over pairs (supp. Eq. 10).

    Call arguments (`update_state`):
      scaled_positive: `[batch]` D+ of the positive pairs (softmax-scaled, `softmax_scaled`).
      scaled_negative: `[batch]` D- of their negative pairs.
      sample_weight: optional `[batch]` weights (0 drops a pair).

    Example:
    >>> metric = AudioVisualDistance()
    >>> metric.update_state(*softmax_scaled(d_positive, d_negative))  # doctest: +SKIP
    """

    def __init__(self, name: str = "distance", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, scaled_positive, scaled_negative, sample_weight=None):
        values = keras.ops.cast(scaled_pair_distance(scaled_positive, scaled_negative), "float32")
        weights = keras.ops.ones_like(values) if sample_weight is None else keras.ops.cast(
            sample_weight, "float32")
        self.total.assign_add(keras.ops.sum(values * weights))
        self.count.assign_add(keras.ops.sum(weights))

    def result(self):
        return self.total / keras.ops.maximum(self.count, 1e-12)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package="keras_binaural")
class PairAccuracy(keras.metrics.Metric):
    """Audio-visual pair classification accuracy (supp. Eq. 11), from accumulated counts.

    A pair is predicted "paired" when its scaled distance D <= `threshold` (0.5). Positive pairs
    give TP (D+ <= 0.5) or FN; negative pairs give TN (D- > 0.5) or FP. Result:
    (TP + TN) / (2 (TP + FN)). The four counts are kept (`counts()`).

    Args:
      threshold: the "paired" threshold on D.
      name: metric name.

    Call arguments (`update_state`):
      scaled_positive: `[batch]` D+ of the positive pairs.
      scaled_negative: `[batch]` D- of the negative pairs.
      sample_weight: optional `[batch]` weights (0 drops a pair).
    """

    def __init__(self, threshold: float = 0.5, name: str = "accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = threshold
        self.true_positives = self.add_variable((), initializer="zeros", name="true_positives")
        self.false_negatives = self.add_variable((), initializer="zeros", name="false_negatives")
        self.true_negatives = self.add_variable((), initializer="zeros", name="true_negatives")
        self.false_positives = self.add_variable((), initializer="zeros", name="false_positives")

    def update_state(self, scaled_positive, scaled_negative, sample_weight=None):
        positive_paired = keras.ops.cast(scaled_positive <= self.threshold, "float32")
        negative_paired = keras.ops.cast(scaled_negative <= self.threshold, "float32")
        weights = keras.ops.ones_like(positive_paired) if sample_weight is None else (
            keras.ops.cast(sample_weight, "float32"))
        self.true_positives.assign_add(keras.ops.sum(positive_paired * weights))
        self.false_negatives.assign_add(keras.ops.sum((1.0 - positive_paired) * weights))
        self.true_negatives.assign_add(keras.ops.sum((1.0 - negative_paired) * weights))
        self.false_positives.assign_add(keras.ops.sum(negative_paired * weights))

    def result(self):
        return pair_accuracy(self.true_positives, self.true_negatives, self.false_negatives)

    def counts(self) -> dict[str, float]:
        """The accumulated TP, FN, TN and FP."""
        return {name: float(keras.ops.convert_to_numpy(variable)) for name, variable in (
            ("true_positives", self.true_positives), ("false_negatives", self.false_negatives),
            ("true_negatives", self.true_negatives), ("false_positives", self.false_positives))}

    def reset_state(self):
        for variable in (self.true_positives, self.false_negatives, self.true_negatives,
                         self.false_positives):
            variable.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}
