"""Audio encoders on VGGish log-mel patches, chosen by name (SPEC section 3).

Every encoder maps VGGish log-mel patches `[batch, 96, 64]` (`keras_binaural.audio.frontend`) to a
128-d embedding `[batch, 128]`, so the localization heads do not care which one is inside:

- `"vggish"`: our Keras `VGGish` (72,141,184 parameters, about 1.7 GFLOP per patch), frozen or
  trainable. What the paper uses (pre-trained, frozen). No pre-trained weights can be downloaded on
  our machines: a randomly initialised, frozen VGGish is a fixed random projection; load the
  official checkpoint (`load_vggish_checkpoint`) into `encoder` before training to get the paper's
  setting.
- `"compact"`: `LogMelCNN`, VGGish's shape (conv-pool-conv-pool-conv x2-pool-conv x2-pool-fc-fc)
  with every width multiplied by `width_multiplier` and batch normalisation after each
  convolution, so it trains from scratch on a CPU (width 1/8: about 0.3 M parameters, about
  30 MFLOP per patch, i.e. 1/60 of VGGish).
"""

from __future__ import annotations

import keras

from keras_binaural.models.vggish import EMBEDDING_SIZE, NUM_BANDS, NUM_FRAMES, VGGish

AUDIO_ENCODERS = ("vggish", "compact")

# VGGish's widths: conv blocks (filters, convolutions) and the hidden fully connected layers.
_VGGISH_BLOCKS = ((64, 1), (128, 1), (256, 2), (512, 2))
_VGGISH_FC_UNITS = 4096


def check_patches(patches, who: str) -> None:
    """Raises ValueError unless `patches` is a `[batch, 96, 64]` floating tensor.

    Unknown (None) sizes pass: tf.data's patches have an unknown number of frames until run.
    """
    shape, dtype = tuple(patches.shape), keras.backend.standardize_dtype(patches.dtype)
    expected_sizes = (NUM_FRAMES, NUM_BANDS)
    sizes_ok = len(shape) == 3 and all(
        size is None or size == expected for size, expected in zip(shape[1:], expected_sizes))
    if not sizes_ok or "float" not in dtype:
        raise ValueError(
            f"{who} expects VGGish log-mel patches of shape [batch, {NUM_FRAMES}, {NUM_BANDS}] "
            f"float32 (keras_binaural.audio.frontend.log_mel_patches or centred_patch); got shape "
            f"{shape} and dtype {dtype}."
        )


# === Layers ===


@keras.saving.register_keras_serializable(package="keras_binaural")
class LogMelCNN(keras.Model):
    """A compact VGGish-shaped CNN on log-mel patches, for training from scratch on a CPU.

    Layers: BatchNorm of the input (log-mel values are around -4.6 in silence), then VGGish's
    conv64-pool-conv128-pool-conv256x2-pool-conv512x2-pool with each width times
    `width_multiplier` (3x3 'same' convolutions, each followed by BatchNorm and ReLU; 2x2 max
    pools), an NHWC flatten of the `[6, 4, 512 * width_multiplier]` map (keeps the frequency
    layout, where timbre lives), fc(4096 * width_multiplier, ReLU) and a linear fc to
    `embedding_size` (pre-activation, as VGGish's embedding).

    Args:
      width_multiplier: scales every width of VGGish (1/8 by default: 8-16-32-64 channels and a
        512-unit hidden layer; at least 4 channels each).
      embedding_size: output size, 128 as VGGish.
      **kwargs: `keras.Model` arguments (`name`, `trainable`, `dtype`).

    Call arguments:
      patches: `[batch, 96, 64]` float32 VGGish log-mel patches (96 frames of 10 ms x 64 bands).
      training: batch statistics in BatchNorm when True.

    Returns:
      `[batch, embedding_size]` float32.

    Example:
    >>> encoder = LogMelCNN(width_multiplier=0.125)
    >>> encoder(np.zeros([2, 96, 64], "float32")).shape
    TensorShape([2, 128])
    """

    def __init__(self, width_multiplier: float = 0.125, embedding_size: int = EMBEDDING_SIZE,
                 **kwargs):
        super().__init__(**kwargs)
        if width_multiplier <= 0:
            raise ValueError(f"width_multiplier must be positive; got {width_multiplier}.")
        # === Config ===
        self.width_multiplier = width_multiplier
        self.embedding_size = embedding_size

        # === Layers ===
        dtype = self.dtype_policy

        def width(units: int) -> int:
            return max(4, round(units * width_multiplier))

        self.cnn_layers = [keras.layers.BatchNormalization(name="input_norm", dtype=dtype)]
        for block, (filters, convolutions) in enumerate(_VGGISH_BLOCKS, start=1):
            for index in range(1, convolutions + 1):
                name = f"conv{block}_{index}"
                self.cnn_layers += [
                    keras.layers.Conv2D(width(filters), 3, padding="same", use_bias=False,
                                        name=name, dtype=dtype),
                    keras.layers.BatchNormalization(name=f"{name}_norm", dtype=dtype),
                    keras.layers.Activation("relu", name=f"{name}_relu", dtype=dtype),
                ]
            self.cnn_layers.append(
                keras.layers.MaxPooling2D(2, 2, padding="same", name=f"pool{block}", dtype=dtype)
            )
        self.cnn_layers += [
            keras.layers.Flatten(name="flatten", dtype=dtype),
            keras.layers.Dense(width(_VGGISH_FC_UNITS), activation="relu", name="fc1",
                               dtype=dtype),
            keras.layers.Dense(embedding_size, name="fc2", dtype=dtype),
        ]
        self.build((None, NUM_FRAMES, NUM_BANDS))

    def build(self, input_shape):
        if self.built:  # built at construction: the input shape is fixed
            return
        shape = (None, NUM_FRAMES, NUM_BANDS, 1)
        for layer in self.cnn_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, patches, training=False):
        check_patches(patches, type(self).__name__)
        x = keras.ops.expand_dims(patches, -1)
        for layer in self.cnn_layers:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.embedding_size)

    def get_config(self):
        return {
            **super().get_config(),
            "width_multiplier": self.width_multiplier,
            "embedding_size": self.embedding_size,
        }


def make_audio_encoder(name: str, trainable: bool = True, width_multiplier: float = 0.125,
                       layer_name: str = "audio_encoder", dtype=None) -> keras.Model:
    """The audio encoder called `name`: patches `[batch, 96, 64]` -> `[batch, 128]`.

    Args:
      name: "vggish" (our Keras VGGish, 72 M parameters) or "compact" (`LogMelCNN`).
      trainable: whether the encoder's weights train (`False` freezes it, as the paper's VGGish).
      width_multiplier: `LogMelCNN`'s width (ignored for "vggish").
      layer_name: the Keras name of the returned model.
      dtype: dtype policy.

    Raises:
      ValueError: an unknown name.
    """
    if name == "vggish":
        return VGGish(trainable=trainable, name=layer_name, dtype=dtype)
    if name == "compact":
        return LogMelCNN(width_multiplier=width_multiplier, trainable=trainable, name=layer_name,
                         dtype=dtype)
    raise ValueError(f"Unknown audio encoder {name!r}; choose one of {AUDIO_ENCODERS}.")
