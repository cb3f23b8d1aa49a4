"""Visual sounding-object localization: OSA, SSM and the additional baseline (SPEC section 4).

Paper symbols -> code names: `keras_binaural.models.localization_core`, which holds the math.

The heads (OSA, SSM, the additional baseline): `keras_binaural.models.localization_heads`.

Design choices (ours, where the supplement is silent):
- **In-batch negatives** (`negatives="batch"`, the default): besides its own negative frame
  (negative audio for the baseline), each example also takes every example of its batch that
  comes from another clip (by `clip_id`) as a negative, each scored with the same pair loss;
  its loss is the mean over its negatives. Trained from scratch on our CPU (synthetic scenes,
  96 x 96 frames, batches of 16, Adam 3e-4), one negative pair per example (`negatives="pair"`,
  the paper's sampling as we read it) stayed at chance accuracy for 200 steps, where in-batch
  negatives reached 71 % (86 % at 1e-4). Without clip ids, only the own negative is used.
- **Pair distance for any (audio, frame) pair** (`LocalizationModel.pair_distance`, used by the
  metrics and by `keras_binaural.evaluation.localization`): OSA: ||a - s(V)|| + ||a - o(V, a)||
  (`distance_feature="sum"`; "scene" or "object" pick one term; "auto", the default, sums the
  terms that are trained, i.e. whose lambda is not 0); baseline: ||f_v sigma(f_v^T f_a) - f_a||.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_binaural.localization_metrics import (
    AudioVisualDistance,
    PairAccuracy,
    softmax_scaled,
)
from keras_binaural.models.audio_encoders import (
    AUDIO_ENCODERS,
    check_patches,
    make_audio_encoder,
)
from keras_binaural.models.base import LossTermsModel
from keras_binaural.models.localization_core import object_attention, upsample_map
from keras_binaural.models.localization_heads import FEATURE_SIZE, BaselineHead, OSAHead, SSMHead
from keras_binaural.models.localization_objectives import EncodedBatch, LocalizationObjective
from keras_binaural.models.pointing import (
    POINTING_OBJECTIVES,
    erase_attended,
    make_mosaic,
    tile_of_cells,
)
from keras_binaural.models.vggish import EMBEDDING_SIZE, NUM_BANDS, NUM_FRAMES
from keras_binaural.models.visual_encoders import VISUAL_ENCODERS, make_visual_encoder

LOCALIZERS = ("osa", "baseline")
DISTANCE_FEATURES = ("auto", "sum", "scene", "object")
NEGATIVES = ("batch", "pair")


# === Model ===


def check_frames(frames, key: str = "frame") -> None:
    """Raises ValueError unless `frames` is `[batch, height, width, 3]` floating."""
    shape, dtype = tuple(frames.shape), keras.backend.standardize_dtype(frames.dtype)
    if len(shape) != 4 or shape[-1] != 3 or "float" not in dtype:
        raise ValueError(
            f"LocalizationModel expects {key!r} frames of shape [batch, height, width, 3] "
            f"float32 RGB in [0, 1]; got shape {shape} and dtype {dtype}. Convert uint8 frames "
            "with frames / 255 and add a batch axis to a single frame."
        )


@keras.saving.register_keras_serializable(package="keras_binaural")
class LocalizationModel(LossTermsModel):
    """The visual sounding-object localization model, trained with `model.fit` (SPEC section 4).

    Holds its own visual encoder (ResNet-18 or a compact CNN, trainable, separate from the
    generation model's), an audio encoder chosen by name, the localizer head ("osa" or
    "baseline"), optionally the SSM head and the pointing objectives.

    **Audio encoder choice.** "vggish" is the paper's (our Keras VGGish; frozen with
    `audio_encoder_trainable=False`, as the paper). Without pre-trained weights (none can be
    downloaded here) and at 72 M parameters and about 1.7 GFLOP per patch, training it on a
    2-core CPU is slow and a frozen random one is a fixed random projection. "compact" (the
    default) is `LogMelCNN`, VGGish's shape at `audio_width_multiplier` of its widths with
    BatchNorm, trained from scratch with the rest (see `keras_binaural.models.audio_encoders`).

    **Training** (`train_step`, the Keras "customizing fit() with TensorFlow" pattern): on the
    dicts of `keras_binaural.data.fairplay.training_dataset(...).batch(B)` (other keys are
    ignored). Uses `frame` and `negative_frame` `[B, H, W, 3]` float in [0, 1], `mono_patch`
    `[B, 96, 64]`, `binaural_patch` `[B, 2, 96, 64]` (SSM only) and `clip_id` `[B]` (which
    examples are other clips: in-batch negatives and the baseline's negative audio; without it,
    only OSA's own negative frame, and the baseline's next example, are negatives). Each head
    answers for its own loss terms (`localization_objectives.LocalizationObjective.losses`, on the
    batch encoded once by `encode_batch`); the loss is their sum weighted by `term_weights`:
      "osa":      lambda_sce l_sce_loc + lambda_obj l_obj_loc (+ lambda_ssm l_ssm)
      "baseline": l_baseline (supp. Eq. 3, weight 1)      (+ lambda_ssm l_ssm)
    plus lambda_mil l_mil + lambda_background l_bg + lambda_mosaic l_mosaic + lambda_cue l_cue
    + lambda_response l_response + lambda_flip l_flip + lambda_erase l_erase
    (`keras_binaural.models.pointing`). A weight of 0 switches a term off (its value is still
    reported). Each pair term is the mean pair loss over an example's negatives (`negatives`).
    Reported metrics: `loss`, each term (`sce_loss`, `obj_loss`, `baseline_loss`, `ssm_loss`),
    `distance` (supp. Eq. 10) and `accuracy` (supp. Eq. 11). In training they are on the
    localizer's training pairs (negative frames for OSA, negative audio for the baseline); in
    `evaluate` (`test_step`) both localizers are scored on (audio, frame) vs (audio, negative
    frame), as supp. Table 1.

    Args:
      audio_encoder: "compact" (`LogMelCNN`) or "vggish" (our Keras VGGish).
      audio_encoder_trainable: whether the audio encoder trains.
      audio_width_multiplier: `LogMelCNN`'s width multiplier (ignored for "vggish").
      localizer: "osa" or "baseline".
      use_ssm: add the SSM head and its loss (needs `binaural_patch` in the data).
      temperature: tau of the object attention (OSA and SSM).
      lambda_sce, lambda_obj: OSA's loss weights.
      lambda_ssm: SSM's loss weight.
      distance_feature: OSA's pair distance for the metrics, `pair_distance` and evaluation:
        "sum" (||a - s|| + ||a - o||), "scene", "object", or "auto" (the sum of the trained
        terms: "sum" unless lambda_sce or lambda_obj is 0). Ignored by the baseline.
      negatives: "batch" (the own negative plus every example of the batch from another clip,
        by `clip_id`) or "pair" (the own negative only: OSA's negative frame, the baseline's
        nearest other-clip audio). See the module docstring.
      visual_encoder: "resnet18" (the paper's, stride 32) or "compact" (`CompactCNN`, stride
        `visual_stride`, first-stage width `visual_width`; its cells see about one object), see
        `keras_binaural.models.visual_encoders`.
      visual_width, visual_stride: the compact encoder's (ignored for "resnet18").
      lambda_mil, lambda_background, lambda_mosaic, lambda_cue, lambda_response, lambda_flip,
      lambda_erase: weights of the pointing objectives (`keras_binaural.models.pointing`:
        multiple-instance matching, the background as a hard negative, mosaics, binaural cues,
        the columns' acoustic responses, flip equivariance, erasing the evidence); 0 (the
        default, the paper's loss set) leaves an objective out.
      mil_temperature: tau of the multiple-instance cell scores.
      false_negative_fraction: the share of each example's best-matching in-batch negatives
        left out of the contrastive losses (OSA's, multiple-instance, background), which are
        likely the same classes (`localization_core.drop_hardest_negatives`); 0: none.
      cue_bins, cue_bands: the binaural-cue objective's profile columns and ILD bands.
      response_columns: the response objective's column bins.
      erase_cells: the erasure objective's bound on the erased area, in cells.
      seed: seed of the mosaics' tile placement, or None.
      **kwargs: `keras.Model` arguments.

    Call arguments:
      inputs: dict with `frame` `[batch, H, W, 3]` float32 RGB in [0, 1] (static H, W) and
        `mono_patch` `[batch, 96, 64]` float32 VGGish log-mel patch of the mono chunk; other keys
        are ignored.
      training: BatchNorm mode.

    Returns:
      dict: `map` `[batch, H, W]` localization map (A upsampled; the baseline's gate map),
      `attention` `[batch, h, w]`, `audio_feature` `[batch, 512]`, `object_feature`
      `[batch, 512]` (o; the baseline's f'_v), `scene_feature` `[batch, 512]` (s; the baseline's
      f_v), with h, w = ceil(H / s), ceil(W / s) for the encoder's stride s (`output_stride`).

    Example:
    >>> model = LocalizationModel(localizer="osa", use_ssm=True)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-4))
    >>> clips = fairplay.list_clips(root, "train")  # doctest: +SKIP
    >>> model.fit(fairplay.training_dataset(clips, crop_hw=(96, 192), resize_hw=(104, 208))
    ...           .batch(16), steps_per_epoch=100, epochs=5)  # doctest: +SKIP
    >>> maps = model.localize(frames, mono_patches)  # [batch, 96, 192]  # doctest: +SKIP

    Reference: supp. section 1 (OSA, SSM), section 2 (additional baseline, Eq. 1-3, 10-11).
    """

    def __init__(
        self,
        audio_encoder: str = "compact",
        audio_encoder_trainable: bool = True,
        audio_width_multiplier: float = 0.125,
        localizer: str = "osa",
        use_ssm: bool = False,
        temperature: float = 0.07,
        lambda_sce: float = 1.0,
        lambda_obj: float = 1.0,
        lambda_ssm: float = 1.0,
        distance_feature: str = "auto",
        negatives: str = "batch",
        visual_encoder: str = "resnet18",
        visual_width: int = 32,
        visual_stride: int = 8,
        lambda_mil: float = 0.0,
        mil_temperature: float = 0.03,
        lambda_background: float = 0.0,
        lambda_mosaic: float = 0.0,
        lambda_cue: float = 0.0,
        cue_bins: int = 8,
        cue_bands: int = 8,
        lambda_response: float = 0.0,
        response_columns: int = 16,
        lambda_flip: float = 0.0,
        lambda_erase: float = 0.0,
        erase_cells: float = 16.0,
        false_negative_fraction: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if audio_encoder not in AUDIO_ENCODERS:
            raise ValueError(
                f"audio_encoder must be one of {AUDIO_ENCODERS}; got {audio_encoder!r}.")
        if localizer not in LOCALIZERS:
            raise ValueError(f"localizer must be one of {LOCALIZERS}; got {localizer!r}.")
        if negatives not in NEGATIVES:
            raise ValueError(f"negatives must be one of {NEGATIVES}; got {negatives!r}.")
        if visual_encoder not in VISUAL_ENCODERS:
            raise ValueError(
                f"visual_encoder must be one of {VISUAL_ENCODERS}; got {visual_encoder!r}.")
        if distance_feature not in DISTANCE_FEATURES:
            raise ValueError(
                f"distance_feature must be one of {DISTANCE_FEATURES}; got {distance_feature!r}.")
        # === Config ===
        self.audio_encoder_name = audio_encoder
        self.audio_encoder_trainable = audio_encoder_trainable
        self.audio_width_multiplier = audio_width_multiplier
        self.localizer = localizer
        self.use_ssm = use_ssm
        self.temperature = temperature
        self.lambda_sce = lambda_sce
        self.lambda_obj = lambda_obj
        self.lambda_ssm = lambda_ssm
        self.distance_feature = distance_feature
        self.negatives = negatives
        self.visual_encoder_name = visual_encoder
        self.visual_width = visual_width
        self.visual_stride = visual_stride
        self.lambda_mil = lambda_mil
        self.mil_temperature = mil_temperature
        self.lambda_background = lambda_background
        self.lambda_mosaic = lambda_mosaic
        self.lambda_cue = lambda_cue
        self.cue_bins = cue_bins
        self.cue_bands = cue_bands
        self.lambda_response = lambda_response
        self.response_columns = response_columns
        self.lambda_flip = lambda_flip
        self.lambda_erase = lambda_erase
        self.erase_cells = erase_cells
        self.false_negative_fraction = false_negative_fraction
        self.seed = seed
        # The weight of each loss term the objectives report (supp. Eq. 3's baseline loss: 1).
        self.term_weights = {"sce_loss": lambda_sce, "obj_loss": lambda_obj,
                             "baseline_loss": 1.0, "ssm_loss": lambda_ssm}
        pointing = {key: getattr(self, key) for key in POINTING_OBJECTIVES if getattr(self, key)}
        for key, weight in pointing.items():
            self.term_weights.update(dict.fromkeys(POINTING_OBJECTIVES[key].loss_names, weight))

        # === Layers ===
        dtype = self.dtype_policy
        self.visual_encoder = make_visual_encoder(
            visual_encoder, visual_width, visual_stride, layer_name="visual_encoder", dtype=dtype)
        self.audio_encoder = make_audio_encoder(
            audio_encoder, trainable=audio_encoder_trainable,
            width_multiplier=audio_width_multiplier, layer_name="audio_encoder", dtype=dtype)
        if localizer == "osa":
            self.head = OSAHead(temperature=temperature,
                                distance_terms=self._distance_terms(), name="osa_head",
                                dtype=dtype)
        else:
            self.head = BaselineHead(name="baseline_head", dtype=dtype)
        self.ssm_head = SSMHead(temperature=temperature, name="ssm_head", dtype=dtype) if (
            use_ssm) else None
        # The pointing objectives (keras_binaural.models.pointing), each when its λ is not 0.
        options = {"lambda_mil": {"mil_temperature": mil_temperature},
                   "lambda_cue": {"cue_bins": cue_bins, "cue_bands": cue_bands},
                   "lambda_response": {"response_columns": response_columns}}
        self.pointing_objectives = [
            POINTING_OBJECTIVES[key](temperature=temperature, **options.get(key, {}),
                                     name=key.removeprefix("lambda_"), dtype=dtype)
            for key in pointing]
        self.seed_generator = keras.random.SeedGenerator(seed, name="mosaic_seed")

        # === Metrics ===
        self.track_losses([name for objective in self._objectives()
                           for name in objective.loss_names])
        self.distance_metric = AudioVisualDistance(name="distance")
        self.accuracy_metric = PairAccuracy(name="accuracy")

        self.build(None)

    def _distance_terms(self) -> tuple[str, ...]:
        """OSA's pair distance terms: "auto" leaves out a term that is switched off."""
        chosen = {"scene": ("scene",), "object": ("object",), "sum": ("scene", "object")}
        return chosen.get(self.distance_feature) or tuple(
            name for name, weight in (("scene", self.lambda_sce), ("object", self.lambda_obj))
            if weight) or ("scene", "object")

    def _objectives(self) -> list[LocalizationObjective]:
        """The layers whose loss terms make the loss: the head, then the SSM head if any.

        A method, not an attribute: a list attribute would put the heads into the saved weights
        a second time, under another name.
        """
        return [self.head] + ([self.ssm_head] if self.ssm_head is not None else []) + list(
            self.pointing_objectives)

    @property
    def output_stride(self) -> int:
        """Pixels per cell of the localization map (the visual encoder's output stride)."""
        return self.visual_encoder.output_stride

    def build(self, input_shape=None):
        if self.built:  # built at construction: every size is known from the config
            return
        self.head.build({"audio_embedding": (None, EMBEDDING_SIZE),
                         "visual": (None, None, None, FEATURE_SIZE)})
        if self.ssm_head is not None:
            self.ssm_head.build({"audio_embedding": (None, 2 * EMBEDDING_SIZE),
                                 "visual": (None, None, None, FEATURE_SIZE)})
        for objective in self.pointing_objectives:
            objective.build(None)
        self.built = True

    # --- Encoders ---

    def encode_frames(self, frames, training=False):
        """V: frames `[batch, H, W, 3]` in [0, 1] -> `[batch, ceil(H/s), ceil(W/s), 512]`."""
        check_frames(frames)
        return self.visual_encoder(frames, training=training)

    def encode_audio(self, patches, training=False):
        """e: log-mel patches `[batch, 96, 64]` -> `[batch, 128]`."""
        check_patches(patches, "LocalizationModel")
        # The reader's patches have an unknown frame count until run: fix the static shape.
        patches = keras.ops.reshape(patches, (-1, NUM_FRAMES, NUM_BANDS))
        return self.audio_encoder(patches, training=training)

    # --- Distances on encoded inputs ---

    def audio_feature(self, audio_embedding):
        """The localizer's audio feature (OSA's a, the baseline's f_a), `[batch, 512]`."""
        return self.head.audio_feature(audio_embedding)

    def pair_distance(self, visual, audio_feature):
        """The raw distance d of (audio, frame) pairs, `[batch]` (see `distance_feature`).

        Args:
          visual: `[batch, h, w, 512]` encoded frames (`encode_frames`).
          audio_feature: `[batch, 512]` (`audio_feature(encode_audio(patches))`).
        """
        return self.head.pair_distance(audio_feature, visual)

    def cell_map(self, visual, audio_feature):
        """The localization map over the encoder's cells, `[batch, h, w]` (before upsampling).

        OSA: the object attention A (sums to 1); baseline: the per-cell gate sigma(V_ij^T f_a).
        """
        return self.head.cell_map(visual, audio_feature)

    def score_pairs(self, frames, negative_frames, mono_patch):
        """(D+, D-) `[batch]` each: softmax-scaled distances of (audio, frame) vs (audio, other).

        Args:
          frames: `[batch, H, W, 3]` the audio's own frames; negative_frames: frames of other
            clips (same shape); mono_patch: `[batch, 96, 64]`.
        """
        check_frames(negative_frames, "negative_frame")
        audio = self.audio_feature(self.encode_audio(mono_patch))
        return softmax_scaled(self.pair_distance(self.encode_frames(frames), audio),
                              self.pair_distance(self.encode_frames(negative_frames), audio))

    # --- Forward ---

    def call(self, inputs, training=False):
        if not isinstance(inputs, dict) or not {"frame", "mono_patch"} <= set(inputs):
            raise ValueError(
                "LocalizationModel is called on a dict with 'frame' [batch, H, W, 3] and "
                f"'mono_patch' [batch, 96, 64]; got {type(inputs).__name__}"
                + (f" with keys {sorted(inputs)}" if isinstance(inputs, dict) else "") + ".")
        return self.frame_outputs(inputs["frame"], inputs["mono_patch"], training)

    def frame_outputs(self, frames, mono_patch, training=False, visual=None) -> dict:
        """The head's outputs and the localization map of (frame, mono patch) pairs.

        The one place the per-frame map is made: `call` and `localize`, the upmixer's guidance
        (`Upmixer.frame_guidance`), whole-clip generation and serving
        (`keras_binaural.generation`) and `binauralize` all come here.

        Args:
          frames: `[batch, H, W, 3]` float32 RGB in [0, 1] (static H, W).
          mono_patch: `[batch, 96, 64]` the log-mel patch of the mono centred on each frame.
          training: BatchNorm mode.
          visual: optional `[batch, h, w, 512]` V of `frames`, if already computed.

        Returns:
          dict: `audio_feature`, `scene_feature`, `object_feature` `[batch, 512]`, `attention`
          `[batch, h, w]` (the map over the cells) and `map` `[batch, H, W]` (upsampled).
        """
        check_frames(frames)
        if visual is None:
            visual = self.encode_frames(frames, training=training)
        outputs = self.head({"audio_embedding": self.encode_audio(mono_patch, training),
                             "visual": visual})
        outputs["map"] = upsample_map(outputs["attention"], (frames.shape[1], frames.shape[2]),
                                      self.output_stride)
        return outputs

    def localize(self, frames, mono_patch):
        """The localization map `[batch, H, W]` (>= 0; OSA's sums to 1 over the cells).

        Args:
          frames: `[batch, H, W, 3]` float32 RGB in [0, 1]; mono_patch: `[batch, 96, 64]`.
        """
        return self(
            {"frame": keras.ops.convert_to_tensor(frames),
             "mono_patch": keras.ops.convert_to_tensor(mono_patch)}, training=False)["map"]

    # --- Training ---

    def encode_batch(self, data, training=False) -> EncodedBatch:
        """A batch of `training_dataset` dicts encoded for every objective (`EncodedBatch`).

        Each encoder makes one pass over everything the objectives need (`needs`), which keeps
        BatchNorm's statistics whole.
        """
        needs = frozenset().union(*(o.needs(training) for o in self._objectives()))
        frames = data["frame"]
        batch = tf.shape(frames)[0]
        clip_ids = data.get("clip_id")
        # Every image the objectives need, through the visual encoder in one pass.
        images = {"visual": frames}
        if "negative_visual" in needs:
            images["negative_visual"] = data["negative_frame"]
        mosaic_target = None
        if "mosaic" in needs:
            same_clip = (tf.equal(clip_ids[:, None], clip_ids[None, :]) if clip_ids is not None
                         else tf.eye(batch, dtype=tf.bool))
            position = keras.random.randint((batch,), 0, 4, seed=self.seed_generator)
            images["mosaic_visual"], mosaic_target = make_mosaic(frames, same_clip, position)
        if "mirrored_visual" in needs:
            images["mirrored_visual"] = tf.reverse(frames, [2])
        encoded = self.visual_encoder(tf.concat(list(images.values()), 0), training=training)
        maps = dict(zip(images, tf.split(encoded, len(images), axis=0)))
        visual = maps["visual"]
        mosaic_cell_tiles = None
        if "mosaic" in needs:
            mosaic_cell_tiles = tile_of_cells(tuple(visual.shape[1:3]), tuple(frames.shape[1:3]),
                                              self.output_stride)
        # The reader's patches have an unknown frame count until run: fix the static shape.
        patches = tf.ensure_shape(data["mono_patch"], [None, NUM_FRAMES, NUM_BANDS])
        if "binaural_embedding" in needs:
            binaural = tf.reshape(
                tf.ensure_shape(data["binaural_patch"], [None, 2, NUM_FRAMES, NUM_BANDS]),
                [-1, NUM_FRAMES, NUM_BANDS])
            patches = tf.concat([patches, binaural], 0)
        embeddings = self.audio_encoder(patches, training=training)
        binaural_embedding = None
        if "binaural_embedding" in needs:
            binaural_embedding = tf.reshape(embeddings[batch:], [batch, 2 * EMBEDDING_SIZE])
        # Which examples of the batch are other clips (in-batch negatives need clip ids).
        other_clip = None
        if self.negatives == "batch" and clip_ids is not None:
            other_clip = tf.not_equal(clip_ids[:, None], clip_ids[None, :])
        mono_embedding = embeddings[:batch]
        audio_feature = (self.head.audio_feature(mono_embedding) if "audio_feature" in needs
                         else None)
        unerased_visual = erased_visual = None
        if "erased_visual" in needs:  # a second pass: the erased region comes from the map
            attention = object_attention(visual, audio_feature, self.temperature)
            erased = erase_attended(frames, attention, self.erase_cells, self.output_stride)
            # The frames again beside their erased copies, in one BatchNorm batch: encoded
            # apart, a batch of erased frames is told from the frames by its statistics alone.
            unerased_visual, erased_visual = tf.split(
                self.visual_encoder(tf.concat([frames, erased], 0), training=training), 2)
        return EncodedBatch(data, visual, maps.get("negative_visual"), mono_embedding,
                            binaural_embedding, clip_ids, other_clip, audio_feature,
                            maps.get("mosaic_visual"), mosaic_target, mosaic_cell_tiles,
                            maps.get("mirrored_visual"), erased_visual, unerased_visual,
                            self.false_negative_fraction)

    def compute_losses(self, data, training=False):
        """Loss terms and the scored pairs of a batch of `training_dataset` dicts.

        loss = the sum over the objectives' terms of `term_weights[term]` x term.

        Returns:
          dict: `loss` (scalar), each term (scalars), `scaled_positive`, `scaled_negative`
          `[batch]` (D+, D-) and `pair_weight` `[batch]` for the metrics.
        """
        objectives = self._objectives()
        required = ("frame", "negative_frame", "mono_patch") + tuple(
            key for objective in objectives for key in objective.required_keys)
        for key in required:
            if key not in data:
                raise ValueError(
                    f"LocalizationModel training data needs the key {key!r} (the dicts of "
                    f"keras_binaural.data.fairplay.training_dataset); got keys {sorted(data)}.")
        check_frames(data["frame"])
        check_frames(data["negative_frame"], "negative_frame")
        check_patches(data["mono_patch"], "LocalizationModel (mono_patch)")

        batch = self.encode_batch(data, training)
        terms, pairs = {}, None
        for objective in objectives:
            result = objective.losses(batch, training)
            terms.update(result.terms)
            if pairs is None:  # the head's (it comes first): what the metrics score
                pairs = result.pairs
        loss = None
        for name, value in terms.items():
            weighted = self.term_weights[name] * value
            loss = weighted if loss is None else loss + weighted
        scaled_positive, scaled_negative = softmax_scaled(pairs[0], pairs[1])
        return {"loss": loss, **terms, "scaled_positive": scaled_positive,
                "scaled_negative": scaled_negative, "pair_weight": pairs[2]}

    def _update_metrics(self, results):
        for metric in (self.distance_metric, self.accuracy_metric):
            metric.update_state(results["scaled_positive"], results["scaled_negative"],
                                sample_weight=results["pair_weight"])
        return super()._update_metrics(results)

    @property
    def metrics(self):
        return [*super().metrics, self.distance_metric, self.accuracy_metric]

    def get_config(self):
        return {
            **super().get_config(),
            "audio_encoder": self.audio_encoder_name,
            "audio_encoder_trainable": self.audio_encoder_trainable,
            "audio_width_multiplier": self.audio_width_multiplier,
            "localizer": self.localizer,
            "use_ssm": self.use_ssm,
            "temperature": self.temperature,
            "lambda_sce": self.lambda_sce,
            "lambda_obj": self.lambda_obj,
            "lambda_ssm": self.lambda_ssm,
            "distance_feature": self.distance_feature,
            "negatives": self.negatives,
            "visual_encoder": self.visual_encoder_name,
            "visual_width": self.visual_width,
            "visual_stride": self.visual_stride,
            "lambda_mil": self.lambda_mil,
            "mil_temperature": self.mil_temperature,
            "lambda_background": self.lambda_background,
            "lambda_mosaic": self.lambda_mosaic,
            "lambda_cue": self.lambda_cue,
            "cue_bins": self.cue_bins,
            "cue_bands": self.cue_bands,
            "lambda_response": self.lambda_response,
            "response_columns": self.response_columns,
            "lambda_flip": self.lambda_flip,
            "lambda_erase": self.lambda_erase,
            "erase_cells": self.erase_cells,
            "false_negative_fraction": self.false_negative_fraction,
            "seed": self.seed,
        }
