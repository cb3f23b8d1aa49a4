"""The object-aware diffusion upmixer: mono + frames -> binaural (SPEC section 5).

The upmixer generates the differential d = (L - R) / 2 of a clip by DDPM sampling with the
WaveNet denoiser ε_θ (`keras_binaural.models.denoiser`), conditioned on the mono m and on the
**object-aware guidance**, one vector per 0.1 s video frame, and returns binaural audio by Eq. 3:
L = m + d̂, R = m - d̂ (so L + R = 2 m exactly).

Guidance (`guidance` constructor argument):
- "object": the OSA localizer's (`LocalizationModel(localizer="osa")`) object feature o, the
  horizontal profile of its localization map (mean over the map's rows: *where* the sounding
  object is, binned to `profile_bins` columns and scaled to mean 1) and the scene feature of the
  generation model's own visual encoder (of the localizer's kind: ResNet-18 or the compact CNN;
  GlobalAvgPool of its map; with `scene_columns` > 1 the map's mean over rows in that many
  columns, which keeps the scene's left-to-right layout, see `scene_layout`), mapped by `GuidanceNetwork` (all three in `keras_binaural.models.guidance`)
  (LayerNorm of o and of the scene feature, concatenated with the profile, FC-ReLU-FC) to a
  G-dim vector added in every residual layer.
- "baseline": the same with the additional-baseline localizer (supp. Eq. 1-3): o is its gated
  visual feature f'_v, the map its per-cell gate.
- "none": audio-only; no visual encoders.

Design choices (ours, where the supplement is silent):
- **Level normalisation.** The denoiser works on m / s and d / s with
  s(t) = max(local peak |m|, `min_scale`) / `normalized_peak`, the local peak taken within
  ±0.3 s (`level_envelope`: about a training chunk's peak, in training and in generation
  alike); d̂ is scaled back by s(t). The mapping m -> d is linear in level (HRIR filtering), so
  this removes a nuisance variable. A single peak per generation window instead would hand the
  denoiser quiet passages far below the level it was trained on, and its leftover sampling
  noise would not follow the level (measured on a 300-step model: 1.5 dB lower SNR over 5 s
  windows than over 0.7 s ones). `normalized_peak` (2.5) puts the differential at a scale the noise
  schedule suits: d / peak |m| has a median RMS of about 0.18 on our synthetic chunks, so with
  peak 1 the signal would be buried under the noise at all but the smallest steps (x_t's
  signal-to-noise ratio reaches 1 at t ~ 20 of 200), and a short training run learned little
  about d (its one-step estimates of d were worse than 0); at 2.5 the RMS is about 0.45, near
  the 0.5 of common practice. The sampler clamps each step to ±`clip_value` (5) in these units,
  i.e. |d̂| <= 2 peak |m|: SPEC's clamp to [-1, 1] made relative to the clip's level (|d|
  exceeds peak |m| on 1.4 % of samples, 2 peak |m| rarely). Silence gives silence: for a
  silent mono |d̂| <= clip_value · min_scale / normalized_peak (2e-3, -54 dBFS), never NaN.
- **Training** (`train_step`): l_diff = MSE(ε_θ(x_t, t | m, g), ε) with t ~ U{0 .. T-1},
  ε ~ N(0, I), x_t = q_sample(d / s, t, ε); with a localizer, plus `lambda_loc` times the
  localizer's own loss (`LocalizationModel.compute_losses`: OSA's λ_sce l_sce_loc + λ_obj
  l_obj_loc, or the baseline's loss), so that the localizer the guidance comes from learns to
  localize. The guidance is end-to-end: l_diff also trains the localizer and the generation
  encoder through it. With `update_localizer=False` a trained localizer is held: neither its
  loss nor l_diff changes it. A training chunk has one frame (its centre), so its guidance is
  one vector.
- **Generation**: `sample_window` samples one stretch: the step-independent conditioning once
  (`WaveNetDenoiser.condition`, guidance upsampled linearly between frame centres inside the
  denoiser) and the whole sampler loop in one `tf.function`, each residual layer an XLA
  cluster (`compiled_denoise_fn`). Whole clips (`generate`) are `keras_binaural.generation`'s
  job: the guidance of every frame (frame k's mono patch centred on the frame), windows,
  cross-fades, threads and progress, eagerly and in the serving graph.

Paper symbols -> code names: m `mono`, d `diff`, s `scale`, g `guidance`, x_t `noisy`,
ε `noise`, ε_θ `self.denoiser`, t `step`, ᾱ_t `schedule.alpha_bars[t]` (see
`keras_binaural.diffusion` for the schedule's symbols).

Reference: SPEC section 5; supp. section 1 ("Object-Aware Upmix Model"); Leng et al.,
"BinauralGrad", NeurIPS 2022; Kong et al., "DiffWave", ICLR 2021.
"""

from __future__ import annotations

from typing import ClassVar

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_binaural import diffusion, generation
from keras_binaural.conventions import GUIDANCES, PRIOR_SAMPLERS, SAMPLERS, SAMPLES_PER_FRAME
from keras_binaural.models.base import LossTermsModel
from keras_binaural.models.denoiser import WaveNetDenoiser, compiled_denoise_fn
from keras_binaural.models.guidance import GuidanceNetwork, horizontal_profile, scene_layout
from keras_binaural.models.localization import LocalizationModel
from keras_binaural.models.localization_core import column_profile
from keras_binaural.models.localization_heads import FEATURE_SIZE
from keras_binaural.models.spatial_prior import (
    SpatialPrior,
    assignment_loss,
    column_features,
    istft,
    prior_loss,
    stft,
)
from keras_binaural.models.visual_encoders import make_visual_encoder

_LOCALIZER_OF_GUIDANCE = {"object": "osa", "baseline": "baseline"}
FEW_STEPS = 3  # network evaluations of the "few" sampler


# === Math ===


def level_envelope(mono, min_scale: float, normalized_peak: float = 1.0,
                   block_samples: int = SAMPLES_PER_FRAME, span_blocks: int = 7):
    """s(t) = max(local peak of |m|, min_scale) / normalized_peak: `[batch, time]` -> the same.

    The local peak is the largest |m| within ±(span_blocks // 2) blocks of `block_samples` (by
    default 0.1 s blocks, ±0.3 s: about one 0.63 s training chunk), interpolated linearly between
    block centres. On a training chunk it is close to the chunk's peak; over a long clip it
    follows the level the way a chunk's peak would there, so quiet and loud passages reach the
    denoiser at the level it was trained on.
    """
    mono = tf.convert_to_tensor(mono, tf.float32)
    batch, num_samples = tf.shape(mono)[0], tf.shape(mono)[1]
    num_blocks = (num_samples + block_samples - 1) // block_samples
    padded = tf.pad(tf.abs(mono), [[0, 0], [0, num_blocks * block_samples - num_samples]])
    peaks = tf.reduce_max(tf.reshape(padded, [batch, num_blocks, block_samples]), axis=-1)
    peaks = tf.nn.max_pool1d(peaks[..., None], span_blocks, 1, "SAME")[..., 0]
    position = (tf.range(num_samples, dtype=tf.float32) + 0.5) / block_samples - 0.5
    position = tf.clip_by_value(position, 0.0, tf.cast(num_blocks - 1, tf.float32))
    low = tf.cast(tf.floor(position), tf.int32)
    high = tf.minimum(low + 1, num_blocks - 1)
    weight = position - tf.cast(low, tf.float32)
    local = (tf.gather(peaks, low, axis=1) * (1.0 - weight)
             + tf.gather(peaks, high, axis=1) * weight)
    return tf.maximum(local, min_scale) / normalized_peak


# === Model ===


@keras.saving.register_keras_serializable(package="keras_binaural")
class Upmixer(LossTermsModel):
    """Object-aware diffusion upmixer: mono + frames -> binaural by Eq. 3 (SPEC section 5).

    Holds the WaveNet denoiser ε_θ and, unless `guidance="none"`, a localizer
    (`LocalizationModel`, OSA or the additional baseline), the generation model's own ResNet-18
    (separate from the localizer's) and the `GuidanceNetwork`. See the module docstring for the
    guidance, the level normalisation, training and generation.

    Args:
      guidance: "object" (OSA localizer), "baseline" (additional-baseline localizer) or "none"
        (audio-only).
      residual_channels: C of the denoiser (paper size 64-128; small for CPU).
      num_cycles, layers_per_cycle: the denoiser's dilation cycles (3 x 10 layers).
      conditioner_channels, conditioner_layers: the denoiser's mono pre-net.
      step_hidden_channels: width of the denoiser's step-embedding FC layers (512).
      guidance_channels: G, the size of a guidance vector.
      guidance_hidden_channels: hidden width of the `GuidanceNetwork`.
      profile_bins: columns of the localization map's horizontal profile.
      scene_columns: columns of the generation encoder's scene feature (1: GlobalAvgPool, as
        SPEC; more keep the scene's left-to-right layout, see the module docstring).
      num_train_steps, beta_start, beta_end: the training schedule (T = 200, β linear
        1e-4 -> 0.02).
      inference_betas: the fast sampler's β (BinauralGrad's 6 steps).
      min_scale: floor of the mono's peak in the level normalisation (see the module
        docstring).
      normalized_peak: peak of the normalised mono m / s.
      clip_value: the sampler's clamp (and l_cyc's) in normalised units.
      lambda_loc: weight of the localizer's own loss in training (0: the localizer learns only
        through the guidance).
      localizer_config: keyword arguments of the `LocalizationModel`, its loss weights included
        (e.g. `{"temperature": 0.07, "audio_width_multiplier": 0.125, "lambda_sce": 1.0}`); its
        `localizer` is set by `guidance` (and, for a subclass, `FIXED_LOCALIZER_ARGUMENTS`).
      localizer_gradients: whether the generation losses (l_diff, l_prior) train the localizer
        through its map and features (True, as the paper trains them together); False: the
        localizer learns from its own losses only and the upmixer reads what it finds (the
        demo's choice, its localizer trained alone first; no difference measured at 200 steps).
      spatial_prior: condition the denoiser on a first estimate of the differential from the
        mono and the image columns (`spatial_prior.SpatialPrior`; needs a localizer).
      prior_columns, prior_embedding_size, prior_channels: its K, E and audio CNN width.
      prior_audio_dtype: its audio CNN's dtype policy (`SpatialPrior`'s `audio_dtype`: None,
        a policy name, or "auto": bfloat16 where the CPU has it in hardware).
      lambda_prior: weight of its loss `spatial_prior.prior_loss`.
      lambda_assignment: weight of `spatial_prior.assignment_loss`, the prior's per-bin
        assignment against the binaural responsibilities (0: not computed).
      update_responses: whether training adds its batches to the prior's column responses
        (`spatial_prior.ColumnResponses.update`); False keeps them as they are, e.g. as learnt
        on single-source clips and loaded with `training.load_responses`, while the assignment
        learns to split the bins of several sources.
      update_localizer: whether training changes the localizer (True, as the paper trains it
        with the upmixer); False holds its weights and BatchNorm statistics as they are (e.g. a
        localizer that points, loaded with `training.load_localizer`: the upmixer's steps then
        cannot move its map's peak) and leaves its losses out of training, which also makes a
        step cheaper. Its map and features still guide the upmixer.
      refine_steps: reverse steps of the "refine" sampler (the fast schedule's cleanest levels).
      seed: seed of the training noise (t and ε), or None.
      **kwargs: `keras.Model` arguments.

    Call arguments:
      inputs: dict with `noisy` `[batch, time, 1]` x_t in normalised units (d / s noised),
        `step` `[batch]` float diffusion step in [0, T - 1], `mono` `[batch, time]` float32 at
        16 kHz; for guided models also `frame` `[batch, H, W, 3]` float32 in [0, 1] (static
        H, W) and `mono_patch` `[batch, 96, 64]` (the log-mel patch centred on the frame).
      training: BatchNorm mode of the visual and audio encoders.

    Returns:
      `[batch, time, 1]` the noise estimate ε̂.

    Example:
    >>> model = Upmixer(guidance="object", residual_channels=32)
    >>> model.compile(optimizer=keras.optimizers.Adam(2e-4))
    >>> clips = fairplay.list_clips(root, "train")  # doctest: +SKIP
    >>> model.fit(fairplay.training_dataset(clips, resize_hw=(136, 136), crop_hw=(128, 128))
    ...           .batch(8), steps_per_epoch=100, epochs=5)  # doctest: +SKIP
    >>> binaural = model.generate(mono, frames, sampler="fast", seed=0)  # doctest: +SKIP

    Reference: SPEC section 5; supp. section 1; BinauralGrad (denoiser, fast schedule).
    """

    # `LocalizationModel` arguments the model decides for its localizer (CLUP: the SSM head).
    FIXED_LOCALIZER_ARGUMENTS: ClassVar[dict] = {}

    def __init__(
        self,
        guidance: str = "object",
        residual_channels: int = 32,
        num_cycles: int = 3,
        layers_per_cycle: int = 10,
        conditioner_channels: int = 32,
        conditioner_layers: int = 2,
        step_hidden_channels: int = 512,
        guidance_channels: int = 64,
        guidance_hidden_channels: int = 256,
        profile_bins: int = 16,
        scene_columns: int = 1,
        num_train_steps: int = 200,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        inference_betas: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5),
        min_scale: float = 1e-3,
        normalized_peak: float = 2.5,
        clip_value: float = 5.0,
        lambda_loc: float = 1.0,
        localizer_config: dict | None = None,
        localizer_gradients: bool = True,
        spatial_prior: bool = False,
        prior_columns: int = 16,
        prior_embedding_size: int = 32,
        prior_channels: int = 32,
        prior_audio_dtype: str | None = None,
        lambda_prior: float = 1.0,
        lambda_assignment: float = 0.0,
        update_responses: bool = True,
        update_localizer: bool = True,
        refine_steps: int = 3,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if guidance not in GUIDANCES:
            raise ValueError(f"guidance must be one of {GUIDANCES}; got {guidance!r}.")
        if spatial_prior and guidance == "none":
            raise ValueError("spatial_prior needs a localizer: it assigns the mono's time-"
                             "frequency bins to image columns (guidance 'object' or 'baseline').")
        if min_scale <= 0 or normalized_peak <= 0 or clip_value <= 0:
            raise ValueError(
                "min_scale, normalized_peak and clip_value must be positive; got "
                f"{min_scale}, {normalized_peak} and {clip_value}."
            )
        if profile_bins < 1 or scene_columns < 1:
            raise ValueError(
                f"profile_bins and scene_columns must be >= 1; got {profile_bins} and "
                f"{scene_columns}."
            )
        localizer_config = dict(localizer_config or {})
        for key in sorted(set(localizer_config) & {"localizer", *self.FIXED_LOCALIZER_ARGUMENTS}):
            why = "`guidance` chooses it" if key == "localizer" else (
                f"{type(self).__name__} sets it to {self.FIXED_LOCALIZER_ARGUMENTS[key]!r}")
            raise ValueError(f"localizer_config must not set {key!r}: {why}.")
        # === Config ===
        self.guidance = guidance
        self.residual_channels = residual_channels
        self.num_cycles = num_cycles
        self.layers_per_cycle = layers_per_cycle
        self.conditioner_channels = conditioner_channels
        self.conditioner_layers = conditioner_layers
        self.step_hidden_channels = step_hidden_channels
        self.guidance_channels = guidance_channels
        self.guidance_hidden_channels = guidance_hidden_channels
        self.profile_bins = profile_bins
        self.scene_columns = scene_columns
        self.num_train_steps = num_train_steps
        self.beta_start = beta_start
        self.beta_end = beta_end
        self.inference_betas = tuple(float(b) for b in inference_betas)
        self.min_scale = min_scale
        self.normalized_peak = normalized_peak
        self.clip_value = clip_value
        self.lambda_loc = lambda_loc
        self.localizer_config = localizer_config
        self.localizer_gradients = localizer_gradients
        self.spatial_prior = spatial_prior
        self.prior_columns = prior_columns
        self.prior_embedding_size = prior_embedding_size
        self.prior_channels = prior_channels
        self.prior_audio_dtype = prior_audio_dtype
        self.lambda_prior = lambda_prior
        self.lambda_assignment = lambda_assignment
        self.update_responses = update_responses
        self.update_localizer = update_localizer
        self.refine_steps = refine_steps
        self.seed = seed
        self.training_schedule = diffusion.linear_schedule(num_train_steps, beta_start, beta_end)
        self.inference_schedule = diffusion.fast_schedule(self.inference_betas)

        # === Layers ===
        dtype = self.dtype_policy
        guided = guidance != "none"
        self.denoiser = WaveNetDenoiser(
            residual_channels=residual_channels,
            num_cycles=num_cycles,
            layers_per_cycle=layers_per_cycle,
            conditioner_channels=conditioner_channels,
            conditioner_layers=conditioner_layers,
            step_hidden_channels=step_hidden_channels,
            conditioner_inputs=2 if spatial_prior else 1,
            guidance_channels=guidance_channels if guided else 0,
            guidance_hop_samples=SAMPLES_PER_FRAME,
            name="denoiser",
            dtype=dtype,
        )
        self.localizer = self.visual_encoder = self.guidance_network = self.prior = None
        if spatial_prior:
            self.prior = SpatialPrior(prior_columns, prior_embedding_size, prior_channels,
                                      prior_audio_dtype, name="spatial_prior", dtype=dtype)
        if guided:
            self.localizer = LocalizationModel(
                localizer=_LOCALIZER_OF_GUIDANCE[guidance],
                **self.FIXED_LOCALIZER_ARGUMENTS,
                **localizer_config,
                name="localizer",
                dtype=dtype,
            )
            # Only ever set to False (BatchNorm then runs in inference mode too): setting True
            # would unfreeze an audio encoder built frozen (`audio_encoder_trainable=False`).
            if not update_localizer:
                self.localizer.trainable = False
            # The generation encoder is of the localizer's kind (ResNet-18 or the compact CNN),
            # with weights of its own.
            self.visual_encoder = make_visual_encoder(
                self.localizer.visual_encoder_name, self.localizer.visual_width,
                self.localizer.visual_stride, layer_name="generation_visual_encoder", dtype=dtype)
            self.guidance_network = GuidanceNetwork(
                guidance_channels, guidance_hidden_channels, name="guidance_network", dtype=dtype
            )
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")

        # === Metrics ===
        self.track_losses(self._term_names())

        self._denoise_functions = {}
        self.build(None)

    @property
    def guidance_width(self) -> int:
        """Size of one frame's guidance as `frame_guidance` returns it: G, plus K x E for the
        spatial prior's column embeddings."""
        width = self.guidance_channels if self.guidance != "none" else 0
        return width + (self.prior.width if self.prior else 0)

    def _term_names(self) -> list[str]:
        names = ["diff_loss"] + (["prior_loss"] if self.prior is not None else [])
        if self.prior is not None and self.lambda_assignment:
            names.append("assignment_loss")
        if self.trains_localizer:
            names += list(self.localizer.term_trackers)
        return names

    @property
    def trains_localizer(self) -> bool:
        """Whether training computes the localizer's own losses (it has one, not held)."""
        return self.localizer is not None and self.update_localizer

    def build(self, input_shape=None):
        if self.built:  # built at construction: every size is known from the config
            return
        self.denoiser.build()
        if self.guidance_network is not None:
            self.guidance_network.build(
                {
                    "object_feature": (None, FEATURE_SIZE),
                    "profile": (None, self.profile_bins),
                    "scene_feature": (None, self.scene_columns * FEATURE_SIZE),
                }
            )
        if self.prior is not None:
            self.prior.build(column_feature_size=2 * FEATURE_SIZE)
        self.built = True

    # --- Guidance ---

    def frame_guidance(self, frames, mono_patch, training=False, visual=None,
                       return_map: bool = False):
        """The guidance vector of each (frame, mono patch) pair, `[batch, G]` (None: no guidance).

        Args:
          frames: `[batch, H, W, 3]` float32 RGB in [0, 1] (static H, W).
          mono_patch: `[batch, 96, 64]` log-mel patch of the mono centred on the frame.
          training: BatchNorm mode.
          visual: optional `[batch, h, w, 512]` the localizer's map of `frames`, if already
            computed.
          return_map: also return the localization map the guidance was made from.

        Returns:
          `[batch, G]`, or (`[batch, G]`, map `[batch, H, W]`) with `return_map`.
        """
        if self.guidance == "none":
            return None
        if visual is None:
            visual = self.localizer.encode_frames(frames, training=training)
        outputs = self.localizer.frame_outputs(frames, mono_patch, training, visual)
        if not self.localizer_gradients:
            visual = tf.stop_gradient(visual)
            outputs = {key: tf.stop_gradient(value) for key, value in outputs.items()}
        scene = scene_layout(self.visual_encoder(frames, training=training), self.scene_columns)
        guidance = self.guidance_network(
            {
                "object_feature": outputs["object_feature"],
                "profile": horizontal_profile(outputs["map"], self.profile_bins),
                "scene_feature": scene,
            }
        )
        if self.prior is not None:  # and what each image column shows, for the spatial prior
            columns = self.prior.embed_columns(
                column_features(visual, outputs["attention"], self.prior_columns),
                column_profile(outputs["attention"], self.prior_columns))
            guidance = ops.concatenate([guidance, ops.cast(columns, guidance.dtype)], axis=-1)
        return (guidance, outputs["map"]) if return_map else guidance

    def conditioning_inputs(self, mono, guidance):
        """What the denoiser is conditioned on, from the level-normalised mono and the guidance.

        Args:
          mono: `[batch, time]` m / s.
          guidance: None, `[batch, W]` or `[batch, frames, W]` (`frame_guidance`, W =
            `guidance_width`).

        Returns:
          (the denoiser's audio-rate input: m / s, or `[batch, time, 2]` (m / s, d_prior / s)
           with the spatial prior; the denoiser's guidance `[..., G]` or None; the prior's
           (D^, M) spectra and assignment p, or None).
        """
        if self.prior is None:
            return mono, guidance, None
        guidance = ops.convert_to_tensor(guidance)
        columns = guidance[..., self.guidance_channels:]
        estimate, spectrum, share = self.prior.estimate(mono, columns)
        prior = istft(estimate, tf.shape(mono)[1])
        return (tf.stack([tf.cast(mono, tf.float32), prior], axis=-1),
                guidance[..., : self.guidance_channels], (estimate, spectrum, share))

    @property
    def refine_steps(self) -> int:
        """Reverse steps of the "refine" sampler; setting it drops the generation functions
        traced with the old number."""
        return self._refine_steps

    @refine_steps.setter
    def refine_steps(self, steps: int) -> None:
        if not 1 <= int(steps) <= len(self.inference_betas):
            raise ValueError(f"refine_steps must be in 1 .. {len(self.inference_betas)} (the fast "
                             f"schedule's steps); got {steps}.")
        self._refine_steps = int(steps)
        self._generation_functions = {}  # traced by keras_binaural.generation

    # --- Forward ---

    def level_scale(self, mono):
        """The level normalisation s(t), `[batch, time]` -> `[batch, time]` (`level_envelope`)."""
        return level_envelope(mono, self.min_scale, self.normalized_peak)

    def call(self, inputs, training=False):
        mono = ops.convert_to_tensor(inputs["mono"])
        scale = self.level_scale(mono)
        guidance = None
        if self.guidance != "none":
            guidance = self.frame_guidance(inputs["frame"], inputs["mono_patch"], training)
        conditioner, guidance, _ = self.conditioning_inputs(mono / scale, guidance)
        return self.denoiser(
            {
                "noisy": inputs["noisy"],
                "step": inputs["step"],
                "mono": conditioner,
                "guidance": guidance,
            }
        )

    # --- Training ---

    def diffusion_terms(self, data, training=False, visual=None) -> dict:
        """l_diff of a batch and what the cyclic loss needs.

        Args:
          data: dict with `mono` and `diff` `[batch, time]`; guided models also `frame` and
            `mono_patch` (the dicts of `fairplay.training_dataset(...).batch(B)`).
          visual: optional precomputed localizer map of `data["frame"]`.

        Returns:
          dict: `diff_loss` (scalar), `noisy` x_t and `noise_estimate` ε̂ `[batch, time]`
          (normalised units), `step` `[batch]` int32, `scale` `[batch, time]` s(t); with the
          spatial prior also `prior_loss` (scalar, `spatial_prior.prior_loss`) and, with
          `lambda_assignment`, `assignment_loss` (`spatial_prior.assignment_loss`).
        """
        for key in ("mono", "diff"):
            if key not in data:
                raise ValueError(
                    f"{type(self).__name__} training data needs the key {key!r} (the dicts of "
                    f"keras_binaural.data.fairplay.training_dataset); got keys {sorted(data)}."
                )
        mono = tf.convert_to_tensor(data["mono"], tf.float32)
        diff = tf.convert_to_tensor(data["diff"], tf.float32)
        scale = self.level_scale(mono)
        batch = tf.shape(mono)[0]
        step = keras.random.randint((batch,), 0, self.num_train_steps, seed=self.seed_generator)
        noise = keras.random.normal(tf.shape(diff), seed=self.seed_generator)
        noisy = diffusion.q_sample(diff / scale, step, noise, self.training_schedule)
        guidance = None
        if self.guidance != "none":
            guidance = self.frame_guidance(data["frame"], data["mono_patch"], training, visual)
        conditioner, guidance, prior = self.conditioning_inputs(mono / scale, guidance)
        estimate = self.denoiser(
            {
                "noisy": noisy[..., None],
                "step": tf.cast(step, tf.float32),
                "mono": conditioner,
                "guidance": guidance,
            }
        )
        estimate = tf.cast(estimate[..., 0], tf.float32)
        terms = {}
        if prior is not None:
            estimate_spectrum, spectrum, share = prior
            diff_spectrum = stft(diff / scale)
            terms["prior_loss"] = prior_loss(estimate_spectrum, spectrum, diff_spectrum)
            if self.lambda_assignment:
                target = self.prior.responses.responsibilities(spectrum, diff_spectrum)
                terms["assignment_loss"] = assignment_loss(share, target, spectrum)
            if training and self.update_responses:
                self.prior.responses.update(share, spectrum, diff_spectrum)
        return {
            **terms,
            "diff_loss": tf.reduce_mean(tf.square(estimate - noise)),
            "noisy": noisy,
            "noise_estimate": estimate,
            "step": step,
            "scale": scale,
        }

    def generation_losses(self, terms: dict) -> tuple[dict, tf.Tensor]:
        """(the terms, l_diff + lambda_prior l_prior + lambda_assignment l_assignment) of
        `diffusion_terms`."""
        weights = {"diff_loss": 1.0, "prior_loss": self.lambda_prior,
                   "assignment_loss": self.lambda_assignment}
        results = {name: terms[name] for name in weights if name in terms}
        loss = sum(weights[name] * value for name, value in results.items())
        return results, loss

    def compute_losses(self, data, training=False) -> dict:
        """The training loss of a batch and its terms (scalars).

        loss = l_diff (+ lambda_prior l_prior) + lambda_loc * (the localizer's loss, if it trains:
        `trains_localizer`).
        """
        results, loss = self.generation_losses(self.diffusion_terms(data, training))
        if self.trains_localizer:
            localization = self.localizer.compute_losses(data, training=training)
            for name in self.localizer.term_trackers:
                results[name] = localization[name]
            loss = loss + self.lambda_loc * localization["loss"]
        results["loss"] = loss
        return results

    # --- Generation ---

    def check_sampler(self, sampler: str) -> None:
        """Raises ValueError unless this model can sample with `sampler` (`SAMPLERS`)."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}; got {sampler!r}.")
        if sampler in PRIOR_SAMPLERS and self.prior is None:
            raise ValueError(f"sampler {sampler!r} starts from the spatial prior: this model has "
                             "none (spatial_prior=False); use 'fast', 'few' or 'full'.")

    def sampler_schedule(self, sampler: str) -> tuple[diffusion.NoiseSchedule, tf.Tensor]:
        """The schedule `sampler` runs and the (fractional) training step of each of its steps.

        "full": the training schedule, steps 0 ... T-1; "fast": `inference_betas`; "few": their
        `FEW_STEPS` (3) noisiest levels, so the last step's x̂_0 is taken at the 6-step
        schedule's fourth level, ᾱ = 0.94 (measured against every other level and the other
        3-of-6 choices in BENCHMARKS.md); "refine": their `refine_steps` cleanest levels (run
        from the prior's estimate, not from noise).
        """
        training = self.training_schedule
        if sampler == "full":
            return training, tf.range(training.num_steps, dtype=tf.float32)
        schedule = self.inference_schedule
        size = schedule.num_steps
        if sampler == "few":
            schedule = diffusion.respace(schedule, range(max(size - FEW_STEPS, 0), size))
        elif sampler == "refine":
            schedule = diffusion.respace(schedule, range(self.refine_steps))
        return schedule, diffusion.fractional_steps(schedule, training)

    def sample_window(self, mono, guidance=None, seed=0, sampler: str = "fast",
                      jit_compile: bool = True):
        """d̂ of one stretch of audio by DDPM sampling; traceable in any `tf.function`.

        The level normalisation, the step-independent conditioning (once) and the whole sampler
        loop; `generate` calls it per window, the serving export inside its signature.

        Args:
          mono: `[batch, time]` float32 mono at 16 kHz.
          guidance: None (audio-only), `[batch, G]` or `[batch, frames, G]` (one per 0.1 s).
          seed: int32 scalar; the same seed gives the same d̂.
          sampler: one of `conventions.SAMPLERS` (`sampler_schedule`); with the spatial prior
            also "prior" (d_prior itself, no diffusion) and "refine" (d_prior refined by
            `refine_steps` reverse steps, `diffusion.sample_from_estimate`).
          jit_compile: XLA for each residual layer.

        Returns:
          `[batch, time]` float32 d̂.
        """
        self.check_sampler(sampler)
        if jit_compile not in self._denoise_functions:
            self._denoise_functions[jit_compile] = compiled_denoise_fn(
                self.denoiser, jit_compile=jit_compile
            )
        denoise = self._denoise_functions[jit_compile]
        mono = tf.cast(mono, tf.float32)
        scale = self.level_scale(mono)
        conditioner, guidance, _ = self.conditioning_inputs(mono / scale, guidance)
        if sampler == "prior":
            return conditioner[..., 1] * scale
        conditioning = self.denoiser.condition(conditioner, guidance)

        def eps_fn(x, step):
            return denoise(x, step, conditioning)

        schedule, steps = self.sampler_schedule(sampler)
        clip_range = (-self.clip_value, self.clip_value)
        if sampler == "refine":
            diff = diffusion.sample_from_estimate(eps_fn, schedule, steps, conditioner[..., 1:],
                                                  seed=seed, clip_range=clip_range)
        else:
            shape = tf.stack([tf.shape(mono)[0], tf.shape(mono)[1], 1])
            diff = diffusion.sample(eps_fn, schedule, steps, shape=shape, seed=seed,
                                    clip_range=clip_range)
        return diff[..., 0] * scale

    def generate(
        self,
        mono,
        frames=None,
        sampler: str = "fast",
        seed: int = 0,
        window_seconds: float = generation.WINDOW_SECONDS,
        overlap_seconds: float = generation.OVERLAP_SECONDS,
        progress: bool | None = None,
        jit_compile: bool = True,
        frame_batch_size: int = generation.FRAME_BATCH_SIZE,
        parallel_windows: int = generation.PARALLEL_WINDOWS,
    ) -> np.ndarray:
        """Binaural audio for whole clips of any length: L = m + d̂, R = m - d̂ (Eq. 3).

        `keras_binaural.generation.generate` with this model (its Args).

        Args:
          mono: `[batch, time]` float32 mono at 16 kHz in [-1, 1] (numpy or tensor).
          frames: `[batch, num_frames, H, W, 3]` RGB in [0, 1] at 10 fps covering the clip,
            or `[batch, H, W, 3]` one frame for the whole clip; None for `guidance="none"`.
          sampler: one of `conventions.SAMPLERS` (`sampler_schedule`).
          seed: int; the same seed gives the same audio.

        Returns:
          `[batch, time, 2]` float32 binaural audio (left, right); (L + R) / 2 equals the mono.

        Raises:
          keras_binaural.generation.GenerationInputError: bad input.
        """
        return generation.generate(
            self, mono, frames, sampler=sampler, seed=seed, window_seconds=window_seconds,
            overlap_seconds=overlap_seconds, progress=progress, jit_compile=jit_compile,
            frame_batch_size=frame_batch_size, parallel_windows=parallel_windows)

    def get_config(self):
        return {
            **super().get_config(),
            "guidance": self.guidance,
            "residual_channels": self.residual_channels,
            "num_cycles": self.num_cycles,
            "layers_per_cycle": self.layers_per_cycle,
            "conditioner_channels": self.conditioner_channels,
            "conditioner_layers": self.conditioner_layers,
            "step_hidden_channels": self.step_hidden_channels,
            "guidance_channels": self.guidance_channels,
            "guidance_hidden_channels": self.guidance_hidden_channels,
            "profile_bins": self.profile_bins,
            "scene_columns": self.scene_columns,
            "num_train_steps": self.num_train_steps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "inference_betas": list(self.inference_betas),
            "min_scale": self.min_scale,
            "normalized_peak": self.normalized_peak,
            "clip_value": self.clip_value,
            "lambda_loc": self.lambda_loc,
            "localizer_config": dict(self.localizer_config),
            "localizer_gradients": self.localizer_gradients,
            "spatial_prior": self.spatial_prior,
            "prior_columns": self.prior_columns,
            "prior_embedding_size": self.prior_embedding_size,
            "prior_channels": self.prior_channels,
            "prior_audio_dtype": self.prior_audio_dtype,
            "lambda_prior": self.lambda_prior,
            "lambda_assignment": self.lambda_assignment,
            "update_responses": self.update_responses,
            "update_localizer": self.update_localizer,
            "refine_steps": self.refine_steps,
            "seed": self.seed,
        }
