"""The localization math (models/localization_core.py) against numpy and hand-computed values."""

import numpy as np
import tensorflow as tf
from localization_reference import np_attention, np_pair_loss, to_numpy

from keras_binaural.localization_metrics import softmax_scaled
from keras_binaural.models import localization_core as core

RNG = np.random.default_rng(0)


def test_masked_pair_loss_averages_the_valid_negatives():
    d_pos = np.array([1.0, 2.0])
    d_all = np.array([[1.0, 3.0, 0.5], [0.0, 2.5, 4.0]])
    mask = np.array([[0, 1, 1], [0, 0, 0]])
    losses, valid = (to_numpy(v) for v in core.masked_pair_loss(
        tf.constant(d_pos, tf.float32), tf.constant(d_all, tf.float32), mask))
    expected = np_pair_loss(np.array([1.0, 1.0]), np.array([3.0, 0.5])).mean()
    np.testing.assert_allclose(losses, [expected, 0.0], atol=1e-6)
    np.testing.assert_array_equal(valid, [1.0, 0.0])


def test_pair_loss_against_hand_computed_values():
    # d+ = 1, d- = 3: D+ = 1 / (1 + e^2) = 0.119203, D- = 0.880797, l = sqrt(2) D+ = 0.168578.
    loss = to_numpy(core.pair_loss(tf.constant([1.0, 3.0]), tf.constant([3.0, 1.0])))
    np.testing.assert_allclose(loss, [0.168578, 1.245635], atol=1e-5)
    scaled = [to_numpy(v) for v in softmax_scaled(tf.constant([1.0]), tf.constant([3.0]))]
    np.testing.assert_allclose(np.concatenate(scaled), [0.119203, 0.880797], atol=1e-6)
    d = to_numpy(core.l2_distance(tf.constant([[0.0, 0.0], [1.0, 1.0]]),
                            tf.constant([[3.0, 4.0], [1.0, 1.0]])))
    np.testing.assert_allclose(d, [5.0, 1e-6], atol=1e-6)


def test_ssm_loss_is_the_mean_of_both_pair_losses():
    d_pos, d_frame, d_swap = np.array([1.0, 2.0]), np.array([3.0, 0.5]), np.array([1.5, 4.0])
    expected = 0.5 * (np_pair_loss(d_pos, d_frame) + np_pair_loss(d_pos, d_swap))
    actual = to_numpy(core.ssm_loss(*(tf.constant(v, tf.float32) for v in (d_pos, d_frame, d_swap))))
    np.testing.assert_allclose(actual, expected, atol=1e-6)


def test_baseline_gate_is_supp_eq_1():
    f_v, f_a = np.array([[1.0, 2.0]]), np.array([[0.5, -1.0]])  # f_v . f_a = -1.5
    expected = f_v / (1.0 + np.exp(1.5))
    np.testing.assert_allclose(to_numpy(core.baseline_gate(f_v, f_a)), expected, atol=1e-6)


def test_attention_sums_to_one_and_peaks_where_the_feature_matches_the_audio():
    query = RNG.normal(size=(2, 16)).astype("float32")
    visual = RNG.normal(size=(2, 3, 5, 16)).astype("float32")
    visual[0, 1, 3] = 2.0 * query[0]  # example 0: cell (1, 3) holds the audio's feature
    visual[1, 2, 0] = 0.5 * query[1]  # example 1: cell (2, 0)
    attention = to_numpy(core.object_attention(visual, query, temperature=0.07))
    np.testing.assert_allclose(attention.sum((1, 2)), 1.0, atol=1e-5)
    assert (attention >= 0).all()
    assert np.unravel_index(attention[0].argmax(), (3, 5)) == (1, 3)
    assert np.unravel_index(attention[1].argmax(), (3, 5)) == (2, 0)
    np.testing.assert_allclose(attention, np_attention(visual, query, 0.07), atol=1e-5)
    # The map over a 96 x 160 frame peaks in cell (1, 3)'s 32 x 32 pixel square.
    full = to_numpy(core.upsample_map(attention, (96, 160)))
    assert full.shape == (2, 96, 160)
    row, column = np.unravel_index(full[0].argmax(), (96, 160))
    assert 32 <= row < 64 and 96 <= column < 128
    centroid = to_numpy(core.attention_centroid(attention))
    assert centroid[0, 0] > 0.2 and centroid[1, 0] < -0.2  # right of centre; left of centre


def test_negative_audio_indices_skip_the_same_clip():
    ids = tf.constant([b"a", b"a", b"b", b"c", b"c"])
    indices, valid = (to_numpy(v) for v in core.negative_audio_indices(ids))
    np.testing.assert_array_equal(indices, [2, 2, 3, 0, 0])
    assert valid.all()
    indices, valid = (to_numpy(v) for v in core.negative_audio_indices(tf.constant([b"a", b"a"])))
    assert not valid.any()
    indices, valid = (to_numpy(v) for v in core.negative_audio_indices(None, batch_size=3))
    np.testing.assert_array_equal(indices, [1, 2, 0])
    assert valid.all()


def test_drop_hardest_negatives_leaves_out_the_best_matches():
    closeness = np.array([[0.9, 0.1, 0.5, 0.7, 0.3], [0.2, 0.8, 0.6, 0.4, 0.1]], "float32")
    mask = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], bool)
    dropped = core.drop_hardest_negatives(closeness, mask, 0.5).numpy()
    # Row 0: 4 valid, the 2 closest (0.9, 0.7) dropped; row 1: 5 valid, floor(2.5) = 2 dropped.
    np.testing.assert_array_equal(dropped, [[0, 1, 1, 0, 0], [1, 0, 0, 1, 1]])
    np.testing.assert_array_equal(core.drop_hardest_negatives(closeness, mask, 0.0), mask)
