"""Schedules, q_sample, fractional steps and the DDPM sampler against a numpy reference."""

import numpy as np
import pytest
import tensorflow as tf

from keras_binaural import diffusion

FAST_BETAS = [1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5]


# === numpy reference ===


def np_schedule(betas):
    betas = np.asarray(betas, np.float64)
    alphas = 1.0 - betas
    return betas, alphas, np.cumprod(alphas)


def np_q_sample(x0, t, noise, alpha_bars):
    a = alpha_bars[t].reshape((-1,) + (1,) * (x0.ndim - 1))
    return np.sqrt(a) * x0 + np.sqrt(1.0 - a) * noise


def np_fractional_steps(inference_alpha_bars, training_alpha_bars):
    """Bracket search, one inference step at a time (the definition, written out)."""
    steps = []
    for target in np.sqrt(inference_alpha_bars):
        roots = np.sqrt(training_alpha_bars)
        for t in range(len(roots) - 1):
            if roots[t + 1] <= target <= roots[t]:
                steps.append(t + (roots[t] - target) / (roots[t] - roots[t + 1]))
                break
    return np.array(steps)


def np_sample(eps_fn, betas, steps, x_T, step_noise, clip=(-1.0, 1.0)):
    """DDPM ancestral sampling; step_noise[n] is the z of schedule index n."""
    betas, alphas, alpha_bars = np_schedule(betas)
    x = x_T.astype(np.float64)
    for n in reversed(range(len(betas))):
        eps = eps_fn(x, np.full(x.shape[0], steps[n]))
        x = (x - betas[n] / np.sqrt(1.0 - alpha_bars[n]) * eps) / np.sqrt(alphas[n])
        if n > 0:
            variance = (1.0 - alpha_bars[n - 1]) / (1.0 - alpha_bars[n]) * betas[n]
            x = x + np.sqrt(variance) * step_noise[n]
        x = np.clip(x, *clip)
    return x


def np_sample_ddim(eps_fn, alpha_bars, steps, x_T, step_noise, eta, clip=(-1.0, 1.0)):
    """DDIM's step written with x̂_0 (Song et al. 2021, Eq. 12), from the noise levels alone."""
    x = x_T.astype(np.float64)
    for n in reversed(range(len(alpha_bars))):
        previous = alpha_bars[n - 1] if n > 0 else 1.0
        eps = eps_fn(x, np.full(x.shape[0], steps[n]))
        x0 = (x - np.sqrt(1.0 - alpha_bars[n]) * eps) / np.sqrt(alpha_bars[n])
        sigma = eta * np.sqrt((1.0 - previous) / (1.0 - alpha_bars[n])
                              * (1.0 - alpha_bars[n] / previous))
        x = np.sqrt(previous) * x0 + np.sqrt(1.0 - previous - sigma**2) * eps
        if n > 0:
            x = x + sigma * step_noise[n]
        x = np.clip(x, *clip)
    return x


def documented_noise(shape, seed, num_steps):
    """x_T and the per-step z exactly as `diffusion.sample` documents them."""
    x_T = tf.random.stateless_normal(shape, seed=(seed, 0)).numpy()
    z = [tf.random.stateless_normal(shape, seed=(seed, n + 1)).numpy() for n in range(num_steps)]
    return x_T, z


def toy_eps(x, step):
    """A deterministic stand-in for the denoiser, the same in numpy and TF."""
    return 0.4 * x + 0.002 * step[:, None]


# === tests ===


def test_linear_schedule_matches_numpy():
    schedule = diffusion.linear_schedule()
    betas, alphas, alpha_bars = np_schedule(np.linspace(1e-4, 0.02, 200))
    assert schedule.num_steps == 200
    np.testing.assert_allclose(schedule.betas.numpy(), betas, rtol=1e-12)
    np.testing.assert_allclose(schedule.alphas.numpy(), alphas, rtol=1e-12)
    np.testing.assert_allclose(schedule.alpha_bars.numpy(), alpha_bars, rtol=1e-12)
    assert schedule.betas.numpy()[0] == pytest.approx(1e-4)
    assert schedule.betas.numpy()[-1] == pytest.approx(0.02)


def test_fast_schedule_matches_numpy():
    schedule = diffusion.fast_schedule()
    for got, want in zip(schedule, np_schedule(FAST_BETAS)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("shape", [(3, 50), (3, 50, 1)])
def test_q_sample_matches_numpy(shape):
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, shape).astype(np.float32)
    noise = rng.standard_normal(shape).astype(np.float32)
    t = np.array([0, 57, 199])
    schedule = diffusion.linear_schedule()
    got = diffusion.q_sample(x0, t, noise, schedule).numpy()
    want = np_q_sample(x0, t, noise, np_schedule(np.linspace(1e-4, 0.02, 200))[2])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_fractional_steps_match_sqrt_alpha_bar():
    training, fast = diffusion.linear_schedule(), diffusion.fast_schedule()
    steps = diffusion.fractional_steps(fast, training).numpy()
    train_alpha_bars = np_schedule(np.linspace(1e-4, 0.02, 200))[2]
    fast_alpha_bars = np_schedule(FAST_BETAS)[2]

    np.testing.assert_allclose(
        steps, np_fractional_steps(fast_alpha_bars, train_alpha_bars), atol=1e-4
    )
    # The training noise level at the fractional step (linear in √ᾱ) is the inference one.
    root_at_step = np.interp(steps, np.arange(200), np.sqrt(train_alpha_bars))
    np.testing.assert_allclose(root_at_step, np.sqrt(fast_alpha_bars), atol=1e-6)
    assert np.all(np.diff(steps) > 0)
    assert steps[0] == pytest.approx(0.0, abs=1e-6)  # β_0 = 1e-4 in both schedules
    assert np.all((steps >= 0) & (steps <= 199))
    assert np.any(steps != np.round(steps))  # genuinely fractional


def test_fractional_steps_of_the_training_schedule_are_its_indices():
    training = diffusion.linear_schedule()
    steps = diffusion.fractional_steps(training, training).numpy()
    np.testing.assert_allclose(steps, np.arange(200), atol=2e-3)


def test_fractional_steps_clamp_noise_levels_outside_training():
    training = diffusion.linear_schedule()
    beyond = diffusion.schedule_from_betas([1e-6, 0.99])  # cleaner than step 0, noisier than T-1
    steps = diffusion.fractional_steps(beyond, training).numpy()
    np.testing.assert_allclose(steps, [0.0, 199.0])


@pytest.mark.parametrize("schedule_name", ["fast", "full"])
def test_sampler_matches_numpy(schedule_name):
    training = diffusion.linear_schedule()
    shape, seed = (2, 64), 7
    if schedule_name == "fast":
        betas = FAST_BETAS
        got = diffusion.sample_fast(toy_eps, training, shape=shape, seed=seed).numpy()
        steps = diffusion.fractional_steps(diffusion.fast_schedule(), training).numpy()
    else:
        betas = np.linspace(1e-4, 0.02, 200)
        got = diffusion.sample_full(toy_eps, training, shape=shape, seed=seed).numpy()
        steps = np.arange(200)
    x_T, z = documented_noise(shape, seed, len(betas))
    want = np_sample(toy_eps, betas, steps, x_T, z)
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_sampler_feeds_steps_from_noisiest_to_cleanest():
    seen = []

    def recording_eps(x, step):
        seen.append(float(step[0]))
        return tf.zeros_like(x)

    training = diffusion.linear_schedule()
    diffusion.sample_fast(recording_eps, training, shape=(1, 8), seed=0)
    expected = diffusion.fractional_steps(diffusion.fast_schedule(), training).numpy()[::-1]
    np.testing.assert_allclose(seen, expected, rtol=1e-6)


def test_sampler_is_deterministic_given_a_seed():
    training = diffusion.linear_schedule()
    run = tf.function(
        lambda seed: diffusion.sample_fast(toy_eps, training, shape=(2, 32), seed=seed)
    )
    a, b, c = run(tf.constant(3)), run(tf.constant(3)), run(tf.constant(4))
    eager = diffusion.sample_fast(toy_eps, training, shape=(2, 32), seed=3)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(a.numpy(), eager.numpy(), atol=1e-6)
    assert not np.allclose(a.numpy(), c.numpy())


def test_sampler_uses_the_given_initial_noise():
    training = diffusion.linear_schedule()
    x_T = np.full((1, 16), 0.3, np.float32)
    got = diffusion.sample_fast(toy_eps, training, x_T=x_T, seed=1).numpy()
    _, z = documented_noise((1, 16), 1, 6)
    want = np_sample(
        toy_eps,
        FAST_BETAS,
        diffusion.fractional_steps(diffusion.fast_schedule(), training).numpy(),
        x_T,
        z,
    )
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_sampler_clamps_after_every_step():
    inputs = []

    def wild_eps(x, step):
        inputs.append(x.numpy())
        return -1e3 * tf.sign(x) - 1e3

    out = diffusion.sample_fast(wild_eps, diffusion.linear_schedule(), shape=(2, 100), seed=0)
    assert np.abs(inputs[0]).max() > 1.0  # x_T ~ N(0, I) is not clamped
    for x in inputs[1:] + [out.numpy()]:
        assert np.all(np.abs(x) <= 1.0)
    assert np.abs(out.numpy()).max() == pytest.approx(1.0)  # it did hit the bound


def test_sampler_needs_shape_or_initial_noise():
    with pytest.raises(ValueError, match="x_T or shape"):
        diffusion.sample_fast(toy_eps, diffusion.linear_schedule())


def test_predict_x0_inverts_q_sample():
    schedule = diffusion.linear_schedule()
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, (3, 50)).astype("float32")
    noise = rng.standard_normal((3, 50)).astype("float32")
    step = np.array([0, 100, 199])
    noisy = diffusion.q_sample(x0, step, noise, schedule)
    alpha_bar = tf.gather(schedule.alpha_bars, step)
    np.testing.assert_allclose(diffusion.predict_x0(noisy, noise, alpha_bar), x0, atol=2e-4)


# === fewer network evaluations: respaced schedules, DDIM, starting from an estimate ===


def test_respace_keeps_the_chosen_noise_levels():
    fast = diffusion.fast_schedule()
    _, _, alpha_bars = np_schedule(FAST_BETAS)
    few = diffusion.respace(fast, (3, 4, 5))
    np.testing.assert_allclose(few.alpha_bars.numpy(), alpha_bars[3:], rtol=1e-12)
    want_betas = 1.0 - alpha_bars[3:] / np.concatenate([[1.0], alpha_bars[3:-1]])
    np.testing.assert_allclose(few.betas.numpy(), want_betas, rtol=1e-12)
    np.testing.assert_allclose(diffusion.respace(fast, range(6)).betas.numpy(), FAST_BETAS,
                               rtol=1e-12)
    np.testing.assert_allclose(diffusion.respace(fast, range(2)).betas.numpy(), FAST_BETAS[:2],
                               rtol=1e-12)


@pytest.mark.parametrize("levels", [(), (3, 2), (1, 1), (4, 6)])
def test_respace_refuses_levels_that_are_not_increasing_indices(levels):
    with pytest.raises(ValueError, match="increasing indices below 6"):
        diffusion.respace(diffusion.fast_schedule(), levels)


def test_three_step_sampler_matches_numpy():
    training = diffusion.linear_schedule()
    few = diffusion.respace(diffusion.fast_schedule(), (3, 4, 5))
    steps = diffusion.fractional_steps(few, training)
    shape, seed = (2, 64), 5
    got = diffusion.sample(toy_eps, few, steps, shape=shape, seed=seed).numpy()
    _, _, alpha_bars = np_schedule(FAST_BETAS)
    betas = 1.0 - alpha_bars[3:] / np.concatenate([[1.0], alpha_bars[3:-1]])
    x_T, z = documented_noise(shape, seed, 3)
    want = np_sample(toy_eps, betas, steps.numpy(), x_T, z)
    np.testing.assert_allclose(got, want, atol=2e-5)
    # The same levels' fractional training steps as the 6-step schedule's last three.
    full_steps = diffusion.fractional_steps(diffusion.fast_schedule(), training).numpy()
    np.testing.assert_allclose(steps.numpy(), full_steps[3:], rtol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_sampler_matches_numpy(eta):
    training = diffusion.linear_schedule()
    fast = diffusion.fast_schedule()
    steps = diffusion.fractional_steps(fast, training)
    shape, seed = (2, 64), 3
    got = diffusion.sample(toy_eps, fast, steps, shape=shape, seed=seed, eta=eta).numpy()
    x_T, z = documented_noise(shape, seed, 6)
    _, _, alpha_bars = np_schedule(FAST_BETAS)
    want = np_sample_ddim(toy_eps, alpha_bars, steps.numpy(), x_T, z, eta)
    np.testing.assert_allclose(got, want, atol=2e-5)
    if eta == 1.0:  # DDIM at eta = 1 is DDPM's ancestral step
        np.testing.assert_allclose(got, np_sample(toy_eps, FAST_BETAS, steps.numpy(), x_T, z),
                                   atol=2e-5)


def test_sampling_from_an_estimate_noises_it_to_the_last_level_first():
    training = diffusion.linear_schedule()
    refine = diffusion.respace(diffusion.fast_schedule(), range(3))
    steps = diffusion.fractional_steps(refine, training)
    estimate = np.sin(np.linspace(0, 6, 64))[None].repeat(2, 0).astype(np.float32) * 0.8
    got = diffusion.sample_from_estimate(toy_eps, refine, steps, estimate, seed=9).numpy()
    noise, z = documented_noise(estimate.shape, 9, 3)
    _, _, alpha_bars = np_schedule(FAST_BETAS[:3])
    start = np.sqrt(alpha_bars[2]) * estimate + np.sqrt(1.0 - alpha_bars[2]) * noise
    want = np_sample(toy_eps, FAST_BETAS[:3], steps.numpy(), start, z)
    np.testing.assert_allclose(got, want, atol=2e-5)

    def perfect_eps(x, step):  # knows the estimate is the clean signal
        alpha_bar = np.interp(step.numpy(), np.arange(200),
                              training.alpha_bars.numpy())[:, None]
        return (x - np.sqrt(alpha_bar) * estimate) / np.sqrt(1.0 - alpha_bar)

    recovered = diffusion.sample_from_estimate(perfect_eps, refine, steps, estimate, seed=9)
    np.testing.assert_allclose(recovered.numpy(), estimate, atol=0.02)
