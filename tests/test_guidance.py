"""The object-aware guidance (models/guidance.py): column binning, the map's horizontal profile,
the scene layout and the guidance network's round trip."""

import keras
import numpy as np
from roundtrip import assert_round_trip

from keras_binaural.models.guidance import (
    GuidanceNetwork,
    binning_matrix,
    horizontal_profile,
    scene_layout,
)


def test_binning_matrix_averages_columns():
    matrix = binning_matrix(6, 4)  # bins of 1.5 columns
    np.testing.assert_allclose(matrix.sum(axis=0), np.ones(4), atol=1e-6)
    np.testing.assert_allclose(np.ones(6) @ matrix, np.ones(4), atol=1e-6)


def test_horizontal_profile_points_at_the_object():
    localization_map = np.zeros((2, 8, 16), "float32")
    localization_map[0, 3:5, 1:3] = 1.0  # left
    localization_map[1, :, 13:] = 1.0  # right
    profile = keras.ops.convert_to_numpy(horizontal_profile(localization_map, 4))
    np.testing.assert_allclose(profile.sum(axis=1), [4.0, 4.0], atol=1e-5)
    assert profile[0].argmax() == 0 and profile[1].argmax() == 3
    flat = horizontal_profile(np.ones((1, 4, 8), "float32"), 4)
    np.testing.assert_allclose(flat, np.ones((1, 4)), atol=1e-6)


def test_scene_layout_keeps_left_and_right_apart():
    visual_map = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype("float32")
    pooled = keras.ops.convert_to_numpy(scene_layout(visual_map, 1))
    np.testing.assert_allclose(pooled, visual_map.mean(axis=(1, 2)), atol=1e-6)
    halves = keras.ops.convert_to_numpy(scene_layout(visual_map, 2))
    expected = np.concatenate(
        [visual_map[:, :, :2].mean(axis=(1, 2)), visual_map[:, :, 2:].mean(axis=(1, 2))], axis=-1
    )
    np.testing.assert_allclose(halves, expected, atol=1e-6)
    # The same object on the left or on the right: one pooled feature, two different layouts.
    left, right = np.zeros((1, 2, 4, 5), "float32"), np.zeros((1, 2, 4, 5), "float32")
    left[:, :, 0], right[:, :, 3] = 1.0, 1.0
    np.testing.assert_allclose(scene_layout(left, 1), scene_layout(right, 1), atol=1e-6)
    assert np.abs(scene_layout(left, 2) - scene_layout(right, 2)).max() > 0.1


def test_guidance_network_round_trip(tmp_path):
    network = GuidanceNetwork(guidance_channels=8, hidden_channels=16)
    rng = np.random.default_rng(0)
    inputs = {
        "object_feature": rng.normal(size=(2, 5, 512)).astype("float32"),
        "profile": rng.uniform(size=(2, 5, 4)).astype("float32"),
        "scene_feature": rng.normal(size=(2, 5, 512)).astype("float32"),
    }
    assert assert_round_trip(network, inputs, tmp_path).shape == (2, 5, 8)
