"""The localization heads (models/localization_heads.py): numpy references, round trips, errors."""

import numpy as np
import pytest
import tensorflow as tf
from localization_reference import np_dense, np_osa, np_ssm_distance, to_numpy
from roundtrip import assert_round_trip

from keras_binaural.models import localization_heads as heads
from keras_binaural.models.localization_core import l2_distance

RNG = np.random.default_rng(0)


def test_osa_head_matches_numpy_and_round_trips(tmp_path):
    head = heads.OSAHead(feature_size=8, temperature=0.1)
    inputs = {"audio_embedding": RNG.normal(size=(3, 5)).astype("float32"),
              "visual": RNG.uniform(size=(3, 2, 3, 8)).astype("float32")}
    out = assert_round_trip(head, inputs, tmp_path)
    a, s, o, attention = np_osa(head, inputs["audio_embedding"], inputs["visual"])
    for key, value in (("audio_feature", a), ("scene_feature", s), ("object_feature", o),
                       ("attention", attention)):
        np.testing.assert_allclose(to_numpy(out[key]), value, atol=1e-4, err_msg=key)


def test_ssm_head_matches_numpy_and_round_trips(tmp_path):
    head = heads.SSMHead(feature_size=8, temperature=0.1)
    inputs = {"audio_embedding": RNG.normal(size=(3, 10)).astype("float32"),
              "visual": RNG.uniform(size=(3, 2, 3, 8)).astype("float32")}
    out = assert_round_trip(head, inputs, tmp_path)
    assert out["audio_feature"].shape == (3, 16) and out["attention"].shape == (3, 2, 2, 3)
    np.testing.assert_allclose(to_numpy(l2_distance(out["audio_feature"], out["object_feature"])),
                               np_ssm_distance(head, inputs["audio_embedding"], inputs["visual"]),
                               atol=1e-4)
    # The swapped negative is the same audio with its halves exchanged.
    _, d_frame, d_swap = (to_numpy(v) for v in head.pair_distances(
        tf.constant(inputs["audio_embedding"]), inputs["visual"], inputs["visual"][::-1]))
    embedding = inputs["audio_embedding"]
    swapped = np.concatenate([embedding[:, 5:], embedding[:, :5]], 1)
    np.testing.assert_allclose(d_swap, np_ssm_distance(head, swapped, inputs["visual"]), atol=1e-4)
    np.testing.assert_allclose(d_frame, np_ssm_distance(head, inputs["audio_embedding"],
                                                         inputs["visual"][::-1]), atol=1e-4)


def test_baseline_head_round_trips(tmp_path):
    head = heads.BaselineHead(feature_size=8)
    inputs = {"audio_embedding": RNG.normal(size=(3, 5)).astype("float32"),
              "visual": RNG.uniform(size=(3, 2, 3, 8)).astype("float32")}
    out = assert_round_trip(head, inputs, tmp_path)
    f_a = np_dense(head.audio_fc2, np_dense(head.audio_fc1, inputs["audio_embedding"], True))
    np.testing.assert_allclose(to_numpy(out["audio_feature"]), f_a, atol=1e-5)
    assert ((to_numpy(out["attention"]) >= 0) & (to_numpy(out["attention"]) <= 1)).all()


def test_heads_reject_visual_maps_of_another_width():
    with pytest.raises(ValueError, match="512 channels"):
        heads.OSAHead()({"audio_embedding": np.zeros([1, 128], "float32"),
                       "visual": np.zeros([1, 2, 2, 64], "float32")})
