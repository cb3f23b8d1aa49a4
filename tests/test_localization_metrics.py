"""The audio-visual pair metrics (supp. Eq. 10-11): distance and accuracy on constructed pairs."""

import numpy as np
import pytest

from keras_binaural.localization_metrics import AudioVisualDistance, PairAccuracy, pair_accuracy


def test_pair_accuracy_on_constructed_counts():
    metric = PairAccuracy()
    # Positives: D+ <= 0.5 for 3 of 4 (TP = 3, FN = 1); negatives: D- > 0.5 for 2 (TN = 2, FP = 2).
    metric.update_state(np.array([0.1, 0.2, 0.45, 0.7]), np.array([0.9, 0.6, 0.3, 0.5]))
    assert metric.counts() == {"true_positives": 3.0, "false_negatives": 1.0,
                               "true_negatives": 2.0, "false_positives": 2.0}
    assert float(metric.result()) == pytest.approx((3 + 2) / (2 * (3 + 1)))
    metric.update_state(np.array([0.9, 0.1]), np.array([0.8, 0.9]), sample_weight=[1.0, 0.0])
    assert metric.counts()["false_negatives"] == 2.0 and metric.counts()["true_positives"] == 3.0
    assert float(metric.result()) == pytest.approx((3 + 3) / (2 * 5))
    assert float(pair_accuracy(90.0, 85.0, 10.0)) == pytest.approx(0.875)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    clone = PairAccuracy.from_config(PairAccuracy(threshold=0.4).get_config())
    assert clone.threshold == 0.4


def test_distance_metric_is_eq_10():
    metric = AudioVisualDistance()
    metric.update_state(np.array([0.1, 0.6]), np.array([0.9, 0.4]))
    expected = np.mean([np.hypot(0.1, 0.1), np.hypot(0.6, 0.6)])
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
