"""The TF Hub VGGish layer on a local module that the test exports from our Keras VGGish."""

import numpy as np
import pytest
import tensorflow as tf
from roundtrip import assert_round_trip

from keras_binaural.audio import frontend
from keras_binaural.models.hub import HubVGGishEmbedder, load_vggish_module, vggish_embedder
from keras_binaural.models.vggish import VGGishEmbedder


class _WaveformModule(tf.Module):
    """The official hub module's call form: 1-D float32 waveform at 16 kHz -> [patches, dim]."""

    def __init__(self, embed):
        super().__init__()
        self.embed = embed

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def __call__(self, waveform):
        return self.embed(frontend.log_mel_patches(waveform))


def _export(module: tf.Module, directory) -> str:
    tf.saved_model.save(module, str(directory))
    return str(directory)


@pytest.fixture(scope="module")
def keras_embedder():
    return VGGishEmbedder()


@pytest.fixture(scope="module")
def handle(keras_embedder, tmp_path_factory):
    """A VGGish-shaped hub module: the frontend followed by the Keras VGGish above."""
    return _export(_WaveformModule(keras_embedder.vggish), tmp_path_factory.mktemp("vggish_hub"))


@pytest.fixture(scope="module")
def small_handle(tmp_path_factory):
    """A small VGGish-shaped module (mean log-mel through a fixed projection), quick to load."""
    projection = tf.constant(np.random.default_rng(5).normal(size=[64, 128]), tf.float32)

    def embed(patches):
        return tf.reduce_mean(patches, axis=1) @ projection

    return _export(_WaveformModule(embed), tmp_path_factory.mktemp("small_hub"))


@pytest.fixture(scope="module")
def hub_embedder(handle):
    return HubVGGishEmbedder(handle)


@pytest.fixture(scope="module")
def waveform():
    return np.random.default_rng(0).uniform(-0.5, 0.5, [2, 40000]).astype("float32")


def test_hub_layer_matches_keras_vggish(hub_embedder, keras_embedder, waveform):
    expected = keras_embedder(waveform).numpy()
    assert expected.shape == (2, 2, 128) and np.std(expected) > 1e-3
    np.testing.assert_allclose(hub_embedder(waveform), expected, atol=1e-5, rtol=0)
    assert hub_embedder.compute_output_shape((None, 40000)) == (None, 2, 128)


def test_short_clip_is_padded_to_one_patch(hub_embedder, keras_embedder, waveform):
    short = waveform[:, :3000]
    out = hub_embedder(short)
    assert out.shape == (2, 1, 128)
    np.testing.assert_allclose(out, keras_embedder(short), atol=1e-5, rtol=0)


def test_round_trip_stores_the_handle(small_handle, waveform, tmp_path):
    pooled = HubVGGishEmbedder(small_handle, pooling="mean", name="hub_vggish")
    out = assert_round_trip(pooled, waveform, tmp_path)
    per_patch = HubVGGishEmbedder(small_handle)(waveform)
    assert out.shape == (2, 128) and per_patch.shape == (2, 2, 128)
    np.testing.assert_allclose(out, np.mean(per_patch, axis=1), atol=1e-6)
    config = pooled.get_config()
    assert config["handle"] == small_handle and config["pooling"] == "mean"
    assert not pooled.weights and not pooled.trainable  # frozen; nothing to write in .keras


def test_vggish_embedder_chooses_by_handle(small_handle):
    assert isinstance(vggish_embedder(small_handle, pooling="mean"), HubVGGishEmbedder)
    assert type(vggish_embedder(None)).__name__ == "VGGishEmbedder"


def test_missing_handle_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "no_such_module")
    with pytest.raises(ValueError, match="no_such_module"):
        HubVGGishEmbedder(missing)


def test_module_of_the_wrong_shape_is_a_clear_error(tmp_path):
    def wrong_width(patches):
        return tf.reduce_mean(patches, axis=1)[:, :7]  # [patches, 7]

    handle = _export(_WaveformModule(wrong_width), tmp_path / "not_vggish")
    with pytest.raises(ValueError, match=r"not_vggish.*not VGGish-shaped.*\(1, 7\)"):
        load_vggish_module(handle)


def test_module_that_rejects_waveforms_is_a_clear_error(tmp_path):
    class Images(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
        def __call__(self, image):
            return tf.reduce_mean(image, axis=0)

    handle = _export(Images(), tmp_path / "image_module")
    with pytest.raises(ValueError, match="image_module.*cannot be called"):
        HubVGGishEmbedder(handle)


def test_wrong_waveform_rank_is_a_clear_error(hub_embedder):
    with pytest.raises(ValueError, match=r"\[batch, time\]"):
        hub_embedder(np.zeros([16000], "float32"))
