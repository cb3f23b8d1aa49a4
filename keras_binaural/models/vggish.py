"""VGGish in Keras 3: the AudioSet audio embedding network (SPEC section 3).

Two pieces, one contract:

- `VGGish` (a `keras.Model`): log-mel patches `[batch, 96, 64]` -> embeddings `[batch, 128]`.
- `VGGishEmbedder` (a `keras.layers.Layer`): waveforms `[batch, time]` at 16 kHz -> the VGGish
  frontend (`keras_binaural.audio.frontend.log_mel_patches`) -> `VGGish` -> `[batch, patches, 128]`,
  or `[batch, 128]` with `pooling="mean"`. `keras_binaural.models.hub.HubVGGishEmbedder` keeps the
  same call contract with a TF Hub module inside, so either can be chosen by configuration.

The architecture is the released one (tensorflow/models research/audioset/vggish, `vggish_slim.py`):
conv64-pool-conv128-pool-conv256x2-pool-conv512x2-pool-fc4096-fc4096-fc128, 3x3 stride-1 'same'
convolutions with ReLU, 2x2 stride-2 max pools, an NHWC flatten (as `slim.flatten`), 72,141,184
parameters. `load_vggish_checkpoint` fills it from the official TF checkpoint
(`vggish_model.ckpt`, variables `vggish/conv1/weights`, ..., `vggish/fc2/biases`).

On the embedding layer (fc2): the release since 2020 (tensorflow/models issue #9220) has **no**
activation on fc2, the 128-d embedding is pre-activation, and the TF Hub module `google/vggish/1`
matches it. The 2017-2019 code applied slim's default ReLU to fc2 too (as the torchvggish port still
does). We default to the current release (`embedding_activation=None`); pass
`embedding_activation="relu"` for the old behaviour. The weights are the same either way.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_binaural.audio import frontend

NUM_FRAMES = frontend.PATCH_FRAMES  # 96 frames of 10 ms per patch
NUM_BANDS = frontend.NUM_MEL_BANDS  # 64 mel bands
EMBEDDING_SIZE = 128

# Our layer name -> (checkpoint scope, kernel shape) of the released checkpoint. Shapes are TF's:
# [kh, kw, in, out] for convolutions and [in, out] for the fully connected layers, i.e. our own.
VGGISH_CHECKPOINT_SCOPES = {
    "conv1": "vggish/conv1",
    "conv2": "vggish/conv2",
    "conv3_1": "vggish/conv3/conv3_1",
    "conv3_2": "vggish/conv3/conv3_2",
    "conv4_1": "vggish/conv4/conv4_1",
    "conv4_2": "vggish/conv4/conv4_2",
    "fc1_1": "vggish/fc1/fc1_1",
    "fc1_2": "vggish/fc1/fc1_2",
    "fc2": "vggish/fc2",
}


@keras.saving.register_keras_serializable(package="keras_binaural")
class VGGish(keras.Model):
    """The VGGish audio embedding network on log-mel patches.

    Freeze it with the standard Keras flag: `VGGish(trainable=False)` (or set `model.trainable`
    later); `trainable` is stored by `get_config`. Weights are created at construction, so
    `load_vggish_checkpoint` or `load_weights` can be called straight away.

    Args:
      embedding_activation: activation of the 128-d embedding layer (fc2). `None` (default) as the
        current release and the TF Hub module (pre-activation embedding); `"relu"` as the
        2017-2019 release and the torchvggish port.
      **kwargs: `keras.Model` arguments (`name`, `trainable`, `dtype`).

    Call arguments:
      patches: `[batch, 96, 64]` float32 log-mel patches, log(mel + 0.01), as produced by
        `keras_binaural.audio.frontend.log_mel_patches` (96 frames of 10 ms x 64 mel bands).
      training: unused (no dropout or batch norm), accepted for the Keras contract.

    Returns:
      `[batch, 128]` float32 embeddings, one per patch.

    Example:
    >>> model = VGGish(trainable=False)
    >>> load_vggish_checkpoint(model, "vggish_model.ckpt")  # doctest: +SKIP
    >>> model(np.zeros([2, 96, 64], "float32")).shape
    TensorShape([2, 128])

    Reference: Hershey et al., "CNN architectures for large-scale audio classification",
    ICASSP 2017; SPEC section 3.
    """

    def __init__(self, embedding_activation: str | None = None, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.embedding_activation = embedding_activation

        # === Layers ===
        def conv(filters: int, name: str) -> keras.layers.Conv2D:
            return keras.layers.Conv2D(
                filters, 3, padding="same", activation="relu", name=name, dtype=self.dtype_policy
            )

        def pool(name: str) -> keras.layers.MaxPooling2D:
            # 'same' as the release; with 96 x 64 inputs every pool sees even sizes.
            return keras.layers.MaxPooling2D(
                2, 2, padding="same", name=name, dtype=self.dtype_policy
            )

        self.vgg_layers = [
            conv(64, "conv1"),
            pool("pool1"),
            conv(128, "conv2"),
            pool("pool2"),
            conv(256, "conv3_1"),
            conv(256, "conv3_2"),
            pool("pool3"),
            conv(512, "conv4_1"),
            conv(512, "conv4_2"),
            pool("pool4"),
            # NHWC flatten, as slim.flatten in the release: fc1_1's rows are in (h, w, c) order.
            keras.layers.Flatten(name="flatten", dtype=self.dtype_policy),
            keras.layers.Dense(4096, activation="relu", name="fc1_1", dtype=self.dtype_policy),
            keras.layers.Dense(4096, activation="relu", name="fc1_2", dtype=self.dtype_policy),
            keras.layers.Dense(
                EMBEDDING_SIZE, activation=embedding_activation, name="fc2", dtype=self.dtype_policy
            ),
        ]
        self.build((None, NUM_FRAMES, NUM_BANDS))

    def build(self, input_shape):
        if self.built:  # built at construction; the input shape is fixed
            return
        shape = (input_shape[0], NUM_FRAMES, NUM_BANDS, 1)
        for layer in self.vgg_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, patches, training=False):
        _check_patches(patches)
        x = keras.ops.expand_dims(patches, -1)
        for layer in self.vgg_layers:
            x = layer(x)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], EMBEDDING_SIZE)

    def checkpoint_layers(self) -> dict[str, keras.layers.Layer]:
        """Our weighted layers keyed by their scope in the official checkpoint."""
        by_name = {layer.name: layer for layer in self.vgg_layers}
        return {scope: by_name[name] for name, scope in VGGISH_CHECKPOINT_SCOPES.items()}

    def get_config(self):
        return {**super().get_config(), "embedding_activation": self.embedding_activation}


@keras.saving.register_keras_serializable(package="keras_binaural")
class VGGishEmbedder(keras.layers.Layer):
    """Waveform -> VGGish embeddings: the VGGish frontend followed by our Keras `VGGish`.

    The waveform is cut into non-overlapping 0.96 s patches (96 frames of 10 ms, 15,600 samples);
    a tail shorter than a patch is dropped and **a waveform shorter than one patch is zero-padded
    at the end to one patch**, so every clip gives at least one embedding. All clips of a batch have
    the same length, hence the same number of patches. Freeze with `trainable=False`.

    Args:
      pooling: `None` returns one embedding per patch, `[batch, patches, 128]`; `"mean"` averages
        them, `[batch, 128]`.
      embedding_activation: see `VGGish` (`None`: current release / TF Hub module; `"relu"`).
      **kwargs: `keras.layers.Layer` arguments (`name`, `trainable`, `dtype`).

    Call arguments:
      waveform: `[batch, time]` float32 in [-1, 1] at 16 kHz.
      training: passed to `VGGish` (it has no training-specific behaviour).

    Returns:
      `[batch, patches, 128]` float32 with patches = max(1, (1 + (time - 400) // 160) // 96),
      or `[batch, 128]` with `pooling="mean"`.

    Example:
    >>> embedder = VGGishEmbedder(pooling="mean", trainable=False)
    >>> load_vggish_checkpoint(embedder.vggish, "vggish_model.ckpt")  # doctest: +SKIP
    >>> embedder(np.zeros([4, 15600], "float32")).shape
    TensorShape([4, 128])
    """

    def __init__(
        self, pooling: str | None = None, embedding_activation: str | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        # === Config ===
        self.pooling = check_pooling(pooling)
        self.embedding_activation = embedding_activation

        # === Layers ===
        self.vggish = VGGish(
            embedding_activation=embedding_activation, name="vggish", dtype=self.dtype_policy
        )

    def build(self, input_shape):
        self.vggish.build((None, NUM_FRAMES, NUM_BANDS))
        self.built = True

    def call(self, waveform, training=False):
        check_waveform(waveform, type(self).__name__)
        patches = frontend.log_mel_patches(waveform)  # [batch, patches, 96, 64]
        batch, num_patches = keras.ops.shape(patches)[0], keras.ops.shape(patches)[1]
        flat = keras.ops.reshape(patches, (-1, NUM_FRAMES, NUM_BANDS))
        embeddings = keras.ops.reshape(
            self.vggish(flat, training=training), (batch, num_patches, EMBEDDING_SIZE)
        )
        return pool_embeddings(embeddings, self.pooling)

    def compute_output_shape(self, input_shape):
        return embedding_output_shape(input_shape, self.pooling)

    def get_config(self):
        return {
            **super().get_config(),
            "pooling": self.pooling,
            "embedding_activation": self.embedding_activation,
        }


# === Shared by VGGishEmbedder and HubVGGishEmbedder ===


def num_patches(num_samples: int) -> int:
    """Patches VGGish makes of `num_samples` at 16 kHz (at least one: short clips are padded)."""
    num_samples = max(num_samples, frontend.PATCH_SAMPLES)
    num_frames = 1 + (num_samples - frontend.WINDOW_SAMPLES) // frontend.HOP_SAMPLES
    return num_frames // NUM_FRAMES


def embedding_output_shape(input_shape, pooling: str | None) -> tuple:
    """Output shape of a waveform embedder for a `[batch, time]` input shape."""
    batch, time = input_shape[0], input_shape[-1]
    if pooling == "mean":
        return (batch, EMBEDDING_SIZE)
    return (batch, None if time is None else num_patches(time), EMBEDDING_SIZE)


def pool_embeddings(embeddings, pooling: str | None):
    """`[batch, patches, 128]` -> itself (`pooling=None`) or its mean over patches (`"mean"`)."""
    if pooling == "mean":
        return keras.ops.mean(embeddings, axis=1)
    return embeddings


def check_waveform(waveform, who: str) -> None:
    """Raises ValueError unless `waveform` is a `[batch, time]` floating tensor."""
    shape, dtype = tuple(waveform.shape), keras.backend.standardize_dtype(waveform.dtype)
    if len(shape) != 2 or "float" not in dtype:
        raise ValueError(
            f"{who} expects waveforms of shape [batch, time], float32 in [-1, 1] at 16 kHz; got "
            f"shape {shape} and dtype {dtype}. For a single 1-D clip, add a batch axis."
        )


def _check_patches(patches) -> None:
    shape, dtype = tuple(patches.shape), keras.backend.standardize_dtype(patches.dtype)
    if len(shape) != 3 or shape[1:] != (NUM_FRAMES, NUM_BANDS) or "float" not in dtype:
        raise ValueError(
            f"VGGish expects log-mel patches of shape [batch, {NUM_FRAMES}, {NUM_BANDS}] float32 "
            f"(keras_binaural.audio.frontend.log_mel_patches); got shape {shape} and dtype {dtype}."
            " For waveforms use VGGishEmbedder."
        )


def check_pooling(pooling: str | None) -> str | None:
    if pooling not in (None, "mean"):
        raise ValueError(f"pooling must be None or 'mean'; got {pooling!r}.")
    return pooling


# === Official checkpoint ===


def load_vggish_checkpoint(model: VGGish, checkpoint_path: str) -> VGGish:
    """Loads the official VGGish TF checkpoint (`vggish_model.ckpt`) into a Keras `VGGish`.

    Reads the variables `vggish/conv1/weights`, `vggish/conv1/biases`, ..., `vggish/fc2/biases`
    (slim's names; TF1 V1 or V2 checkpoint format). Kernels are already in Keras's layout
    ([kh, kw, in, out] and [in, out]) and fc1_1's rows follow the NHWC flatten of both models, so
    the arrays are copied as they are. Other variables in the checkpoint (e.g. optimizer slots)
    are ignored.

    Args:
      model: a `VGGish` (e.g. `VGGishEmbedder(...).vggish`).
      checkpoint_path: the checkpoint prefix (`.../vggish_model.ckpt`).

    Returns:
      `model`, with its weights replaced.

    Raises:
      ValueError: the checkpoint cannot be read, lacks some variables (all are listed) or holds
        a variable of the wrong shape.
    """
    try:
        reader = tf.train.load_checkpoint(str(checkpoint_path))
    except Exception as error:  # NotFoundError, DataLossError, ... : say which file.
        raise ValueError(f"Cannot read a TF checkpoint at {checkpoint_path!r}: {error}") from error
    available = reader.get_variable_to_shape_map()

    layers = model.checkpoint_layers()
    wanted = [f"{scope}/{part}" for scope in layers for part in ("weights", "biases")]
    missing = [name for name in wanted if name not in available]
    if missing:
        raise ValueError(
            f"The checkpoint {checkpoint_path!r} is not a VGGish checkpoint: it lacks "
            f"{len(missing)} of {len(wanted)} variables: {', '.join(missing)}."
        )

    for scope, layer in layers.items():
        arrays = [reader.get_tensor(f"{scope}/weights"), reader.get_tensor(f"{scope}/biases")]
        for variable, array, part in zip(layer.weights, arrays, ("weights", "biases")):
            if tuple(variable.shape) != array.shape:
                raise ValueError(
                    f"The checkpoint {checkpoint_path!r} holds {scope}/{part} of shape "
                    f"{array.shape}; VGGish expects {tuple(variable.shape)}."
                )
        layer.set_weights([np.asarray(a, dtype="float32") for a in arrays])
    return model
