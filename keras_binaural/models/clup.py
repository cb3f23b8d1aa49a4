"""CLUP: the localizer (OSA + SSM) and the object-aware upmixer trained as one model (SPEC section 5).

Cyclic learning, our reading of the paper: one `keras.Model` holds the localization model
(`LocalizationModel(localizer="osa", use_ssm=True)`) and the diffusion upmixer guided by it
(`Upmixer(guidance="object")`, which it extends), trained with

    loss = l_diff + λ_sce l_sce_loc + λ_obj l_obj_loc + λ_ssm l_ssm + λ_cyc l_cyc

- l_diff: the upmixer's ε-prediction MSE (`Upmixer.diffusion_terms`).
- l_sce_loc, l_obj_loc: OSA's scene and object pair losses; l_ssm: the SSM loss on the *real*
  binaural chunk (`LocalizationModel.compute_losses`, which also uses in-batch negatives). λ_ssm
  is ours (SPEC's formula has no separate SSM term): the SSM head must learn what a correctly
  spatialised clip sounds like from real binaural audio before it can judge generated audio;
  λ_ssm = 0 gives SPEC's four terms literally.
- l_cyc: the SSM loss on the binaural audio the upmixer generates from its one-step estimate of
  d at the sampled noise level: d̂_0 = (x_t - √(1 - ᾱ_t) ε̂) / √ᾱ_t (clamped as the sampler
  clamps, to ±`clip_value` in the normalised units, times the chunk's level s), L̂ = m + d̂_0, R̂ = m - d̂_0 put in the chunk's
  place inside its 0.96 s `binaural_context`, log-mel patches computed differentiably
  (`frontend.log_mel_spectrogram`), scored by the SSM head against the negative frame and the
  channel swap (`SSMHead.loss`). Each example is weighted by ᾱ_t (our choice): at high
  noise d̂_0 is mostly a guess whose gradient, scaled by √(1 - ᾱ_t) / √ᾱ_t, would dominate.
  The gradient reaches both sides: the denoiser (through ε̂) and the localizer (SSM head,
  audio and visual encoders), so generation feeds back into localization.

Every λ is a constructor argument: λ_cyc CLUP's, λ_sce, λ_obj and λ_ssm its localizer's (in
`localizer_config`, as for `LocalizationModel`); λ = 0 gives the ablations (λ_cyc = 0: the
OSA-guided upmixer trained jointly with OSA and SSM). All λ terms are reported as metrics even
when their weight is 0.

Reference: SPEC sections 4-5; supp. section 1 (OSA, SSM, unified training of the upmix model).
"""

from __future__ import annotations

from typing import ClassVar

import keras
import tensorflow as tf

from keras_binaural import diffusion
from keras_binaural.audio import frontend
from keras_binaural.models.upmixer import Upmixer
from keras_binaural.models.vggish import EMBEDDING_SIZE, NUM_BANDS, NUM_FRAMES

_LOCALIZER_LAMBDAS = ("lambda_sce", "lambda_obj", "lambda_ssm")  # in localizer_config
_REQUIRED_KEYS = (
    "mono",
    "diff",
    "frame",
    "negative_frame",
    "mono_patch",
    "binaural_patch",
    "binaural_context",
)


@keras.saving.register_keras_serializable(package="keras_binaural")
class CLUP(Upmixer):
    """Unified cyclic model: OSA + SSM localizer and the object-aware diffusion upmixer.

    Args:
      lambda_cyc: weight of the cyclic loss l_cyc.
      **kwargs: the `Upmixer` arguments (denoiser size, guidance size, schedule, `min_scale`,
        `localizer_config`, `seed`, ...) except `guidance` (always "object") and `lambda_loc`
        (1: the localizer's terms carry their own λ), and `keras.Model` arguments. The
        localization λs are the localizer's arguments, in `localizer_config`: `lambda_sce`
        (OSA's scene loss l_sce_loc), `lambda_obj` (its object loss l_obj_loc) and `lambda_ssm`
        (the SSM loss on real binaural audio, see the module docstring); its `use_ssm` is
        always True (l_cyc is an SSM loss).

    Call arguments and generation: as `Upmixer` (`call` returns ε̂; `generate(mono, frames,
    sampler="fast", seed=0)` returns binaural `[batch, time, 2]` for whole clips of any length).

    Training data: the dicts of `fairplay.training_dataset(...).batch(B)`: `mono`, `diff`
    `[B, 10080]`, `frame`, `negative_frame` `[B, H, W, 3]`, `mono_patch` `[B, 96, 64]`,
    `binaural_patch` `[B, 2, 96, 64]`, `binaural_context` `[B, 15600, 2]` (the chunk at
    `frontend.context_offset(10080)`), `clip_id` `[B]` (in-batch negatives; optional).

    Reported metrics: `loss`, `diff_loss`, `cyc_loss`, the spatial prior's terms and the
    localizer's (`sce_loss`, `obj_loss`, `ssm_loss`, the pointing terms; not with
    `update_localizer=False`, which holds the localizer).

    Example:
    >>> model = CLUP(residual_channels=32, lambda_cyc=0.1,
    ...              localizer_config={"lambda_sce": 1.0, "lambda_obj": 1.0})
    >>> model.compile(optimizer=keras.optimizers.Adam(2e-4))
    >>> model.fit(fairplay.training_dataset(clips, resize_hw=(136, 136), crop_hw=(128, 128))
    ...           .batch(8), steps_per_epoch=100, epochs=5)  # doctest: +SKIP
    >>> binaural = model.generate(mono, frames, seed=0)  # [batch, time, 2]  # doctest: +SKIP
    >>> maps = model.localizer.localize(frames[:, 0], mono_patches)  # doctest: +SKIP

    Reference: SPEC section 5 ("Unified (cyclic) training"); supp. section 1.
    """

    FIXED_LOCALIZER_ARGUMENTS: ClassVar[dict] = {"use_ssm": True}  # l_cyc is an SSM loss

    def __init__(self, lambda_cyc: float = 1.0, **kwargs):
        for key in ("guidance", "lambda_loc"):
            if key in kwargs:
                raise ValueError(
                    f"CLUP does not take {key!r}: its guidance is the OSA localizer's and each "
                    "localization term has its own λ."
                )
        for key in _LOCALIZER_LAMBDAS:
            if key in kwargs:
                raise ValueError(
                    f"CLUP takes {key!r} in localizer_config (it weights a localizer's term), "
                    f"e.g. localizer_config={{{key!r}: {kwargs[key]!r}}}."
                )
        super().__init__(guidance="object", lambda_loc=1.0, **kwargs)
        # === Config ===
        self.lambda_cyc = lambda_cyc

    @classmethod
    def from_config(cls, config):
        # .keras files saved before the localization λs moved into localizer_config had them
        # as CLUP arguments: they are read where they live now.
        config = dict(config)
        moved = {key: config.pop(key) for key in _LOCALIZER_LAMBDAS if key in config}
        if moved:
            config["localizer_config"] = {**(config.get("localizer_config") or {}), **moved}
        return super().from_config(config)

    def _term_names(self) -> list[str]:
        return super()._term_names() + ["cyc_loss"]

    # --- Training ---

    def cycle_loss(self, data, terms: dict, visual, negative_visual, training=False):
        """l_cyc: the SSM loss of the binaural audio from the one-step estimate d̂_0 (scalar).

        Args:
          data: the batch (uses `mono`, `binaural_context`).
          terms: `diffusion_terms(...)` of the batch (x_t, ε̂, t, s).
          visual, negative_visual: `[batch, h, w, 512]` the localizer's maps of the frame and of
            the negative frame.
        """
        alpha_bar = tf.cast(tf.gather(self.training_schedule.alpha_bars, terms["step"]), tf.float32)
        estimate = diffusion.predict_x0(terms["noisy"], terms["noise_estimate"], alpha_bar)
        diff = tf.clip_by_value(estimate, -self.clip_value, self.clip_value) * terms["scale"]
        mono = tf.convert_to_tensor(data["mono"], tf.float32)
        chunk = mono.shape[1] if mono.shape[1] is not None else tf.shape(mono)[1]
        offset = frontend.context_offset(chunk)
        context = tf.convert_to_tensor(data["binaural_context"], tf.float32)
        generated = tf.stack([mono + diff, mono - diff], axis=-1)  # Eq. 3
        context = tf.concat([context[:, :offset], generated, context[:, offset + chunk :]], axis=1)
        context = tf.ensure_shape(context, [None, frontend.PATCH_SAMPLES, 2])
        patches = frontend.log_mel_spectrogram(tf.transpose(context, [0, 2, 1]))  # [B, 2, 96, 64]
        embeddings = self.localizer.encode_audio(
            tf.reshape(patches, [-1, NUM_FRAMES, NUM_BANDS]), training=training
        )
        binaural_embedding = tf.reshape(embeddings, [-1, 2 * EMBEDDING_SIZE])
        return self.localizer.ssm_head.loss(
            binaural_embedding, visual, negative_visual, weights=alpha_bar
        )

    def compute_losses(self, data, training=False) -> dict:
        """loss = l_diff + (λ_sce l_sce + λ_obj l_obj + λ_ssm l_ssm) + λ_cyc l_cyc, and terms."""
        for key in _REQUIRED_KEYS:
            if key not in data:
                raise ValueError(
                    f"CLUP training data needs the key {key!r} (the dicts of "
                    f"keras_binaural.data.fairplay.training_dataset); got keys {sorted(data)}."
                )
        frames, negative_frames = data["frame"], data["negative_frame"]
        batch = tf.shape(frames)[0]
        # One pass over both frames for the guidance and l_cyc (the localizer's own losses
        # encode them again inside `compute_losses`).
        both = self.localizer.encode_frames(tf.concat([frames, negative_frames], 0), training)
        visual, negative_visual = both[:batch], both[batch:]
        terms = self.diffusion_terms(data, training, visual=visual)
        cycle = self.cycle_loss(data, terms, visual, negative_visual, training)
        results, loss = self.generation_losses(terms)
        results["cyc_loss"] = cycle
        if self.trains_localizer:  # held (update_localizer=False): l_cyc trains the denoiser
            localization = self.localizer.compute_losses(data, training=training)
            for name in self.localizer.term_trackers:
                results[name] = localization[name]
            loss = loss + localization["loss"]
        results["loss"] = loss + self.lambda_cyc * cycle
        return results

    def get_config(self):
        config = super().get_config()
        for key in ("guidance", "lambda_loc"):
            config.pop(key)
        return {**config, "lambda_cyc": self.lambda_cyc}
