"""CLUP: the loss formula and its λs, the cyclic loss, training, save/load and generation."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from localization_data import denoiser_inputs, tiny_upmixer_model
from roundtrip import assert_round_trip

from keras_binaural import diffusion
from keras_binaural.models.clup import CLUP
from keras_binaural.models.localization_core import ssm_loss


def tiny_clup(**kwargs) -> CLUP:
    return tiny_upmixer_model(CLUP, **kwargs)


@pytest.fixture
def batch(upmixer_batch):
    return upmixer_batch


def test_loss_is_the_weighted_sum_of_its_terms(batch):
    model = tiny_clup(
        lambda_cyc=3.0, localizer_config={"lambda_sce": 0.5, "lambda_obj": 2.0, "lambda_ssm": 0.0}
    )
    results = {k: float(v) for k, v in model.compute_losses(batch, training=False).items()}
    expected = (
        results["diff_loss"]
        + 0.5 * results["sce_loss"]
        + 2.0 * results["obj_loss"]
        + 3.0 * results["cyc_loss"]
    )
    assert results["loss"] == pytest.approx(expected, rel=1e-5)
    assert all(np.isfinite(v) and v > 0 for v in results.values())


def test_cycle_loss_of_the_exact_estimate_is_the_ssm_loss_of_the_real_audio(batch):
    """With ε̂ = ε the one-step estimate is d itself: l_cyc must score the real binaural context."""
    model = tiny_clup()
    mono, diff = batch["mono"], batch["diff"]
    scale = model.level_scale(mono)
    noise = tf.random.stateless_normal(tf.shape(diff), seed=(0, 1))
    step = tf.fill([4], 5)
    terms = {
        "noisy": diffusion.q_sample(diff / scale, step, noise, model.training_schedule),
        "noise_estimate": noise,
        "step": step,
        "scale": scale,
    }
    localizer = model.localizer
    visual = localizer.encode_frames(batch["frame"])
    negative_visual = localizer.encode_frames(batch["negative_frame"])
    cycle = model.cycle_loss(batch, terms, visual, negative_visual)
    embedding = tf.reshape(
        localizer.encode_audio(tf.reshape(batch["binaural_patch"], [-1, 96, 64])), [4, 256]
    )
    real = tf.reduce_mean(
        ssm_loss(*localizer.ssm_head.pair_distances(embedding, visual, negative_visual))
    )
    np.testing.assert_allclose(float(cycle), float(real), rtol=2e-3)


def test_cycle_loss_trains_the_generator_and_the_localizer(batch):
    model = tiny_clup()
    with tf.GradientTape() as tape:
        cycle = model.compute_losses(batch, training=True)["cyc_loss"]
    parts = {
        "denoiser": model.denoiser,
        "ssm_head": model.localizer.ssm_head,
        "localizer visual encoder": model.localizer.visual_encoder,
        "guidance": model.guidance_network,
    }
    gradients = tape.gradient(
        cycle, [v for part in parts.values() for v in part.trainable_variables]
    )
    start = 0
    for name, part in parts.items():
        count = len(part.trainable_variables)
        norm = sum(float(tf.norm(g)) for g in gradients[start : start + count] if g is not None)
        assert norm > 0, f"l_cyc does not reach the {name}"
        start += count


def test_fit_lowers_the_loss_on_a_tiny_set(batch):
    model = tiny_clup()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), run_eagerly=True)
    state = model.seed_generator.state.numpy()  # the same t and ε before and after
    before = float(model.compute_losses(batch, training=True)["loss"])
    model.seed_generator.state.assign(state)
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=6, epochs=1, verbose=0)
    model.seed_generator.state.assign(state)
    after = float(model.compute_losses(batch, training=True)["loss"])
    assert after < before - 0.05, (before, after)


def test_round_trip_keeps_the_lambdas_and_the_generated_audio(batch, tmp_path):
    model = tiny_clup(lambda_cyc=0.25, localizer_config={"lambda_ssm": 0.5})
    inputs = denoiser_inputs(batch)
    assert assert_round_trip(model, inputs, tmp_path).shape == (4, 10080, 1)
    loaded = keras.saving.load_model(tmp_path / "round_trip.keras")
    assert isinstance(loaded, CLUP)
    assert (loaded.lambda_cyc, loaded.localizer_config["lambda_ssm"],
            loaded.localizer.lambda_ssm) == (0.25, 0.5, 0.5)
    assert loaded.localizer.use_ssm and loaded.localizer.localizer == "osa"
    mono = batch["mono"].numpy()[:2, :5000]
    frames = np.repeat(batch["frame"].numpy()[:2, None], 4, axis=1)
    np.testing.assert_allclose(
        loaded.generate(mono, frames, seed=2, jit_compile=False),
        model.generate(mono, frames, seed=2, jit_compile=False),
        atol=1e-5,
    )


def test_bad_arguments_and_data_raise_clear_errors(batch):
    with pytest.raises(ValueError, match="does not take 'guidance'"):
        CLUP(guidance="baseline")
    with pytest.raises(ValueError, match="takes 'lambda_ssm' in localizer_config"):
        CLUP(lambda_ssm=2.0)
    with pytest.raises(ValueError, match="must not set 'use_ssm'"):
        CLUP(localizer_config={"use_ssm": False})
    model = tiny_clup()
    data = {k: v for k, v in batch.items() if k != "binaural_context"}
    with pytest.raises(ValueError, match="needs the key 'binaural_context'"):
        model.compute_losses(data)


def test_configs_saved_with_the_lambdas_as_clup_arguments_still_load():
    """Before the localization λs moved into localizer_config they were CLUP's own arguments."""
    config = tiny_clup(localizer_config={"lambda_obj": 0.25}).get_config()
    localizer_config = dict(config["localizer_config"])
    old = {**config, "lambda_obj": localizer_config.pop("lambda_obj"), "lambda_sce": 1.0,
           "lambda_ssm": 1.0, "localizer_config": localizer_config}
    assert CLUP.from_config(old).localizer.lambda_obj == 0.25
