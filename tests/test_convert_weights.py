"""Weight converters: the official VGGish TF checkpoint and torchvision resnet18 state dicts.

The tests write their own files with the real variable names and shapes (random values) and check
the converted models against independent forward passes (numpy for VGGish; torch.nn.functional
for ResNet-18 when torch is installed).
"""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from numpy.lib.stride_tricks import sliding_window_view

from keras_binaural.models.resnet import ResNet18, load_torchvision_resnet18_weights
from keras_binaural.models.vggish import VGGish, load_vggish_checkpoint

REPO = pathlib.Path(__file__).resolve().parents[1]

# === VGGish ===

# The release's variables (tensorflow/models research/audioset/vggish, vggish_slim.py).
VGGISH_SHAPES = {
    "vggish/conv1": (3, 3, 1, 64),
    "vggish/conv2": (3, 3, 64, 128),
    "vggish/conv3/conv3_1": (3, 3, 128, 256),
    "vggish/conv3/conv3_2": (3, 3, 256, 256),
    "vggish/conv4/conv4_1": (3, 3, 256, 512),
    "vggish/conv4/conv4_2": (3, 3, 512, 512),
    "vggish/fc1/fc1_1": (12288, 4096),
    "vggish/fc1/fc1_2": (4096, 4096),
    "vggish/fc2": (4096, 128),
}


def write_tf1_checkpoint(path: pathlib.Path, arrays: dict) -> str:
    """Writes `arrays` under their exact names with a TF1 Saver, V1 format as the release."""
    with tf.Graph().as_default():
        variables = {
            name: tf.compat.v1.get_variable(
                name,
                shape=value.shape,
                dtype=tf.float32,
                initializer=tf.compat.v1.zeros_initializer(),
            )
            for name, value in arrays.items()
        }
        saver = tf.compat.v1.train.Saver(
            list(variables.values()), write_version=tf.compat.v1.train.SaverDef.V1
        )
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            for name, variable in variables.items():
                variable.load(arrays[name], session)
            return saver.save(session, str(path), write_meta_graph=False)


def random_vggish_arrays(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {}
    for scope, shape in VGGISH_SHAPES.items():
        fan_in = int(np.prod(shape[:-1]))
        weights = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2 / fan_in))
        arrays[f"{scope}/weights"] = weights
        arrays[f"{scope}/biases"] = 0.1 * rng.standard_normal(shape[-1], dtype=np.float32)
    return arrays


def numpy_vggish(arrays: dict, patches: np.ndarray, embedding_relu: bool = False) -> np.ndarray:
    """The released VGGish forward pass in float64 numpy, written from vggish_slim.py."""

    def conv(x, scope):
        padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
        windows = sliding_window_view(padded, (3, 3), axis=(1, 2))  # [b, h, w, c, 3, 3]
        out = np.einsum("bhwcij,ijco->bhwo", windows, arrays[f"{scope}/weights"], optimize=True)
        return np.maximum(out + arrays[f"{scope}/biases"], 0)

    def pool(x):
        b, h, w, c = x.shape
        return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))

    def fc(x, scope, relu=True):
        out = x @ arrays[f"{scope}/weights"] + arrays[f"{scope}/biases"]
        return np.maximum(out, 0) if relu else out

    x = patches.astype(np.float64)[..., None]
    x = pool(conv(x, "vggish/conv1"))
    x = pool(conv(x, "vggish/conv2"))
    x = pool(conv(conv(x, "vggish/conv3/conv3_1"), "vggish/conv3/conv3_2"))
    x = pool(conv(conv(x, "vggish/conv4/conv4_1"), "vggish/conv4/conv4_2"))
    x = x.reshape(len(x), -1)  # slim.flatten of NHWC
    x = fc(fc(x, "vggish/fc1/fc1_1"), "vggish/fc1/fc1_2")
    return fc(x, "vggish/fc2", relu=embedding_relu)


@pytest.fixture(scope="module")
def vggish_checkpoint(tmp_path_factory):
    arrays = random_vggish_arrays()
    path = write_tf1_checkpoint(
        tmp_path_factory.mktemp("vggish_ckpt") / "vggish_model.ckpt", arrays
    )
    return path, arrays


@pytest.fixture(scope="module")
def vggish():
    return VGGish()  # 72 M parameters: one for the whole module


def test_vggish_checkpoint_matches_numpy_reference(vggish, vggish_checkpoint, tmp_path):
    path, arrays = vggish_checkpoint
    model = load_vggish_checkpoint(vggish, path)
    patches = np.random.default_rng(1).normal(-2.0, 1.5, [2, 96, 64]).astype("float32")
    expected = numpy_vggish(arrays, patches)
    assert np.std(expected) > 0.1
    np.testing.assert_allclose(
        model(patches), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()
    )

    # The command-line tool writes the same weights.
    output = tmp_path / "vggish.weights.h5"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "convert_vggish_checkpoint.py"),
            f"--checkpoint={path}",
            f"--output={output}",
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    # Reuse the model: load the file over zeroed weights.
    model.set_weights([np.zeros(w.shape, "float32") for w in model.weights])
    model.load_weights(str(output))
    np.testing.assert_array_equal(model.weights[-2].numpy(), arrays["vggish/fc2/weights"])
    np.testing.assert_array_equal(model.weights[12].numpy(), arrays["vggish/fc1/fc1_1/weights"])


def test_vggish_checkpoint_missing_variables_are_listed(vggish, tmp_path):
    arrays = {
        "vggish/conv1/weights": np.zeros([3, 3, 1, 64], "float32"),
        "vggish/conv1/biases": np.zeros([64], "float32"),
    }
    path = write_tf1_checkpoint(tmp_path / "partial.ckpt", arrays)
    with pytest.raises(
        ValueError, match=r"lacks 16 of 18 .*vggish/conv2/weights.*vggish/fc2/biases"
    ):
        load_vggish_checkpoint(vggish, path)


def test_vggish_checkpoint_wrong_shape_and_missing_file(vggish, tmp_path):
    arrays = {
        f"{scope}/{part}": np.zeros([1], "float32")
        for scope in VGGISH_SHAPES
        for part in ("weights", "biases")
    }
    path = write_tf1_checkpoint(tmp_path / "tiny.ckpt", arrays)
    with pytest.raises(ValueError, match=r"vggish/conv1/weights of shape \(1,\)"):
        load_vggish_checkpoint(vggish, path)
    with pytest.raises(ValueError, match="no_such.ckpt"):
        load_vggish_checkpoint(vggish, str(tmp_path / "no_such.ckpt"))


# === ResNet-18 ===


def torchvision_resnet18_state_dict(seed: int = 0) -> dict:
    """Random arrays under torchvision resnet18's keys and shapes (fc included, as in the file)."""
    rng = np.random.default_rng(seed)
    state = {}

    def conv(key, out_channels, in_channels, size):
        std = np.sqrt(2 / (in_channels * size * size))
        state[f"{key}.weight"] = rng.normal(0, std, [out_channels, in_channels, size, size])

    def bn(key, channels):
        state[f"{key}.weight"] = rng.uniform(0.5, 1.5, channels)
        state[f"{key}.bias"] = rng.normal(0, 0.1, channels)
        state[f"{key}.running_mean"] = rng.normal(0, 0.1, channels)
        state[f"{key}.running_var"] = rng.uniform(0.5, 2.0, channels)
        state[f"{key}.num_batches_tracked"] = np.array(1000, np.int64)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    in_channels = 64
    for stage, channels in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            prefix = f"layer{stage}.{block}"
            conv(f"{prefix}.conv1", channels, in_channels if block == 0 else channels, 3)
            bn(f"{prefix}.bn1", channels)
            conv(f"{prefix}.conv2", channels, channels, 3)
            bn(f"{prefix}.bn2", channels)
            if stage > 1 and block == 0:
                conv(f"{prefix}.downsample.0", channels, in_channels, 1)
                bn(f"{prefix}.downsample.1", channels)
        in_channels = channels
    state["fc.weight"] = rng.normal(0, 0.01, [1000, 512])
    state["fc.bias"] = np.zeros(1000)
    return {
        key: value.astype(np.float32) if value.dtype == np.float64 else value
        for key, value in state.items()
    }


@pytest.fixture(scope="module")
def state_dict():
    return torchvision_resnet18_state_dict()


@pytest.fixture(scope="module")
def resnet():
    return ResNet18(normalize_input=False)


def test_resnet_weights_land_where_torchvision_has_them(resnet, state_dict, tmp_path):
    path = tmp_path / "resnet18.npz"
    np.savez(path, **state_dict)
    load_torchvision_resnet18_weights(resnet, path)
    np.testing.assert_array_equal(
        resnet.conv1.kernel.numpy(), state_dict["conv1.weight"].transpose(2, 3, 1, 0)
    )
    block = resnet.get_block(3, 0)
    np.testing.assert_array_equal(
        block.downsample_conv.kernel.numpy()[0, 0],
        state_dict["layer3.0.downsample.0.weight"][:, :, 0, 0].T,
    )
    bn = resnet.get_block(4, 1).bn2
    for ours, key in [
        (bn.gamma, "weight"),
        (bn.beta, "bias"),
        (bn.moving_mean, "running_mean"),
        (bn.moving_variance, "running_var"),
    ]:
        np.testing.assert_array_equal(ours.numpy(), state_dict[f"layer4.1.bn2.{key}"])


def test_resnet_tool_writes_the_converted_weights(resnet, state_dict, tmp_path):
    npz = tmp_path / "resnet18.npz"
    np.savez(npz, **state_dict)
    output = tmp_path / "resnet18.weights.h5"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "convert_resnet18_weights.py"),
            f"--state_dict={npz}",
            f"--output={output}",
            "--nonormalize_input",
        ],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    loaded = ResNet18(normalize_input=False)
    loaded.load_weights(str(output))
    expected = load_torchvision_resnet18_weights(resnet, state_dict)
    frames = np.random.default_rng(2).normal(size=[1, 64, 64, 3]).astype("float32")
    np.testing.assert_allclose(loaded(frames), expected(frames), atol=1e-6, rtol=0)


def test_resnet_missing_and_misshaped_arrays_are_clear_errors(resnet, state_dict):
    partial = {k: v for k, v in state_dict.items() if not k.startswith("layer4.1.")}
    with pytest.raises(ValueError, match=r"lacks 10 of 100 arrays: layer4\.1\.conv1\.weight"):
        load_torchvision_resnet18_weights(resnet, partial)
    misshaped = {**state_dict, "layer2.0.conv1.weight": np.zeros([128, 64, 5, 5], "float32")}
    with pytest.raises(ValueError, match=r"layer2\.0\.conv1.*\(128, 64, 5, 5\).*\(128, 64, 3, 3\)"):
        load_torchvision_resnet18_weights(resnet, misshaped)
    with pytest.raises(ValueError, match="No state dict file"):
        load_torchvision_resnet18_weights(resnet, "/no/such/resnet18.pth")


def test_resnet_matches_a_torch_forward_pass(resnet, state_dict, tmp_path):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    path = tmp_path / "resnet18.pth"
    torch.save(
        {key: torch.from_numpy(np.asarray(value)) for key, value in state_dict.items()}, path
    )
    load_torchvision_resnet18_weights(resnet, path)
    weights = {key: torch.from_numpy(np.asarray(value)) for key, value in state_dict.items()}

    def bn(x, key):
        return functional.batch_norm(
            x,
            weights[f"{key}.running_mean"],
            weights[f"{key}.running_var"],
            weights[f"{key}.weight"],
            weights[f"{key}.bias"],
            training=False,
            eps=1e-5,
        )

    def block(x, prefix, stride):
        out = functional.relu(
            bn(
                functional.conv2d(x, weights[f"{prefix}.conv1.weight"], stride=stride, padding=1),
                f"{prefix}.bn1",
            )
        )
        out = bn(
            functional.conv2d(out, weights[f"{prefix}.conv2.weight"], padding=1), f"{prefix}.bn2"
        )
        if f"{prefix}.downsample.0.weight" in weights:
            x = bn(
                functional.conv2d(x, weights[f"{prefix}.downsample.0.weight"], stride=stride),
                f"{prefix}.downsample.1",
            )
        return functional.relu(out + x)

    def torch_resnet18(frames):
        x = torch.from_numpy(frames).permute(0, 3, 1, 2)
        x = functional.relu(
            bn(functional.conv2d(x, weights["conv1.weight"], stride=2, padding=3), "bn1")
        )
        x = functional.max_pool2d(x, 3, stride=2, padding=1)
        for stage in range(1, 5):
            for index in range(2):
                x = block(x, f"layer{stage}.{index}", 2 if stage > 1 and index == 0 else 1)
        return x.permute(0, 2, 3, 1).numpy()

    # Odd sizes exercise the symmetric padding of every stride-2 layer.
    frames = np.random.default_rng(3).normal(size=[2, 70, 45, 3]).astype("float32")
    expected = torch_resnet18(frames)
    assert expected.shape == (2, 3, 2, 512)
    np.testing.assert_allclose(
        resnet(frames), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()
    )
