"""What a localization objective is: the interface between `LocalizationModel` and its heads.

`LocalizationModel.compute_losses` encodes a training batch once (`EncodedBatch`: every encoder
runs once over everything the objectives need, which keeps BatchNorm's statistics whole), asks
each of its objectives for its named loss terms (`LocalizationObjective.losses` ->
`ObjectiveLosses`) and sums them, each weighted by its λ (`LocalizationModel.term_weights`). So
a new objective is a new `LocalizationObjective` with its terms and its λ, not a new branch in the
model. The heads of `keras_binaural.models.localization_heads` are objectives: OSA and the
additional baseline are `LocalizationHead`s (they also give the pairs the distance and accuracy
metrics score, and map any (audio, frame) pair to a distance and a localization map); SSM is an
auxiliary objective on binaural audio.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class EncodedBatch:
    """A training batch encoded once for all the localization objectives of a model.

    Built by `LocalizationModel.encode_batch`: each encoder runs once over everything it sees
    (which keeps BatchNorm's statistics whole), then every objective reads what it needs.

    Attributes:
      data: the batch as given (the dicts of `fairplay.training_dataset(...).batch(B)`), for an
        objective that reads more keys.
      visual: `[B, h, w, C]` V of `frame`.
      negative_visual: `[B, h, w, C]` V- of `negative_frame`, or None when no objective needs it.
      mono_embedding: `[B, e]` e of `mono_patch`.
      binaural_embedding: `[B, 2 e]` [e(L), e(R)] of `binaural_patch`, or None.
      clip_ids: `[B]` clip ids, or None.
      other_clip: `[B, B]` bool, True where example j comes from another clip than example i:
        the in-batch negatives (`negatives="batch"` with clip ids), or None (own negatives only).
      audio_feature: `[B, F]` the head's audio feature of `mono_patch`, or None (for the
        pointing objectives, `keras_binaural.models.pointing`).
      mosaic_visual: `[B, h, w, C]` the maps of the batch's 2 x 2 mosaics
        (`pointing.make_mosaic`), `mosaic_target` `[B, 4]` the tiles of each example's clip and
        `mosaic_cell_tiles` `[h, w]` the tile of each cell; or None.
      mirrored_visual: `[B, h, w, C]` the maps of the mirrored frames, or None.
      erased_visual: `[B, h, w, C]` the maps of the frames with their attended region erased
        (`pointing.erase_attended`), or None; unerased_visual: the frames' maps from the same
        encoder pass (the same BatchNorm batch), what the erased maps are compared with.
      false_negative_fraction: the share of each anchor's best-matching in-batch negatives the
        contrastive objectives leave out (`localization_core.drop_hardest_negatives`).
    """

    data: dict
    visual: Any
    negative_visual: Any
    mono_embedding: Any
    binaural_embedding: Any
    clip_ids: Any
    other_clip: Any
    audio_feature: Any = None
    mosaic_visual: Any = None
    mosaic_target: Any = None
    mosaic_cell_tiles: Any = None
    mirrored_visual: Any = None
    erased_visual: Any = None
    unerased_visual: Any = None
    false_negative_fraction: float = 0.0

    @property
    def batch_size(self):
        """The batch size B, a scalar int32 tensor."""
        return tf.shape(self.visual)[0]


class ObjectiveLosses(NamedTuple):
    """What an objective returns for a batch.

    Attributes:
      terms: {name: scalar loss}, one entry per name of its `loss_names`.
      pairs: a main head's (d+ `[B]`, d- `[B]`, weight `[B]` or None): the pairs the distance
        and accuracy metrics score; None for an auxiliary objective.
    """

    terms: dict
    pairs: tuple | None = None


class LocalizationObjective(keras.layers.Layer):
    """A layer that adds named loss terms to a `LocalizationModel`'s loss.

    Subclasses set `loss_names` (and `required_keys`, the data keys they read besides `frame`,
    `negative_frame` and `mono_patch`) and implement `needs` and `losses`.
    """

    loss_names: tuple[str, ...] = ()
    required_keys: tuple[str, ...] = ()

    def needs(self, training: bool) -> frozenset[str]:
        """The encodings `losses` reads besides `visual` and `mono_embedding`: a subset of
        {"negative_visual", "binaural_embedding", "audio_feature", "mosaic", "mirrored_visual",
        "erased_visual"}."""
        return frozenset()

    def losses(self, batch: EncodedBatch, training: bool = False) -> ObjectiveLosses:
        """The objective's loss terms on an encoded batch."""
        raise NotImplementedError


class LocalizationHead(LocalizationObjective):
    """A main head: it also maps audio and frames for the metrics, evaluation and guidance.

    Its `call` returns `audio_feature`, `scene_feature`, `object_feature` `[batch, F]` and
    `attention` `[batch, h, w]` (the map over the cells); its `losses` return the metric pairs.
    """

    def audio_feature(self, audio_embedding):
        """`[batch, e]` -> the head's audio feature `[batch, F]`."""
        raise NotImplementedError

    def pair_distance(self, audio_feature, visual):
        """The raw distance d of (audio, frame) pairs, `[batch]`."""
        raise NotImplementedError

    def cell_map(self, visual, audio_feature):
        """The localization map over the stride-32 cells, `[batch, h, w]`."""
        raise NotImplementedError
