"""ResNet-18 in Keras 3, torchvision's architecture without the classifier (SPEC section 3).

`ResNet18` maps frames `[batch, H, W, 3]` to the stride-32 feature map `[batch, H/32, W/32, 512]`;
the generation and localization models each hold their own (neither is frozen). Layer for layer it
is torchvision's `resnet18` up to `layer4`: 7x7/2 conv, BN, ReLU, 3x3/2 max pool, four stages of two
BasicBlocks (64, 128, 256, 512 channels; stages 2-4 start with stride 2 and a 1x1/2 conv + BN
shortcut). 11,176,512 trainable parameters; the 9,600 BN moving statistics are non-trainable.

Padding follows torch exactly: torch pads symmetrically, while Keras 'same' pads (0, 1) for
stride 2, so every strided layer gets an explicit `ZeroPadding2D` followed by a 'valid' layer
(stride-1 3x3 'same' convolutions pad (1, 1) as torch does). The max pool's zero padding equals
torch's -inf padding because its input comes out of a ReLU (>= 0). BN uses torch's epsilon 1e-5
and momentum 0.1 (Keras momentum 0.9).

`load_torchvision_resnet18_weights` fills it from a torchvision state dict (`.pth`, or an `.npz` of
the same arrays under the same keys).
"""

from __future__ import annotations

import os

import keras
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STAGE_CHANNELS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2
_BN_EPSILON = 1e-5  # torch's default
_BN_MOMENTUM = 0.9  # torch's momentum 0.1 is the weight of the new batch


def normalize_imagenet(frames):
    """RGB frames in [0, 1] -> ImageNet-normalised frames, (x - mean) / std per channel.

    Args:
      frames: `[..., 3]` float RGB in [0, 1] (uint8 frames: divide by 255 first).

    Returns:
      `[..., 3]` float32, what torchvision's ImageNet weights expect.
    """
    mean = keras.ops.convert_to_tensor(IMAGENET_MEAN, "float32")
    std = keras.ops.convert_to_tensor(IMAGENET_STD, "float32")
    return (keras.ops.cast(frames, "float32") - mean) / std


def _conv(filters: int, kernel_size: int, strides: int, name: str, dtype) -> keras.layers.Conv2D:
    padding = "same" if strides == 1 else "valid"
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        name=name,
        dtype=dtype,
    )


def _batch_norm(name: str, dtype) -> keras.layers.BatchNormalization:
    return keras.layers.BatchNormalization(
        momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name, dtype=dtype
    )


@keras.saving.register_keras_serializable(package="keras_binaural")
class BasicBlock(keras.layers.Layer):
    """torchvision's ResNet BasicBlock: two 3x3 conv + BN, a shortcut, ReLU after the sum.

    Args:
      filters: output channels.
      strides: 1, or 2 for the first block of stages 2-4 (which then also gets a 1x1/2 conv + BN
        shortcut, torchvision's `downsample`).
      downsample: whether the shortcut is a 1x1 conv + BN (needed when the stride or the channel
        count changes); default: when `strides != 1`.
      **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
      inputs: `[batch, H, W, C]` float32.
      training: batch statistics (True) or moving statistics (False) in BN.

    Returns:
      `[batch, ceil(H / strides), ceil(W / strides), filters]` float32.
    """

    def __init__(self, filters: int, strides: int = 1, downsample: bool | None = None, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.filters = filters
        self.strides = strides
        self.downsample = strides != 1 if downsample is None else downsample

        # === Layers ===
        dtype = self.dtype_policy
        self.pad1 = keras.layers.ZeroPadding2D(1, dtype=dtype) if strides != 1 else None
        self.conv1 = _conv(filters, 3, strides, "conv1", dtype)
        self.bn1 = _batch_norm("bn1", dtype)
        self.conv2 = _conv(filters, 3, 1, "conv2", dtype)
        self.bn2 = _batch_norm("bn2", dtype)
        if self.downsample:
            self.downsample_conv = _conv(filters, 1, strides, "downsample_conv", dtype)
            self.downsample_bn = _batch_norm("downsample_bn", dtype)

    def build(self, input_shape):
        if input_shape[-1] != self.filters and not self.downsample:
            raise ValueError(
                f"BasicBlock({self.filters}) without downsample needs {self.filters} input "
                f"channels to add its shortcut; got {input_shape[-1]}. Pass downsample=True."
            )
        shape = (None, None, None, self.filters)
        self.conv1.build(input_shape)
        self.bn1.build(shape)
        self.conv2.build(shape)
        self.bn2.build(shape)
        if self.downsample:
            self.downsample_conv.build(input_shape)
            self.downsample_bn.build(shape)
        self.built = True

    def call(self, inputs, training=False):
        x = self.pad1(inputs) if self.pad1 is not None else inputs
        x = keras.ops.relu(self.bn1(self.conv1(x), training=training))
        x = self.bn2(self.conv2(x), training=training)
        shortcut = inputs
        if self.downsample:
            shortcut = self.downsample_bn(self.downsample_conv(inputs), training=training)
        return keras.ops.relu(x + shortcut)

    def compute_output_shape(self, input_shape):
        def out(size):
            return None if size is None else (size - 1) // self.strides + 1

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "strides": self.strides,
            "downsample": self.downsample,
        }


@keras.saving.register_keras_serializable(package="keras_binaural")
class ResNet18(keras.Model):
    """ResNet-18 feature extractor (torchvision's `resnet18` without avgpool and fc).

    Input values: with `normalize_input=True` (default) frames are RGB float in [0, 1] and the
    model applies the ImageNet mean/std normalisation itself (`normalize_imagenet`); with
    `normalize_input=False` it expects frames already normalised that way. torchvision's ImageNet
    weights (`load_torchvision_resnet18_weights`) assume this normalisation.

    Args:
      normalize_input: apply the ImageNet normalisation inside the model (frames in [0, 1]).
      **kwargs: `keras.Model` arguments (`name`, `trainable`, `dtype`).

    Call arguments:
      frames: `[batch, H, W, 3]` float32 RGB (channels last), see "Input values".
      training: BN uses batch statistics and updates its moving statistics when True.

    Returns:
      `[batch, H/32, W/32, 512]` float32 (ceil(H/32) for H not a multiple of 32, as in torch),
      the output of `layer4` after its ReLU.

    Example:
    >>> model = ResNet18()
    >>> load_torchvision_resnet18_weights(model, "resnet18.pth")  # doctest: +SKIP
    >>> model(np.zeros([2, 224, 224, 3], "float32")).shape
    TensorShape([2, 7, 7, 512])

    Reference: He et al., "Deep residual learning for image recognition", CVPR 2016;
    torchvision.models.resnet18.
    """

    def __init__(self, normalize_input: bool = True, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.normalize_input = normalize_input

        # === Layers ===
        dtype = self.dtype_policy
        self.stem_pad = keras.layers.ZeroPadding2D(3, name="stem_pad", dtype=dtype)
        self.conv1 = _conv(64, 7, 2, "conv1", dtype)
        self.bn1 = _batch_norm("bn1", dtype)
        self.pool_pad = keras.layers.ZeroPadding2D(1, name="pool_pad", dtype=dtype)
        self.maxpool = keras.layers.MaxPooling2D(3, 2, padding="valid", name="maxpool", dtype=dtype)
        # torchvision's layer{stage}.{block}, stage 1-4, block 0-1, flattened in that order.
        self.blocks = []
        for stage, filters in enumerate(STAGE_CHANNELS, start=1):
            for block in range(BLOCKS_PER_STAGE):
                strides = 2 if stage > 1 and block == 0 else 1
                self.blocks.append(
                    BasicBlock(filters, strides, name=f"layer{stage}_{block}", dtype=dtype)
                )
        self.build((None, None, None, 3))

    @property
    def output_stride(self) -> int:
        """Pixels per cell of the output map: 32."""
        return 32

    def build(self, input_shape):
        if self.built:  # built at construction: fully convolutional, any H and W
            return
        self.conv1.build((None, None, None, 3))
        self.bn1.build((None, None, None, 64))
        channels = 64
        for block in self.blocks:
            block.build((None, None, None, channels))
            channels = block.filters
        self.built = True

    def call(self, frames, training=False):
        _check_frames(frames)
        x = normalize_imagenet(frames) if self.normalize_input else frames
        x = keras.ops.relu(self.bn1(self.conv1(self.stem_pad(x)), training=training))
        x = self.maxpool(self.pool_pad(x))
        for block in self.blocks:
            x = block(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        def out(size):
            return None if size is None else (size - 1) // 32 + 1

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), STAGE_CHANNELS[-1])

    def get_block(self, stage: int, block: int) -> BasicBlock:
        """torchvision's `layer{stage}[block]` (stage 1-4, block 0-1)."""
        return self.blocks[(stage - 1) * BLOCKS_PER_STAGE + block]

    def get_config(self):
        return {**super().get_config(), "normalize_input": self.normalize_input}


def _check_frames(frames) -> None:
    shape, dtype = tuple(frames.shape), keras.backend.standardize_dtype(frames.dtype)
    if len(shape) != 4 or shape[-1] != 3 or "float" not in dtype:
        raise ValueError(
            "ResNet18 expects frames of shape [batch, height, width, 3] (RGB, channels last), "
            f"float32 in [0, 1] (or ImageNet-normalised with normalize_input=False); got shape "
            f"{shape} and dtype {dtype}. Convert uint8 frames with frames / 255."
        )


# === torchvision weights ===


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a torchvision state dict: `.pth`/`.pt` (needs torch) or `.npz` with the same keys.

    Returns:
      Key -> numpy array (torch tensors converted on the CPU).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"No state dict file at {path!r}.")
    if path.endswith(".npz"):
        with np.load(path) as archive:
            return {key: archive[key] for key in archive.files}
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"Reading {path!r} needs PyTorch; install torch, or save the state dict's arrays in an "
            ".npz with the same keys (np.savez(path, **{k: v.numpy() for k, v in sd.items()}))."
        ) from error
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return {key: value.detach().cpu().numpy() for key, value in state.items()}


def _torch_layer_map(model: ResNet18) -> dict[str, tuple[str, keras.layers.Layer]]:
    """torchvision prefix -> ("conv" | "bn", our layer)."""
    layers = {"conv1": ("conv", model.conv1), "bn1": ("bn", model.bn1)}
    for stage in range(1, len(STAGE_CHANNELS) + 1):
        for index in range(BLOCKS_PER_STAGE):
            block = model.get_block(stage, index)
            prefix = f"layer{stage}.{index}"
            layers[f"{prefix}.conv1"] = ("conv", block.conv1)
            layers[f"{prefix}.bn1"] = ("bn", block.bn1)
            layers[f"{prefix}.conv2"] = ("conv", block.conv2)
            layers[f"{prefix}.bn2"] = ("bn", block.bn2)
            if block.downsample:
                layers[f"{prefix}.downsample.0"] = ("conv", block.downsample_conv)
                layers[f"{prefix}.downsample.1"] = ("bn", block.downsample_bn)
    return layers


_BN_KEYS = ("weight", "bias", "running_mean", "running_var")  # Keras: gamma, beta, mean, var


def load_torchvision_resnet18_weights(
    model: ResNet18, state_dict: str | os.PathLike | dict
) -> ResNet18:
    """Loads torchvision `resnet18` weights (e.g. the ImageNet ones) into a `ResNet18`.

    Conv kernels go from torch's [out, in, kh, kw] to Keras's [kh, kw, in, out]; BN weight, bias,
    running_mean, running_var become gamma, beta, moving_mean, moving_variance. `fc.*` and
    `num_batches_tracked` are ignored.

    Args:
      model: the `ResNet18` to fill.
      state_dict: a path (`.pth`/`.pt` read with torch, or `.npz` with torchvision's keys) or a
        dict of key -> array.

    Returns:
      `model`, with its weights replaced.

    Raises:
      ValueError: keys missing from the state dict (all listed) or an array of the wrong shape.
    """
    arrays = read_state_dict(state_dict) if not isinstance(state_dict, dict) else state_dict
    arrays = {key: np.asarray(value) for key, value in arrays.items()}
    layers = _torch_layer_map(model)

    wanted = []
    for prefix, (kind, _) in layers.items():
        wanted += [f"{prefix}.weight"] if kind == "conv" else [f"{prefix}.{k}" for k in _BN_KEYS]
    missing = [key for key in wanted if key not in arrays]
    if missing:
        raise ValueError(
            f"The state dict is not a torchvision resnet18 one: it lacks {len(missing)} of "
            f"{len(wanted)} arrays: {', '.join(missing)}."
        )

    for prefix, (kind, layer) in layers.items():
        if kind == "conv":
            values = [np.transpose(arrays[f"{prefix}.weight"], (2, 3, 1, 0))]
        else:
            values = [arrays[f"{prefix}.{k}"] for k in _BN_KEYS]
        for variable, value in zip(layer.weights, values):
            if tuple(variable.shape) != value.shape:
                expected = tuple(variable.shape)
                if kind == "conv":  # say it in torch's layout, as the file holds it
                    value, expected = (
                        value.transpose(3, 2, 0, 1),
                        tuple(np.take(expected, [3, 2, 0, 1])),
                    )
                raise ValueError(
                    f"The state dict's {prefix} arrays have shape {value.shape}; a torchvision "
                    f"resnet18 has {expected}."
                )
        layer.set_weights([value.astype("float32") for value in values])
    return model
