"""Keras VGGish and the waveform embedder: size, contract, round trips, errors."""

import numpy as np
import pytest
import tensorflow as tf
from roundtrip import assert_round_trip

from keras_binaural.audio import frontend
from keras_binaural.models.vggish import VGGish, VGGishEmbedder, num_patches

# Each VGGish holds 72 M parameters: the tests share one embedder (and its VGGish).


@pytest.fixture(scope="module")
def embedder():
    return VGGishEmbedder()


@pytest.fixture(scope="module")
def patches():
    rng = np.random.default_rng(0)
    waveform = 0.3 * rng.standard_normal([2, 2 * frontend.PATCH_SAMPLES]).astype("float32")
    return frontend.log_mel_patches(waveform).numpy().reshape(-1, 96, 64)[:2]


def test_parameter_count_is_the_released_one(embedder):
    assert embedder.vggish.count_params() == 72_141_184
    assert [w.shape for w in embedder.vggish.weights][-2:] == [(4096, 128), (128,)]


def test_round_trip_on_two_patches(embedder, patches, tmp_path):
    embeddings = assert_round_trip(embedder.vggish, patches, tmp_path)
    assert embeddings.shape == (2, 128)
    assert np.std(embeddings) > 1e-3  # not a degenerate constant output


def test_embedder_round_trip_mean_pooled(embedder, tmp_path):
    pooled = VGGishEmbedder(pooling="mean", trainable=False)
    pooled.set_weights(embedder.get_weights())
    waveform = np.random.default_rng(1).uniform(-0.5, 0.5, [2, 16000]).astype("float32")
    out = assert_round_trip(pooled, waveform, tmp_path)
    assert out.shape == (2, 128)
    assert pooled.get_config()["trainable"] is False and not pooled.trainable_weights


def test_embedder_is_frontend_then_vggish(embedder):
    rng = np.random.default_rng(2)
    waveform = rng.uniform(-0.5, 0.5, [3, 3 * 16000]).astype("float32")
    out = embedder(waveform)
    assert out.shape == (3, num_patches(3 * 16000), 128) == (3, 3, 128)
    assert embedder.compute_output_shape((None, 3 * 16000)) == (None, 3, 128)
    patches = frontend.log_mel_patches(waveform[1])
    np.testing.assert_allclose(out[1], embedder.vggish(patches), atol=1e-5, rtol=0)


def test_short_audio_is_padded_to_one_patch(embedder):
    short = np.random.default_rng(3).uniform(-0.5, 0.5, [2, 5000]).astype("float32")
    padded = np.pad(short, [[0, 0], [0, frontend.PATCH_SAMPLES - 5000]])
    out = embedder(short)
    assert out.shape == (2, 1, 128)
    np.testing.assert_allclose(out, embedder(padded), atol=1e-6, rtol=0)


def test_frozen_and_embedding_activation_config():
    # One more VGGish, but it is the only way to check the constructor's options.
    model = VGGish(embedding_activation="relu", trainable=False)
    assert not model.trainable_weights and len(model.non_trainable_weights) == 18
    config = model.get_config()
    assert config["embedding_activation"] == "relu" and config["trainable"] is False
    out = model(np.random.default_rng(4).normal(size=[2, 96, 64]).astype("float32"))
    assert np.all(out.numpy() >= 0)


@pytest.mark.parametrize("shape", [(2, 96, 65), (96, 64), (2, 96, 64, 1)])
def test_wrong_patch_shape_is_a_clear_error(embedder, shape):
    with pytest.raises(ValueError, match=r"\[batch, 96, 64\]"):
        embedder.vggish(np.zeros(shape, "float32"))


def test_wrong_waveform_is_a_clear_error(embedder):
    with pytest.raises(ValueError, match=r"\[batch, time\]"):
        embedder(np.zeros([16000], "float32"))
    with pytest.raises(ValueError, match=r"\[batch, time\]"):
        embedder(tf.zeros([2, 16000], tf.int32))
    with pytest.raises(ValueError, match="pooling"):
        VGGishEmbedder(pooling="max")
