"""The localization heads: OSA, SSM and the additional baseline (supp. sections 1-2, SPEC 4).

Each head is a Keras layer over an audio embedding e and a visual map V (`call` on
{"audio_embedding", "visual"}); the math is `keras_binaural.models.localization_core`'s
(paper symbols there). `keras_binaural.models.localization.LocalizationModel` holds the encoders
and one main head ("osa" or "baseline") plus, optionally, the SSM head.

**Each head answers for its own losses**: every head is a `LocalizationObjective`
(`keras_binaural.models.localization_objectives`) that names its loss terms and returns them
from the batch the model encoded once; OSA and the baseline are `LocalizationHead`s, which also
give the metrics their pairs and map (audio, frame) pairs to a distance and a localization map.

Design choices (ours, where the supplement is silent):
- **OSA** (`OSAHead`): exactly the formulas of `localization_core`'s symbol table; the
  localization map is A upsampled to the frame (`upsample_map`: each cell of the stride-32 map
  covers a 32 x 32 pixel square).
- **SSM** (`SSMHead`): the same with binaural audio in: e = [e(L), e(R)] (256-d), every FC twice as
  wide (audio feature 1024 = left half + right half, each half attending over V and giving a left
  and a right map). To let the head see *where* the attended object is, each half's pooled
  feature is extended by the attention's centroid (x, y in [-1, 1], +x to the image's right)
  before the object FCs: a ResNet feature alone carries little absolute position. Negatives:
  the negative frame (pair distance of the same audio and V-), and the channel-swapped audio of
  the same clip (e' = [e(R), e(L)] with V). **SSM loss** = mean of the two pair losses:
  (l(d+, d-_frame) + l(d+, d-_swap)) / 2, every distance the object distance ||a - o(V, a)||.
- **Additional baseline** (`BaselineHead`, supp. Eq. 1-3): f_v = GlobalAvgPool(V) (no
  projection, as the supplement says), f_pa = FC(ReLU(FC(e))) (two FCs as in OSA, no LayerNorm),
  f'_v = f_v sigma(f_v^T f_pa), d+ = ||f'_v - f_pa||, d- = ||f'_v - f_na||. **Negative audio in
  training**: the audio of the nearest other example of the batch, rolling by the smallest shift
  that reaches another clip id (`negative_audio_indices`); an example with no other clip in its
  batch is left out of the loss. Its localization map is the per-cell gate sigma(V_ij^T f_pa)
  (Eq. 1 applied to each cell), upsampled as OSA's.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from keras_binaural.models.localization_core import (
    attention_centroid,
    attention_pool,
    baseline_gate,
    drop_hardest_negatives,
    l2_distance,
    l2_normalize,
    masked_pair_loss,
    negative_audio_indices,
    object_attention,
    ssm_loss,
    weighted_mean,
)
from keras_binaural.models.localization_objectives import (
    EncodedBatch,
    LocalizationHead,
    LocalizationObjective,
    ObjectiveLosses,
)

FEATURE_SIZE = 512  # size of a, s and o (the ResNet-18 channel count)
DISTANCE_TERMS = ("scene", "object")  # OSA's pair distance terms: ||a - s||, ||a - o||


def _head_shapes(input_shape, head, why: str = "") -> tuple[int, int]:
    """(audio embedding size, visual channels) from a head's input shape dict; the channels must
    be the head's `feature_size` (`why` says what compares them)."""
    if not isinstance(input_shape, dict) or not {"audio_embedding", "visual"} <= set(input_shape):
        raise ValueError(
            "Localization heads are called on a dict {'audio_embedding': [batch, e], "
            f"'visual': [batch, h, w, c]}}; got input shape {input_shape}."
        )
    channels = int(input_shape["visual"][-1])
    if channels != head.feature_size:
        raise ValueError(
            f"{type(head).__name__}(feature_size={head.feature_size}) needs visual maps with "
            f"{head.feature_size} channels{why}; got {channels}."
        )
    return int(input_shape["audio_embedding"][-1]), channels


def _dense(units: int, name: str, dtype, activation=None) -> keras.layers.Dense:
    return keras.layers.Dense(units, activation=activation, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="keras_binaural")
class OSAHead(LocalizationHead):
    """Object-scene awareness head (supp. section 1; main-paper Eq. 5-6 as we read them).

    a = LayerNorm(FC(ReLU(FC(e)))); s = LayerNorm(GlobalAvgPool(V));
    A = softmax_ij(<V^_ij, a^> / tau); o = FC(ReLU(FC(sum_ij A_ij V_ij))). The pseudo object o- of
    a negative frame is `object_feature(negative_visual, a)` with the same a.

    Args:
      feature_size: size of a, s and o; must equal the visual channels (512 for ResNet-18),
        since s enters ||a - s|| without a projection.
      temperature: tau of the attention softmax (cosine similarities / tau).
      distance_terms: the terms of the pair distance d (`pair_distance`, the metrics' and the
        evaluation's): ("scene", "object") sums ||a - s|| and ||a - o||; one of them alone.
      **kwargs: `keras.layers.Layer` arguments.

    Losses (`losses`): l_sce_loc (`sce_loss`) and l_obj_loc (`obj_loss`), each the mean pair
    loss of an example against its own negative frame and, with `batch.other_clip`, every frame
    of another clip in its batch.

    Call arguments:
      inputs: dict with `audio_embedding` `[batch, e]` (e = 128, an audio encoder's output) and
        `visual` `[batch, h, w, feature_size]` (the ResNet-18 map V).

    Returns:
      dict: `audio_feature` a `[batch, feature_size]`, `scene_feature` s, `object_feature` o
      (same shape) and `attention` A `[batch, h, w]`.

    Example:
    >>> head = OSAHead(temperature=0.07)
    >>> out = head({"audio_embedding": np.zeros([2, 128], "float32"),
    ...             "visual": np.ones([2, 3, 6, 512], "float32")})
    >>> out["attention"].shape
    TensorShape([2, 3, 6])

    Reference: supp. section 1 ("Object-Scene Awareness Module"); SPEC section 4.
    """

    loss_names = ("sce_loss", "obj_loss")

    def __init__(self, feature_size: int = FEATURE_SIZE, temperature: float = 0.07,
                 distance_terms: Sequence[str] = DISTANCE_TERMS, **kwargs):
        super().__init__(**kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive; got {temperature}.")
        distance_terms = tuple(distance_terms)
        if not distance_terms or not set(distance_terms) <= set(DISTANCE_TERMS):
            raise ValueError(f"distance_terms must be some of {DISTANCE_TERMS}; got "
                             f"{distance_terms}.")
        # === Config ===
        self.feature_size = feature_size
        self.temperature = temperature
        self.distance_terms = distance_terms

        # === Layers ===
        dtype = self.dtype_policy
        self.audio_fc1 = _dense(feature_size, "audio_fc1", dtype, "relu")
        self.audio_fc2 = _dense(feature_size, "audio_fc2", dtype)
        self.audio_norm = keras.layers.LayerNormalization(name="audio_norm", dtype=dtype)
        self.scene_norm = keras.layers.LayerNormalization(name="scene_norm", dtype=dtype)
        self.object_fc1 = _dense(feature_size, "object_fc1", dtype, "relu")
        self.object_fc2 = _dense(feature_size, "object_fc2", dtype)

    def build(self, input_shape):
        embedding_size, channels = _head_shapes(
            input_shape, self, " (s = LayerNorm(GlobalAvgPool(V)) is compared with a directly)")
        self.audio_fc1.build((None, embedding_size))
        self.audio_fc2.build((None, self.feature_size))
        self.audio_norm.build((None, self.feature_size))
        self.scene_norm.build((None, channels))
        self.object_fc1.build((None, channels))
        self.object_fc2.build((None, self.feature_size))
        self.built = True

    def audio_feature(self, audio_embedding):
        """a = LayerNorm(FC(ReLU(FC(e)))): `[batch, e]` -> `[batch, feature_size]`."""
        return self.audio_norm(self.audio_fc2(self.audio_fc1(audio_embedding)))

    def scene_feature(self, visual):
        """s = LayerNorm(GlobalAvgPool(V)): `[batch, h, w, c]` -> `[batch, c]`."""
        return self.scene_norm(keras.ops.mean(visual, axis=(1, 2)))

    def object_feature(self, visual, audio_feature):
        """(o `[batch, feature_size]`, A `[batch, h, w]`) for V and a (Eq. 5; Eq. 6 for V-)."""
        attention = object_attention(visual, audio_feature, self.temperature)
        pooled = attention_pool(visual, attention)
        return self.object_fc2(self.object_fc1(pooled)), attention

    def pair_distances(self, audio_feature, visual):
        """(||a - s(V)||, ||a - o(V, a)||), each `[batch]`, for audio features and visual maps."""
        obj, _ = self.object_feature(visual, audio_feature)
        return (l2_distance(audio_feature, self.scene_feature(visual)),
                l2_distance(audio_feature, obj))

    def pairwise_distances(self, audio_feature, visual):
        """Scene and object distances of every audio with every map, each `[batch, k]`.

        Args:
          audio_feature: `[batch, feature_size]` a_i.
          visual: `[k, h, w, c]` V_k.

        Returns:
          (||a_i - s(V_k)||, ||a_i - o(V_k, a_i)||), each `[batch, k]`.
        """
        scene = self.scene_feature(visual)  # [k, c]
        logits = keras.ops.einsum("khwc,bc->bkhw", l2_normalize(visual),
                                  l2_normalize(audio_feature)) / self.temperature
        shape = keras.ops.shape(logits)
        attention = keras.ops.reshape(keras.ops.softmax(
            keras.ops.reshape(logits, (shape[0], shape[1], -1)), axis=-1), shape)
        pooled = keras.ops.einsum("khwc,bkhw->bkc", visual, attention)
        obj = self.object_fc2(self.object_fc1(pooled))  # [batch, k, feature_size]
        anchor = keras.ops.expand_dims(audio_feature, 1)
        return (l2_distance(anchor, keras.ops.expand_dims(scene, 0)), l2_distance(anchor, obj))

    def combine_distances(self, d_scene, d_object):
        """The pair distance d from the scene and object distances (`distance_terms`)."""
        terms = {"scene": d_scene, "object": d_object}
        total = terms[self.distance_terms[0]]
        for name in self.distance_terms[1:]:
            total = total + terms[name]
        return total

    def pair_distance(self, audio_feature, visual):
        """d = the `distance_terms` of (||a - s(V)||, ||a - o(V, a)||), `[batch]`."""
        return self.combine_distances(*self.pair_distances(audio_feature, visual))

    def cell_map(self, visual, audio_feature):
        """The object attention A over the cells, `[batch, h, w]` (sums to 1)."""
        return object_attention(visual, audio_feature, self.temperature)

    def needs(self, training: bool) -> frozenset[str]:
        return frozenset({"negative_visual"})

    def losses(self, batch: EncodedBatch, training: bool = False) -> ObjectiveLosses:
        """l_sce_loc and l_obj_loc; the metric pairs score the own negative frame."""
        audio = self.audio_feature(batch.mono_embedding)
        size = batch.batch_size
        # Candidates: the batch's frames, then its negative frames; the positive of example i is
        # candidate i, its own negative frame candidate size + i.
        d_scene_all, d_object_all = self.pairwise_distances(
            audio, tf.concat([batch.visual, batch.negative_visual], 0))
        own_negative = tf.eye(size, dtype=tf.bool)
        other_clip = batch.other_clip if batch.other_clip is not None else tf.zeros_like(
            own_negative)
        mask = tf.concat([other_clip, own_negative], axis=1)
        mask = drop_hardest_negatives(-self.combine_distances(d_scene_all, d_object_all), mask,
                                      batch.false_negative_fraction)
        d_scene, d_object = tf.linalg.diag_part(d_scene_all), tf.linalg.diag_part(d_object_all)
        d_scene_negative = tf.linalg.diag_part(d_scene_all[:, size:])
        d_object_negative = tf.linalg.diag_part(d_object_all[:, size:])
        terms = {"sce_loss": weighted_mean(masked_pair_loss(d_scene, d_scene_all, mask)[0]),
                 "obj_loss": weighted_mean(masked_pair_loss(d_object, d_object_all, mask)[0])}
        pairs = (self.combine_distances(d_scene, d_object),
                 self.combine_distances(d_scene_negative, d_object_negative), None)
        return ObjectiveLosses(terms, pairs)

    def call(self, inputs):
        audio = self.audio_feature(inputs["audio_embedding"])
        obj, attention = self.object_feature(inputs["visual"], audio)
        return {"audio_feature": audio, "scene_feature": self.scene_feature(inputs["visual"]),
                "object_feature": obj, "attention": attention}

    def get_config(self):
        return {**super().get_config(), "feature_size": self.feature_size,
                "temperature": self.temperature, "distance_terms": list(self.distance_terms)}


@keras.saving.register_keras_serializable(package="keras_binaural")
class SSMHead(LocalizationObjective):
    """Semantic-spatial mining head: OSA's object branch on binaural audio (supp. section 1).

    e = [e(L), e(R)] (256-d); a = LayerNorm(FC(ReLU(FC(e)))) of size 2 F = [a_L, a_R]; each half
    attends over V (A_L, A_R, the left- and right-ear maps); o = FC(ReLU(FC([p_L, p_R]))) of size
    2 F with p_k = [sum_ij A_k,ij V_ij, centroid(A_k)] (the centroid, x and y in [-1, 1], is our
    addition: it tells the head where the attended object is). The loss (`ssm_loss`) takes the
    negative frame and the channel-swapped audio e' = [e(R), e(L)] as negatives: `losses` on
    the real binaural chunk (`ssm_loss`), `loss` on any binaural audio (CLUP's cyclic loss on
    the generated one).

    Args:
      feature_size: F, the size per ear (output 2 F = 1024 for F = 512); must equal the visual
        channels.
      temperature: tau of the attention softmax.
      **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
      inputs: dict with `audio_embedding` `[batch, 2 e]` ([e(L), e(R)], 256 for two 128-d
        embeddings) and `visual` `[batch, h, w, F]`.

    Returns:
      dict: `audio_feature` `[batch, 2 F]`, `object_feature` `[batch, 2 F]`, `attention`
      `[batch, 2, h, w]` (left-ear map, right-ear map).

    Example:
    >>> head = SSMHead()
    >>> out = head({"audio_embedding": np.zeros([2, 256], "float32"),
    ...             "visual": np.ones([2, 3, 6, 512], "float32")})
    >>> out["object_feature"].shape, out["attention"].shape
    (TensorShape([2, 1024]), TensorShape([2, 2, 3, 6]))

    Reference: supp. section 1 ("Semantic-Spatial Mining Module"); SPEC section 4.
    """

    loss_names = ("ssm_loss",)
    required_keys = ("binaural_patch",)

    def __init__(self, feature_size: int = FEATURE_SIZE, temperature: float = 0.07, **kwargs):
        super().__init__(**kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive; got {temperature}.")
        # === Config ===
        self.feature_size = feature_size
        self.temperature = temperature

        # === Layers ===
        dtype = self.dtype_policy
        width = 2 * feature_size
        self.audio_fc1 = _dense(width, "audio_fc1", dtype, "relu")
        self.audio_fc2 = _dense(width, "audio_fc2", dtype)
        self.audio_norm = keras.layers.LayerNormalization(name="audio_norm", dtype=dtype)
        self.object_fc1 = _dense(width, "object_fc1", dtype, "relu")
        self.object_fc2 = _dense(width, "object_fc2", dtype)

    def build(self, input_shape):
        embedding_size, channels = _head_shapes(input_shape, self)
        width = 2 * self.feature_size
        self.audio_fc1.build((None, embedding_size))
        self.audio_fc2.build((None, width))
        self.audio_norm.build((None, width))
        self.object_fc1.build((None, 2 * (channels + 2)))
        self.object_fc2.build((None, width))
        self.built = True

    def audio_feature(self, audio_embedding):
        """a = LayerNorm(FC(ReLU(FC([e(L), e(R)])))): `[batch, 2 e]` -> `[batch, 2 F]`."""
        return self.audio_norm(self.audio_fc2(self.audio_fc1(audio_embedding)))

    def object_feature(self, visual, audio_feature):
        """(o `[batch, 2 F]`, A `[batch, 2, h, w]`): each half of a attends over V."""
        pooled, maps = [], []
        for half in (audio_feature[:, : self.feature_size], audio_feature[:, self.feature_size:]):
            attention = object_attention(visual, half, self.temperature)
            pooled += [attention_pool(visual, attention), attention_centroid(attention)]
            maps.append(attention)
        obj = self.object_fc2(self.object_fc1(keras.ops.concatenate(pooled, axis=-1)))
        return obj, keras.ops.stack(maps, axis=1)

    def pair_distance(self, audio_feature, visual):
        """||a - o(V, a)||, `[batch]`."""
        obj, _ = self.object_feature(visual, audio_feature)
        return l2_distance(audio_feature, obj)

    def pair_distances(self, binaural_embedding, visual, negative_visual):
        """(d+, d-_frame, d-_swap), each `[batch]`, the inputs of `ssm_loss`.

        Args:
          binaural_embedding: `[batch, 2 e]` = [e(L), e(R)].
          visual, negative_visual: `[batch, h, w, F]` V and V-.
        """
        half = binaural_embedding.shape[-1] // 2
        swapped = keras.ops.concatenate(
            [binaural_embedding[:, half:], binaural_embedding[:, :half]], axis=-1)
        audio, audio_swapped = self.audio_feature(binaural_embedding), self.audio_feature(swapped)
        return (self.pair_distance(audio, visual), self.pair_distance(audio, negative_visual),
                self.pair_distance(audio_swapped, visual))

    def loss(self, binaural_embedding, visual, negative_visual, weights=None):
        """The SSM loss of binaural audio with its frame (scalar): `ssm_loss` of `pair_distances`,
        averaged over the batch (weighted by `weights` `[batch]` if given)."""
        return weighted_mean(ssm_loss(*self.pair_distances(binaural_embedding, visual,
                                                           negative_visual)), weights)

    def needs(self, training: bool) -> frozenset[str]:
        return frozenset({"negative_visual", "binaural_embedding"})

    def losses(self, batch: EncodedBatch, training: bool = False) -> ObjectiveLosses:
        """l_ssm on the real binaural chunk."""
        return ObjectiveLosses({"ssm_loss": self.loss(batch.binaural_embedding, batch.visual,
                                                      batch.negative_visual)})

    def call(self, inputs):
        audio = self.audio_feature(inputs["audio_embedding"])
        obj, attention = self.object_feature(inputs["visual"], audio)
        return {"audio_feature": audio, "object_feature": obj, "attention": attention}

    def get_config(self):
        return {**super().get_config(), "feature_size": self.feature_size,
                "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="keras_binaural")
class BaselineHead(LocalizationHead):
    """The additional baseline localizer (supp. Eq. 1-3).

    f_v = GlobalAvgPool(V); f_a = FC(ReLU(FC(e))); f'_v = f_v sigma(f_v^T f_pa) (Eq. 1);
    d+ = ||f'_v - f_pa||, d- = ||f'_v - f_na|| (Eq. 2) with f_na a negative (other clip's) audio.
    Its map is the per-cell gate sigma(V_ij^T f_a).

    Args:
      feature_size: size of f_a; must equal the visual channels (512).
      **kwargs: `keras.layers.Layer` arguments.

    Losses (`losses`): l_baseline (`baseline_loss`, supp. Eq. 3), the mean pair loss of f'_v
    against the audio of the nearest other clip of the batch (`negative_audio_indices`) or, with
    `batch.other_clip`, of every other clip of the batch. The metric pairs are those training
    pairs in training; in evaluation the negative is another clip's frame, as supp. Table 1.

    Call arguments:
      inputs: dict with `audio_embedding` `[batch, e]` and `visual` `[batch, h, w, feature_size]`.

    Returns:
      dict: `audio_feature` f_a `[batch, feature_size]`, `scene_feature` f_v (the pooled
      frame), `object_feature` f'_v (same shape), `attention` `[batch, h, w]` the per-cell gate
      in [0, 1].

    Example:
    >>> head = BaselineHead()
    >>> out = head({"audio_embedding": np.zeros([2, 128], "float32"),
    ...             "visual": np.ones([2, 3, 6, 512], "float32")})
    >>> out["object_feature"].shape
    TensorShape([2, 512])

    Reference: supp. section 2 ("Additional Baseline"), Eq. 1-3.
    """

    loss_names = ("baseline_loss",)

    def __init__(self, feature_size: int = FEATURE_SIZE, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.feature_size = feature_size

        # === Layers ===
        dtype = self.dtype_policy
        self.audio_fc1 = _dense(feature_size, "audio_fc1", dtype, "relu")
        self.audio_fc2 = _dense(feature_size, "audio_fc2", dtype)

    def build(self, input_shape):
        embedding_size, _ = _head_shapes(input_shape, self, " (f_v^T f_pa)")
        self.audio_fc1.build((None, embedding_size))
        self.audio_fc2.build((None, self.feature_size))
        self.built = True

    def audio_feature(self, audio_embedding):
        """f_a = FC(ReLU(FC(e))): `[batch, e]` -> `[batch, feature_size]`."""
        return self.audio_fc2(self.audio_fc1(audio_embedding))

    @staticmethod
    def visual_feature(visual):
        """f_v = GlobalAvgPool(V): `[batch, h, w, c]` -> `[batch, c]`."""
        return keras.ops.mean(visual, axis=(1, 2))

    @staticmethod
    def gate_map(visual, audio_feature):
        """sigma(V_ij^T f_a): `[batch, h, w]` in [0, 1]."""
        return keras.ops.sigmoid(keras.ops.einsum("bhwc,bc->bhw", visual, audio_feature))

    def pair_distance(self, audio_feature, visual):
        """||f_v sigma(f_v^T f_a) - f_a|| for any (audio, frame) pair, `[batch]`."""
        gated = baseline_gate(self.visual_feature(visual), audio_feature)
        return l2_distance(gated, audio_feature)

    def cell_map(self, visual, audio_feature):
        """The per-cell gate sigma(V_ij^T f_a) over the cells, `[batch, h, w]`."""
        return self.gate_map(visual, audio_feature)

    def needs(self, training: bool) -> frozenset[str]:
        # Its training negatives are audio; the evaluation's are frames (supp. Table 1).
        return frozenset() if training else frozenset({"negative_visual"})

    def losses(self, batch: EncodedBatch, training: bool = False) -> ObjectiveLosses:
        """l_baseline; the metric pairs (module docstring)."""
        audio = self.audio_feature(batch.mono_embedding)
        size = batch.batch_size
        # f'_v is gated by the positive audio (supp. Eq. 1); candidates are every audio.
        gated = baseline_gate(self.visual_feature(batch.visual), audio)
        d_all = l2_distance(gated[:, None], audio[None, :])  # [batch, batch]
        indices, valid = negative_audio_indices(batch.clip_ids, size)
        mask = batch.other_clip if batch.other_clip is not None else tf.logical_and(
            tf.one_hot(indices, size, on_value=True, off_value=False), valid[:, None])
        d_positive = tf.linalg.diag_part(d_all)
        losses, has_negative = masked_pair_loss(d_positive, d_all, mask)
        terms = {"baseline_loss": weighted_mean(losses, has_negative)}
        if training:
            pairs = (d_positive, tf.gather(d_all, indices, batch_dims=1),
                     tf.cast(valid, audio.dtype))
        else:  # evaluate as supp. Table 1: the negative is another clip's frame
            pairs = (d_positive, self.pair_distance(audio, batch.negative_visual), None)
        return ObjectiveLosses(terms, pairs)

    def call(self, inputs):
        audio = self.audio_feature(inputs["audio_embedding"])
        visual = self.visual_feature(inputs["visual"])
        return {"audio_feature": audio, "scene_feature": visual,
                "object_feature": baseline_gate(visual, audio),
                "attention": self.gate_map(inputs["visual"], audio)}

    def get_config(self):
        return {**super().get_config(), "feature_size": self.feature_size}
