"""The upmixer: level normalisation, guidance variants, Eq. 3, seeds and windows, round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from localization_data import UPMIXER_FRAME_SIZE, denoiser_inputs, tiny_upmixer_model
from roundtrip import assert_round_trip

from keras_binaural.data import fairplay
from keras_binaural.generation import GenerationInputError
from keras_binaural.models.upmixer import Upmixer, level_envelope

SIZE = UPMIXER_FRAME_SIZE


def tiny_upmixer(guidance: str, **kwargs) -> Upmixer:
    return tiny_upmixer_model(Upmixer, guidance=guidance, **kwargs)


@pytest.fixture
def batch(upmixer_batch):
    return upmixer_batch


@pytest.fixture(scope="module")
def clip(upmixer_root):
    clips = fairplay.list_clips(upmixer_root, "test")
    return next(
        iter(fairplay.evaluation_dataset(clips[:1], resize_hw=(SIZE, SIZE), crop_hw=(SIZE, SIZE)))
    )


# === Math ===


def test_level_envelope_follows_the_local_peak_with_a_floor():
    # 2 s: loud (peak 0.8) first second, quiet (peak 0.01) second; a silent clip.
    rng = np.random.default_rng(0)
    mono = np.concatenate([rng.uniform(-0.8, 0.8, 16000), rng.uniform(-0.01, 0.01, 16000)])
    mono[100] = 0.8
    mono[31000] = 0.01
    scale = level_envelope(np.stack([mono, np.zeros(32000)]).astype("float32"), 1e-3,
                           normalized_peak=2.0).numpy()
    assert scale.shape == (2, 32000)
    np.testing.assert_allclose(scale[0, :8000], 0.4, rtol=1e-3)  # within 0.3 s of a loud block
    np.testing.assert_allclose(scale[0, 22400:], 0.005, rtol=1e-3)  # 0.4 s after the last one
    assert np.all(np.diff(scale[0]) <= 1e-7)  # falls monotonically (linear between blocks)
    np.testing.assert_allclose(scale[1], 5e-4)  # the floor: min_scale / normalized_peak
    # A training chunk (0.63 s) with its peak in the middle gets that peak everywhere but the ends.
    chunk = np.zeros((1, 10080), "float32")
    chunk[0, 5000] = 0.5
    np.testing.assert_allclose(level_envelope(chunk, 1e-3).numpy()[0, 800:9280], 0.5)


# === Bad input ===


def test_generate_rejects_bad_input_and_keeps_silence_silent():
    model = tiny_upmixer("none")
    with pytest.raises(GenerationInputError, match="mono has 2 channels"):
        model.generate(np.zeros((1, 3200, 2), "float32"))
    with pytest.raises(GenerationInputError, match="NaN"):
        model.generate(np.full((1, 3200), np.nan, "float32"))
    with pytest.raises(ValueError, match="sampler"):
        model.generate(np.zeros((1, 3200), "float32"), sampler="ddim")
    silence = model.generate(np.zeros((1, 4000), "float32"), seed=0, jit_compile=False)
    assert np.isfinite(silence).all()
    full = model.generate(np.zeros((1, 4000), "float32"), sampler="full", jit_compile=False)
    assert full.shape == (1, 4000, 2) and np.isfinite(full).all()
    bound = model.clip_value * model.min_scale / model.normalized_peak  # 2e-3: -54 dBFS
    assert np.abs(silence).max() <= bound * (1 + 1e-6)


# === Models ===


def test_constructor_rejects_unknown_guidance():
    with pytest.raises(ValueError, match="guidance must be one of"):
        Upmixer(guidance="scene")
    with pytest.raises(ValueError, match="scene_columns must be >= 1"):
        Upmixer(guidance="object", scene_columns=0)


@pytest.mark.parametrize("guidance", ["object", "baseline", "none"])
def test_guidance_variants_train_and_generate(guidance, batch, clip):
    model = tiny_upmixer(guidance)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    logs = model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0).history
    expected = (
        {"loss", "diff_loss"}
        | ({"sce_loss", "obj_loss"} if guidance == "object" else set())
        | ({"baseline_loss"} if guidance == "baseline" else set())
    )
    assert set(logs) == expected and all(np.isfinite(v[-1]) for v in logs.values())
    mono, frames = clip["mono"].numpy()[None, :20_000], clip["frames"].numpy()[None, :13]
    binaural = model.generate(mono, frames, seed=3, jit_compile=False)
    assert binaural.shape == (1, 20_000, 2) and np.isfinite(binaural).all()
    # Eq. 3: L + R = 2 m exactly (up to float32 rounding), and d̂ is not zero.
    np.testing.assert_allclose(binaural.sum(axis=-1), 2 * mono, atol=1e-6)
    assert np.abs(binaural[..., 0] - binaural[..., 1]).max() > 1e-3


def test_same_seed_same_audio_and_windows_for_any_length(clip, capsys):
    model = tiny_upmixer("object")
    num_samples = 26_789  # neither a multiple of the 1600-sample frame nor of the window
    mono = clip["mono"].numpy()[None, :num_samples]
    frames = clip["frames"].numpy()[None, : int(np.ceil(num_samples / 1600))]
    kwargs = {"window_seconds": 1.0, "overlap_seconds": 0.2}
    first = model.generate(mono, frames, seed=7, **kwargs)
    assert "2/2" in capsys.readouterr().out  # the progress bar over the two windows
    again = model.generate(mono, frames, seed=7, **kwargs)
    other = model.generate(mono, frames, seed=8, **kwargs)
    assert first.shape == (1, num_samples, 2) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3
    np.testing.assert_allclose(first.sum(axis=-1), 2 * mono, atol=1e-6)
    # Windows sampled one after another or in parallel threads: the same audio.
    serial = model.generate(mono, frames, seed=7, parallel_windows=1, **kwargs)
    np.testing.assert_allclose(serial, first, atol=1e-6)
    # XLA and graph mode run the same sampler.
    graph = model.generate(mono, frames, seed=7, jit_compile=False, **kwargs)
    np.testing.assert_allclose(graph, first, atol=1e-4)


def test_upmixer_round_trip(batch, tmp_path):
    model = tiny_upmixer("baseline", scene_columns=2)
    inputs = denoiser_inputs(batch)
    outputs = assert_round_trip(model, inputs, tmp_path)
    assert outputs.shape == (4, 10080, 1)
