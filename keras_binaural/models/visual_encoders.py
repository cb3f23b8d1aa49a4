"""Visual encoders chosen by name: the paper's ResNet-18, or a compact CNN whose cells see one object.

Both map frames `[batch, H, W, 3]` (RGB in [0, 1]) to a map `[batch, h, w, 512]` and say how
many pixels one cell spans (`output_stride`), which the localization map's upsampling and the
pointing game read.

- "resnet18" (`keras_binaural.models.resnet.ResNet18`): the paper's encoder, stride 32. Each
  of its cells sees far more than the whole 128-px frame of a CPU-sized config, so a cell can
  say "a clarinet is in the picture" wherever the clarinet is; trained from scratch (no
  ImageNet weights can be downloaded here) its localization map does not point (BENCHMARKS.md).
- "compact" (`CompactCNN`): `log2(stride)` stages of a 4 x 4 convolution of stride 2 and a
  3 x 3 one, widths `width`, 2 `width`, ... with BatchNorm and ReLU, then a 1 x 1 projection to
  512 channels (linear, so that cosine similarities with the audio feature can take either
  sign). At stride 8 its receptive field is 46 pixels, centred on the cell: a cell sees about
  one object of our synthetic scenes (boxes 20-30 % of the frame height) and its edges.
"""

from __future__ import annotations

import math

import keras

from keras_binaural.models.resnet import ResNet18

VISUAL_ENCODERS = ("resnet18", "compact")
FEATURE_SIZE = 512  # the map's channels: ResNet-18's, which the heads compare audio with


@keras.saving.register_keras_serializable(package="keras_binaural")
class CompactCNN(keras.Model):
    """A small fully convolutional visual encoder of output stride `stride` (see module docs).

    Args:
      width: channels of the first stage (doubled at each further stage).
      stride: output stride, a power of two >= 2 (the number of stages is log2(stride)).
      feature_size: channels of the output map.
      **kwargs: `keras.Model` arguments.

    Call arguments:
      frames: `[batch, H, W, 3]` float RGB in [0, 1] (centred and scaled inside).
      training: BatchNorm mode.

    Returns:
      `[batch, ceil(H / stride), ceil(W / stride), feature_size]`.

    Example:
    >>> CompactCNN(width=32, stride=8)(np.zeros([2, 128, 96, 3], "float32")).shape
    TensorShape([2, 16, 12, 512])
    """

    def __init__(self, width: int = 32, stride: int = 8, feature_size: int = FEATURE_SIZE,
                 **kwargs):
        super().__init__(**kwargs)
        if stride < 2 or stride & (stride - 1) or width < 1:
            raise ValueError(
                f"CompactCNN needs a power-of-two stride >= 2 and width >= 1; got stride "
                f"{stride} and width {width}.")
        # === Config ===
        self.width = width
        self.stride = stride
        self.feature_size = feature_size

        # === Layers ===
        dtype = self.dtype_policy
        self.conv_layers = []
        for stage in range(int(math.log2(stride))):
            filters = width * 2**stage
            # The strided convolution is 4 x 4 with one pixel of zeros on every side: its output
            # j is centred on input 2 j + 1/2, so that cell i of the map is centred on pixel
            # s i + (s - 1) / 2, the centre of the pixels it stands for (a 3 x 3 'same' one
            # would shift the map by (s - 1) / 2 pixels to the right and down).
            self.conv_layers += [
                keras.layers.ZeroPadding2D(1, name=f"stage{stage + 1}_pad", dtype=dtype),
                keras.layers.Conv2D(filters, 4, strides=2, padding="valid", use_bias=False,
                                    name=f"stage{stage + 1}_conv1", dtype=dtype)]
            self.conv_layers += [
                keras.layers.BatchNormalization(name=f"stage{stage + 1}_conv1_norm", dtype=dtype),
                keras.layers.ReLU(name=f"stage{stage + 1}_conv1_relu", dtype=dtype),
                keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                    name=f"stage{stage + 1}_conv2", dtype=dtype),
                keras.layers.BatchNormalization(name=f"stage{stage + 1}_conv2_norm", dtype=dtype),
                keras.layers.ReLU(name=f"stage{stage + 1}_conv2_relu", dtype=dtype),
            ]
        self.conv_layers.append(
            keras.layers.Conv2D(feature_size, 1, name="projection", dtype=dtype))
        self.build((None, None, None, 3))

    @property
    def output_stride(self) -> int:
        return self.stride

    def build(self, input_shape):
        if self.built:  # built at construction: fully convolutional, any H and W
            return
        shape = (None, None, None, 3)
        for layer in self.conv_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, frames, training=False):
        # Frames in [0, 1]: centre and scale to about unit variance (no ImageNet statistics:
        # this encoder is always trained from scratch).
        x = (keras.ops.cast(frames, self.compute_dtype) - 0.5) * 4.0
        for layer in self.conv_layers:
            x = layer(x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        def cells(size):
            return None if size is None else -(-size // self.stride)

        return (input_shape[0], cells(input_shape[1]), cells(input_shape[2]), self.feature_size)

    def get_config(self):
        return {**super().get_config(), "width": self.width, "stride": self.stride,
                "feature_size": self.feature_size}


def make_visual_encoder(name: str, width: int = 32, stride: int = 8,
                        layer_name: str = "visual_encoder", dtype=None) -> keras.Model:
    """The visual encoder called `name` ("resnet18" or "compact"; `width`, `stride`: compact's).

    Raises:
      ValueError: an unknown name.
    """
    if name == "resnet18":
        return ResNet18(name=layer_name, dtype=dtype)
    if name == "compact":
        return CompactCNN(width=width, stride=stride, name=layer_name, dtype=dtype)
    raise ValueError(f"Unknown visual encoder {name!r}; choose one of {VISUAL_ENCODERS}.")
