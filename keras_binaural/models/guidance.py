"""The object-aware guidance of the upmixer: where the sounding object is, and what it is.

One guidance vector per (frame, mono patch) pair (SPEC section 5): the localizer's object feature
o, the localization map's horizontal profile (`horizontal_profile`: *where* the sounding object
is, left to right) and the generation model's own scene feature (`scene_layout`), mapped by
`GuidanceNetwork` to a vector added in every residual layer of the denoiser
(`keras_binaural.models.upmixer.Upmixer.frame_guidance` puts them together).

Reference: SPEC section 5 (object-aware guidance); supp. section 1 ("Object-Aware Upmix Model").
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_binaural.models.localization_core import column_bins

# === Math ===


def binning_matrix(width: int, bins: int) -> np.ndarray:
    """`[width, bins]` matrix averaging pixel columns into `bins` equal bins by overlap.

    Column i covers [i, i + 1) of the width; bin j covers [j w / bins, (j + 1) w / bins). Entry
    (i, j) is the overlap length divided by the bin's length, so each bin is a mean of columns.
    """
    return column_bins(width, bins) / (width / bins)


def horizontal_profile(localization_map, bins: int):
    """Where the sounding object is: the map's mean over rows, in `bins` columns, mean 1.

    Args:
      localization_map: `[batch, H, W]` non-negative map (static W).
      bins: number of columns of the profile.

    Returns:
      `[batch, bins]`, non-negative, summing to `bins` (a flat map gives all ones).
    """
    columns = ops.mean(localization_map, axis=1)  # [batch, W]
    width = localization_map.shape[2]
    profile = ops.matmul(columns, ops.convert_to_tensor(binning_matrix(width, bins), columns.dtype))
    total = ops.sum(profile, axis=-1, keepdims=True)
    return profile * bins / ops.maximum(total, 1e-12)


def scene_layout(visual_map, columns: int):
    """The scene feature: a visual map's mean over rows, in `columns` columns, flattened.

    Args:
      visual_map: `[batch, h, w, C]` (static w and C).
      columns: 1 gives GlobalAvgPool (SPEC's scene feature); more keep *where* things are
        from left to right, column by column.

    Returns:
      `[batch, columns * C]`, column after column.
    """
    rows = ops.mean(visual_map, axis=1)  # [batch, w, C]
    matrix = ops.convert_to_tensor(binning_matrix(visual_map.shape[2], columns), rows.dtype)
    binned = ops.einsum("bwc,wk->bkc", rows, matrix)
    return ops.reshape(binned, (-1, columns * visual_map.shape[3]))


# === Layers ===


@keras.saving.register_keras_serializable(package="keras_binaural")
class GuidanceNetwork(keras.layers.Layer):
    """Maps (object feature, map profile, scene feature) to the guidance vector g.

    g = FC(ReLU(FC([LayerNorm(o), profile, LayerNorm(s)]))).

    Args:
      guidance_channels: G, size of g.
      hidden_channels: width of the hidden FC layer.

    Call arguments:
      inputs: dict with `object_feature` `[..., 512]`, `profile` `[..., P]`, `scene_feature`
        `[..., 512]` (any leading axes, e.g. `[batch]` or `[batch, frames]`).

    Returns:
      `[..., G]`.

    Example:
    >>> net = GuidanceNetwork(guidance_channels=64)
    >>> net({"object_feature": np.zeros([2, 512], "float32"),
    ...      "profile": np.ones([2, 16], "float32"),
    ...      "scene_feature": np.zeros([2, 512], "float32")}).shape
    TensorShape([2, 64])

    Reference: SPEC section 5 (object-aware guidance).
    """

    def __init__(self, guidance_channels: int = 64, hidden_channels: int = 256, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.guidance_channels = guidance_channels
        self.hidden_channels = hidden_channels

        # === Layers ===
        dtype = self.dtype_policy
        self.object_norm = keras.layers.LayerNormalization(name="object_norm", dtype=dtype)
        self.scene_norm = keras.layers.LayerNormalization(name="scene_norm", dtype=dtype)
        self.hidden = keras.layers.Dense(
            hidden_channels, activation="relu", name="hidden", dtype=dtype
        )
        self.output_dense = keras.layers.Dense(guidance_channels, name="output", dtype=dtype)

    def build(self, input_shape):
        object_size = input_shape["object_feature"][-1]
        scene_size = input_shape["scene_feature"][-1]
        profile_size = input_shape["profile"][-1]
        self.object_norm.build((None, object_size))
        self.scene_norm.build((None, scene_size))
        self.hidden.build((None, object_size + profile_size + scene_size))
        self.output_dense.build((None, self.hidden_channels))
        self.built = True

    def call(self, inputs):
        features = ops.concatenate(
            [
                self.object_norm(inputs["object_feature"]),
                inputs["profile"],
                self.scene_norm(inputs["scene_feature"]),
            ],
            axis=-1,
        )
        return self.output_dense(self.hidden(features))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape["profile"][:-1]) + (self.guidance_channels,)

    def get_config(self):
        return {
            **super().get_config(),
            "guidance_channels": self.guidance_channels,
            "hidden_channels": self.hidden_channels,
        }
