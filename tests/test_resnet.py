"""Keras ResNet-18: size, shapes as torch computes them, round trips, normalisation, errors."""

import numpy as np
import pytest
from roundtrip import assert_round_trip

from keras_binaural.models.resnet import BasicBlock, ResNet18, normalize_imagenet


@pytest.fixture(scope="module")
def model():
    return ResNet18()


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).uniform(0, 1, [2, 64, 64, 3]).astype("float32")


def _count(weights) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


def test_parameter_counts_are_torchvisions(model):
    assert _count(model.trainable_weights) == 11_176_512  # resnet18 without fc
    assert _count(model.non_trainable_weights) == 9_600  # BN moving mean and variance


@pytest.mark.parametrize(
    "height, width, expected",
    # torch: every stride-2 stage maps n to floor((n - 1) / 2) + 1.
    [(64, 64, (2, 2)), (224, 224, (7, 7)), (70, 50, (3, 2)), (33, 31, (2, 1))],
)
def test_output_is_the_stride_32_map(model, height, width, expected):
    out = model(np.zeros([1, height, width, 3], "float32"))
    assert out.shape == (1, *expected, 512)
    assert model.compute_output_shape((None, height, width, 3)) == (None, *expected, 512)


def test_round_trip(model, frames, tmp_path):
    out = assert_round_trip(model, frames, tmp_path)
    assert out.shape == (2, 2, 2, 512) and np.all(out.numpy() >= 0)  # after the last ReLU


@pytest.mark.parametrize("strides, channels_in", [(1, 32), (2, 16)])
def test_basic_block_round_trip(strides, channels_in, tmp_path):
    block = BasicBlock(32, strides=strides)
    x = np.random.default_rng(1).normal(size=[2, 9, 9, channels_in]).astype("float32")
    out = assert_round_trip(block, x, tmp_path)
    assert out.shape == ((2, 9, 9, 32) if strides == 1 else (2, 5, 5, 32))
    assert block.downsample == (strides == 2)


def test_basic_block_without_shortcut_conv_needs_equal_channels():
    with pytest.raises(ValueError, match="downsample=True"):
        BasicBlock(32)(np.zeros([1, 8, 8, 16], "float32"))
    assert BasicBlock(32, downsample=True)(np.zeros([1, 8, 8, 16], "float32")).shape[-1] == 32


def test_normalization_inside_equals_the_helper(model, frames):
    outside = ResNet18(normalize_input=False)
    outside.set_weights(model.get_weights())
    np.testing.assert_allclose(
        model(frames), outside(normalize_imagenet(frames)), atol=1e-5, rtol=0
    )
    assert outside.get_config()["normalize_input"] is False


def test_training_updates_only_batch_norm_statistics(frames):
    model = ResNet18()
    before = model.bn1.moving_mean.numpy().copy()
    model(frames, training=True)
    assert not np.allclose(model.bn1.moving_mean.numpy(), before)


def test_frozen_option():
    model = ResNet18(trainable=False)
    assert not model.trainable_weights and model.get_config()["trainable"] is False


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros([64, 64, 3], "float32"),  # no batch axis
        np.zeros([1, 3, 64, 64], "float32"),  # channels first
        np.zeros([1, 64, 64, 3], "uint8"),  # not float
    ],
)
def test_wrong_frames_are_a_clear_error(model, bad):
    with pytest.raises(ValueError, match=r"\[batch, height, width, 3\].*float32"):
        model(bad)
