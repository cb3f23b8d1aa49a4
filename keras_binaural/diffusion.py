"""Noise schedules, forward noising and DDPM samplers for the diffusion upmixer (SPEC section 5).

The upmixer generates the differential d = (L - R) / 2 by denoising diffusion with ε-prediction
(DDPM), trained with T = 200 steps and sampled either with the full schedule or with
BinauralGrad's fast 6-step schedule, whose steps are mapped to *fractional* training steps by
matching √ᾱ (the fast-sampling trick of DiffWave). Fewer network evaluations: `respace` keeps
some of a schedule's noise levels (3 of the 6), `sample`'s `eta` < 1 is DDIM, and
`sample_from_estimate` starts the reverse process from a first estimate of x_0 noised to a low
level instead of from noise. These are plain TensorFlow functions, testable without a model:
the denoiser enters the samplers only as `eps_fn(x_t, step)`.

Paper symbols and code names (the one place they are mapped):

    T          num_steps                 number of steps of a schedule (200 for training)
    t          index t = 0 ... T-1       the paper's t = 1 ... T (code indices are 0-based, as is
                                         the step fed to the step embedding)
    β_t        schedule.betas[t]         variance of the noise added at step t
    α_t        schedule.alphas[t]        1 - β_t
    ᾱ_t        schedule.alpha_bars[t]    ∏_{s<=t} α_s  (ᾱ_{-1} = 1)
    β̃_t        posterior_variance        (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · β_t
    σ_t        sqrt(posterior_variance)  std of the noise added by a reverse step (0 at t = 0)
    ε          noise                     standard normal noise, the network's regression target
    ε_θ        eps_fn(x_t, step)         the denoiser's estimate of ε
    x_0        x0                        the clean signal (the differential d, in [-1, 1])
    x_t        x_t                       x_0 noised to step t

Schedules are float64 tensors (they are small constants, and float64 keeps the product ᾱ and the
√ᾱ matching exact); the functions cast to the data's dtype where they meet it.

Random numbers: `sample` draws x_T ~ N(0, I) with `tf.random.stateless_normal(shape,
seed=(seed, 0))` and the noise z of the reverse step at schedule index n with seed
`(seed, n + 1)`, so a seed fixes the whole trajectory, eagerly, in a `tf.function` and under XLA.

Reference: Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020, Eq. 4 and
Algorithm 2; Kong et al., "DiffWave", ICLR 2021, appendix B (fast sampling); Leng et al.,
"BinauralGrad", NeurIPS 2022 (6-step schedule).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import tensorflow as tf

EpsFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


class NoiseSchedule(NamedTuple):
    """β, α and ᾱ of a diffusion schedule, each a float64 tensor `[num_steps]`."""

    betas: tf.Tensor
    alphas: tf.Tensor
    alpha_bars: tf.Tensor

    @property
    def num_steps(self) -> int:
        return int(self.betas.shape[0])


def schedule_from_betas(betas: Sequence[float] | np.ndarray | tf.Tensor) -> NoiseSchedule:
    """The schedule for given noise variances β_0 ... β_{T-1} (each in (0, 1)).

    Args:
      betas: `[num_steps]` noise variances, one per step.

    Returns:
      `NoiseSchedule` with α_t = 1 - β_t and ᾱ_t = ∏_{s<=t} α_s, float64.
    """
    if not tf.is_tensor(betas):
        betas = np.asarray(betas, np.float64)  # Python floats would pass through float32
    betas = tf.reshape(tf.cast(betas, tf.float64), [-1])
    alphas = 1.0 - betas
    return NoiseSchedule(betas=betas, alphas=alphas, alpha_bars=tf.math.cumprod(alphas))


def linear_schedule(
    num_steps: int = 200, beta_start: float = 1e-4, beta_end: float = 0.02
) -> NoiseSchedule:
    """The training schedule: β linear from `beta_start` to `beta_end` over `num_steps` steps.

    Reference: SPEC section 5 (T = 200, β 1e-4 -> 0.02); DDPM section 4.
    """
    return schedule_from_betas(np.linspace(beta_start, beta_end, num_steps, dtype=np.float64))


def fast_schedule(
    betas: Sequence[float] = (1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5),
) -> NoiseSchedule:
    """BinauralGrad's fast inference schedule (6 steps by default).

    Reference: SPEC section 5; BinauralGrad, NeurIPS 2022 (inference noise schedule).
    """
    return schedule_from_betas(betas)


def schedule_from_alpha_bars(alpha_bars: Sequence[float] | np.ndarray | tf.Tensor) -> NoiseSchedule:
    """The schedule whose cumulative products are `alpha_bars` (decreasing, in (0, 1]):
    β_n = 1 - ᾱ_n / ᾱ_{n-1}, ᾱ_{-1} = 1."""
    if not tf.is_tensor(alpha_bars):
        alpha_bars = np.asarray(alpha_bars, np.float64)
    alpha_bars = tf.reshape(tf.cast(alpha_bars, tf.float64), [-1])
    previous = tf.concat([tf.ones([1], tf.float64), alpha_bars[:-1]], axis=0)
    return schedule_from_betas(1.0 - alpha_bars / previous)


def respace(schedule: NoiseSchedule, levels: Sequence[int]) -> NoiseSchedule:
    """A schedule of `len(levels)` steps through `schedule`'s noise levels ᾱ at `levels`
    (increasing indices): the same levels, fewer and larger steps between them.

    `respace(fast_schedule(), (3, 4, 5))` is the upmixer's 3-step sampler ("few"): the 3 noisiest
    of BinauralGrad's 6 levels, its last step's x̂_0 taken at ᾱ = 0.94 instead of 0.9999;
    `respace(fast_schedule(), range(3))` keeps the 3 cleanest steps unchanged (the "refine"
    sampler's).

    Reference: Nichol & Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021,
    section 4 (sampling with a subsequence of the noise levels).
    """
    levels = list(levels)
    if not levels or levels != sorted(set(levels)) or levels[-1] >= schedule.num_steps:
        raise ValueError(f"levels must be increasing indices below {schedule.num_steps}; "
                         f"got {levels}")
    return schedule_from_alpha_bars(tf.gather(schedule.alpha_bars, levels))


def q_sample(x0: tf.Tensor, t: tf.Tensor, noise: tf.Tensor, schedule: NoiseSchedule) -> tf.Tensor:
    """Noises x_0 to step t: x_t = √ᾱ_t x_0 + √(1 - ᾱ_t) ε.

    Args:
      x0: `[batch, ...]` clean signal (e.g. the differential `[batch, time]` or `[batch, time, 1]`).
      t: `[batch]` integer step indices in [0, T - 1], one per example.
      noise: ε, the same shape as `x0`, standard normal.
      schedule: the training schedule.

    Returns:
      x_t, the shape and dtype of `x0`.

    Reference: DDPM Eq. 4.
    """
    x0 = tf.convert_to_tensor(x0)
    alpha_bar = tf.gather(schedule.alpha_bars, tf.cast(t, tf.int32))
    trailing = tf.ones([tf.rank(x0) - 1], tf.int32)
    alpha_bar = tf.reshape(alpha_bar, tf.concat([tf.shape(alpha_bar), trailing], axis=0))
    signal_scale = tf.cast(tf.sqrt(alpha_bar), x0.dtype)
    noise_scale = tf.cast(tf.sqrt(1.0 - alpha_bar), x0.dtype)
    return signal_scale * x0 + noise_scale * tf.cast(noise, x0.dtype)


def predict_x0(noisy: tf.Tensor, noise_estimate: tf.Tensor, alpha_bar: tf.Tensor) -> tf.Tensor:
    """One-step estimate x̂_0 = (x_t - √(1 - ᾱ_t) ε̂) / √ᾱ_t: `q_sample` solved for x_0.

    Args:
      noisy: `[batch, ...]` x_t; noise_estimate: ε̂, the same shape.
      alpha_bar: `[batch]` ᾱ_t of each example.

    Returns:
      x̂_0, the shape and dtype of `noisy` (x_0 itself when ε̂ = ε).

    Reference: DDPM Eq. 15 (Eq. 4 solved for x_0).
    """
    noisy = tf.convert_to_tensor(noisy)
    alpha_bar = tf.reshape(tf.cast(alpha_bar, noisy.dtype), [-1] + [1] * (noisy.shape.rank - 1))
    return (noisy - tf.sqrt(1.0 - alpha_bar) * noise_estimate) / tf.sqrt(alpha_bar)


def fractional_steps(inference: NoiseSchedule, training: NoiseSchedule) -> tf.Tensor:
    """Maps each inference step to a fractional training step by matching √ᾱ.

    For inference step s, find the training step t with √ᾱ^train_{t+1} <= √ᾱ^inf_s <= √ᾱ^train_t
    and interpolate linearly in √ᾱ:
    step_s = t + (√ᾱ^train_t - √ᾱ^inf_s) / (√ᾱ^train_t - √ᾱ^train_{t+1}).
    So the network is told the training step whose noise level equals the inference noise level.
    Noise levels outside the training range are clamped to steps 0 and T - 1.

    Args:
      inference: the sampling schedule (e.g. `fast_schedule()`), S steps.
      training: the schedule the denoiser was trained with, T steps.

    Returns:
      `[S]` float32 steps in [0, T - 1], increasing with s.

    Reference: DiffWave appendix B (fast sampling); BinauralGrad (inference schedule).
    """
    train_root = tf.sqrt(training.alpha_bars)  # decreasing in t
    infer_root = tf.sqrt(inference.alpha_bars)
    num_train = tf.shape(train_root)[0]
    # searchsorted needs increasing values: on -√ᾱ^train, `right` counts the steps with
    # √ᾱ^train_t >= √ᾱ^inf_s, so t = count - 1 is the lower bracket.
    count = tf.searchsorted(-train_root, -infer_root, side="right")
    lower = tf.clip_by_value(count - 1, 0, num_train - 2)
    root_lower = tf.gather(train_root, lower)
    root_upper = tf.gather(train_root, lower + 1)
    steps = tf.cast(lower, tf.float64) + (root_lower - infer_root) / (root_lower - root_upper)
    last = tf.cast(num_train - 1, tf.float64)
    return tf.cast(tf.clip_by_value(steps, 0.0, last), tf.float32)


def sample(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    steps: tf.Tensor | Sequence[float],
    *,
    x_T: tf.Tensor | None = None,
    shape: tf.Tensor | Sequence[int] | None = None,
    seed: int | tf.Tensor = 0,
    clip_range: tuple[float, float] | None = (-1.0, 1.0),
    eta: float = 1.0,
) -> tf.Tensor:
    """DDPM ancestral sampling (reverse process) over `schedule`, from x_T to x_0; with `eta` < 1
    the DDIM generalisation (`eta` = 0: deterministic).

    For n = S-1 ... 0, with ε̂ = ε_θ(x_n, steps[n]) and x̂_0 = (x_n - √(1 - ᾱ_n) ε̂) / √ᾱ_n:
      x_{n-1} = √ᾱ_{n-1} x̂_0 + √(1 - ᾱ_{n-1} - σ_n²) ε̂ + σ_n z,
    σ_n = eta √β̃_n, β̃_n = (1 - ᾱ_{n-1}) / (1 - ᾱ_n) · β_n, z ~ N(0, I), ᾱ_{-1} = 1 (no noise
    at n = 0). At `eta` = 1 this is DDPM's step, 1/√α_n · (x_n - β_n / √(1 - ᾱ_n) ε̂) + √β̃_n z;
    the result of every step is clamped to `clip_range`. The loop is a `tf.while_loop`, so inside a
    `tf.function` the whole trajectory is one graph (no Python per step), and any number of steps
    traces the denoiser once.

    Args:
      eps_fn: ε_θ: `(x_t [batch, ...] float32, step [batch] float32) -> [batch, ...]` (any float
        dtype; cast to float32).
      schedule: the sampling schedule (training schedule or `fast_schedule()`), S steps.
      steps: `[S]` the step fed to `eps_fn` at each schedule index: `range(T)` for the full
        schedule, `fractional_steps(fast, training)` for the fast one.
      x_T: `[batch, ...]` initial noise; drawn from `seed` when None.
      shape: the shape of x_T when `x_T` is None, e.g. `[batch, time, 1]`.
      seed: int32 scalar; x_T uses seed (seed, 0), the noise of schedule index n (seed, n + 1).
      clip_range: (low, high) clamp after every step, or None for no clamping.
      eta: the share of the posterior noise kept (1: DDPM, 0: deterministic DDIM).

    Returns:
      x_0, float32, the shape of x_T.

    Reference: DDPM Algorithm 2 (σ_t² = β̃_t variant); Song et al., "Denoising Diffusion
    Implicit Models", ICLR 2021, Eq. 12 (eta); SPEC section 5 (clamp to [-1, 1]).
    """
    seed = tf.cast(seed, tf.int32)
    if x_T is None:
        if shape is None:
            raise ValueError("sample() needs x_T or shape")
        x_T = tf.random.stateless_normal(shape, seed=tf.stack([seed, 0]), dtype=tf.float32)
    x_T = tf.cast(x_T, tf.float32)
    steps = tf.cast(tf.reshape(steps, [-1]), tf.float32)

    betas, _, alpha_bars = schedule
    alpha_bars_prev = tf.concat([tf.ones([1], tf.float64), alpha_bars[:-1]], axis=0)
    variance = eta**2 * (1.0 - alpha_bars_prev) / (1.0 - alpha_bars) * betas  # 0 at n = 0
    # x_{n-1} = signal_coef x_n + eps_coef ε̂ + σ z: x̂_0 substituted into the step above.
    signal_coef = tf.cast(tf.sqrt(alpha_bars_prev / alpha_bars), tf.float32)
    eps_coef = tf.cast(tf.sqrt(tf.maximum(1.0 - alpha_bars_prev - variance, 0.0))
                       - tf.sqrt(alpha_bars_prev * (1.0 - alpha_bars) / alpha_bars), tf.float32)
    noise_std = tf.cast(tf.sqrt(variance), tf.float32)
    batch = tf.shape(x_T)[0]

    def body(n, x):
        eps = tf.cast(eps_fn(x, tf.fill([batch], steps[n])), tf.float32)
        eps = tf.ensure_shape(eps, x_T.shape)  # keeps the loop's static shape
        x = signal_coef[n] * x + eps_coef[n] * eps
        z = tf.random.stateless_normal(tf.shape(x), seed=tf.stack([seed, n + 1]), dtype=x.dtype)
        x = x + noise_std[n] * z
        if clip_range is not None:
            x = tf.clip_by_value(x, clip_range[0], clip_range[1])
        return n - 1, x

    num_steps = tf.shape(betas)[0]
    _, x_0 = tf.while_loop(
        lambda n, x: n >= 0,
        body,
        (num_steps - 1, x_T),
        shape_invariants=(tf.TensorShape([]), x_T.shape),
    )
    return x_0


def sample_full(
    eps_fn: EpsFn,
    training: NoiseSchedule,
    *,
    x_T: tf.Tensor | None = None,
    shape: tf.Tensor | Sequence[int] | None = None,
    seed: int | tf.Tensor = 0,
    clip_range: tuple[float, float] | None = (-1.0, 1.0),
) -> tf.Tensor:
    """Samples with all T training steps (steps 0 ... T-1 fed to `eps_fn`). See `sample`."""
    steps = tf.range(training.num_steps, dtype=tf.float32)
    return sample(eps_fn, training, steps, x_T=x_T, shape=shape, seed=seed, clip_range=clip_range)


def sample_fast(
    eps_fn: EpsFn,
    training: NoiseSchedule,
    inference: NoiseSchedule | None = None,
    *,
    x_T: tf.Tensor | None = None,
    shape: tf.Tensor | Sequence[int] | None = None,
    seed: int | tf.Tensor = 0,
    clip_range: tuple[float, float] | None = (-1.0, 1.0),
) -> tf.Tensor:
    """Samples with the fast schedule (default `fast_schedule()`), its steps fed to `eps_fn` as the
    fractional training steps of `fractional_steps`. See `sample`.

    Reference: SPEC section 5; BinauralGrad's 6-step inference.
    """
    inference = fast_schedule() if inference is None else inference
    steps = fractional_steps(inference, training)
    return sample(eps_fn, inference, steps, x_T=x_T, shape=shape, seed=seed, clip_range=clip_range)


def sample_from_estimate(
    eps_fn: EpsFn,
    schedule: NoiseSchedule,
    steps: tf.Tensor | Sequence[float],
    estimate: tf.Tensor,
    *,
    seed: int | tf.Tensor = 0,
    clip_range: tuple[float, float] | None = (-1.0, 1.0),
) -> tf.Tensor:
    """Refines a first estimate of x_0: noises it to the schedule's last level and runs the
    reverse process from there (SDEdit), so S network evaluations start from the estimate
    instead of from noise.

    x_{S-1} = √ᾱ_{S-1} · estimate + √(1 - ᾱ_{S-1}) · ε, ε drawn with seed (seed, 0) (where
    `sample` draws x_T), then `sample(eps_fn, schedule, steps, x_T=x_{S-1}, ...)`.

    Args:
      estimate: `[batch, ...]` the first estimate of x_0 (e.g. the spatial prior's d_prior).
      eps_fn, schedule, steps, seed, clip_range: as `sample`; the schedule is a short one whose
        last level leaves the estimate recognisable (e.g. `respace(fast_schedule(), range(3))`:
        √(1 - ᾱ) = 0.11).

    Returns:
      x_0, float32, the shape of `estimate`.

    Reference: Meng et al., "SDEdit: Guided Image Synthesis and Editing with Stochastic
    Differential Equations", ICLR 2022; Lee et al., "PriorGrad", ICLR 2022 (a diffusion
    vocoder started from a data-dependent estimate).
    """
    estimate = tf.cast(estimate, tf.float32)
    seed = tf.cast(seed, tf.int32)
    noise = tf.random.stateless_normal(tf.shape(estimate), seed=tf.stack([seed, 0]))
    last = tf.fill([tf.shape(estimate)[0]], schedule.num_steps - 1)
    x_start = q_sample(estimate, last, noise, schedule)
    return sample(eps_fn, schedule, steps, x_T=x_start, seed=seed, clip_range=clip_range)
