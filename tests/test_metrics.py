import math

import keras
import librosa
import numpy as np
import pytest
import tensorflow as tf

from keras_binaural import metrics
from keras_binaural.audio import load_audio
from keras_binaural.evaluation import mono_mono

DISTANCES = ("stft", "env", "wav", "amp", "pha")
CLIPS = ("demo1", "demo2", "AVTsplit1_001353")


def _noise(shape, seed=0, scale=0.3):
    return np.random.default_rng(seed).normal(0.0, scale, shape).astype(np.float32)


def _pair(batch=3, num_samples=4001, seed=0):
    """A ground truth and a prediction that resembles it: `[batch, time, 2]` each."""
    y_true = _noise((batch, num_samples, 2), seed)
    y_pred = 0.7 * y_true + _noise((batch, num_samples, 2), seed + 1, scale=0.1)
    return y_true, y_pred


def _tf_values(y_true, y_pred, normalize=False):
    return {
        name: value.numpy()
        for name, value in metrics.evaluate_batch(y_true, y_pred, normalize).items()
    }


@pytest.fixture(scope="module")
def real_clips(fairplay_demo):
    """{clip: (ground truth, Mono2Binaural prediction)}, `[time, 2]` each, trimmed to one length."""
    clips = {}
    for clip in CLIPS:
        gt = load_audio(fairplay_demo / clip / "input_binaural.wav", channels=2)
        pred = load_audio(fairplay_demo / clip / "predicted_binaural.wav", channels=2)
        num_samples = min(len(gt), len(pred))
        clips[clip] = gt[:num_samples], pred[:num_samples]
    return clips


def test_stft_numpy_matches_librosa():
    waveform = _noise((2, 3000))
    expected = librosa.stft(
        waveform.astype(np.float64),
        n_fft=512,
        hop_length=160,
        win_length=400,
        window="hann",
        center=True,
        pad_mode="reflect",
    )
    actual = metrics.stft_numpy(waveform)
    assert actual.shape == (2, 1 + 3000 // 160, 257)
    np.testing.assert_allclose(actual, np.swapaxes(expected, -1, -2), rtol=0, atol=1e-10)


def test_stft_tensorflow_matches_numpy():
    waveform = _noise((2, 3001)).astype(np.float64)
    np.testing.assert_allclose(
        metrics.stft(waveform).numpy(), metrics.stft_numpy(waveform), rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("num_samples", [2048, 2049])  # even and odd lengths: Hilbert weights
def test_envelope_tensorflow_matches_scipy(num_samples):
    waveform = _noise((2, num_samples)).astype(np.float64)
    np.testing.assert_allclose(
        metrics.envelope(waveform).numpy(), metrics.envelope_numpy(waveform), rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("num_samples", [4000, 4001])
def test_tensorflow_matches_numpy_on_random_signals(normalize, num_samples):
    y_true, y_pred = _pair(num_samples=num_samples)
    actual = _tf_values(y_true, y_pred, normalize)
    for name, fn in metrics.NUMPY_METRICS.items():
        assert actual[name].shape == (3,) and actual[name].dtype == np.float32
        np.testing.assert_allclose(
            actual[name], fn(y_true, y_pred, normalize), rtol=1e-5, err_msg=name
        )


def test_tensorflow_matches_numpy_on_real_clips(real_clips):
    for clip, (gt, pred) in real_clips.items():
        for system, guess in (("pred", pred), ("mono_mono", mono_mono(gt))):
            expected = metrics.evaluate_clip_numpy(gt, guess)
            actual = _tf_values(gt[None], guess[None])
            for name in metrics.METRIC_NAMES:
                np.testing.assert_allclose(
                    actual[name][0], expected[name], rtol=1e-5, err_msg=f"{clip} {system} {name}"
                )


def test_mono2binaural_beats_mono_mono_on_every_real_clip(real_clips):
    for clip, (gt, pred) in real_clips.items():
        scores = metrics.evaluate_clip_numpy(gt, pred)
        baseline = metrics.evaluate_clip_numpy(gt, mono_mono(gt))
        for name in ("stft", "env", "wav", "amp"):
            assert scores[name] < baseline[name], (clip, name, scores[name], baseline[name])
        assert scores["snr"] > baseline["snr"], (clip, scores["snr"], baseline["snr"])
        # In the published range (whole-split means; demo1 is a quiet clip, so smaller).
        assert 0.05 < baseline["stft"] < 2.0 and 3.0 < baseline["snr"] < 9.0


def test_identical_signals_give_zero_distance_and_the_snr_ceiling():
    y_true, _ = _pair()
    for values in (
        metrics.evaluate_clip_numpy(y_true[0], y_true[0]),
        {k: v[0] for k, v in _tf_values(y_true, y_true).items()},
    ):
        for name in DISTANCES:
            assert values[name] == 0.0, name
        assert values["snr"] == pytest.approx(metrics.SNR_LIMIT_DB)


def test_snr_edge_cases_are_finite():
    y_true, y_pred = _pair(batch=1)
    silent_left = y_true.copy()
    silent_left[..., 0] = 0.0
    # Left: silent truth, silent prediction (perfect, +100 dB); right: perfect (+100 dB).
    assert metrics.snr_numpy(silent_left, silent_left)[0] == pytest.approx(100.0)
    # Left: silent truth, non-zero prediction (-100 dB); right: perfect (+100 dB).
    mixed = silent_left.copy()
    mixed[..., 0] = y_pred[..., 0]
    assert metrics.snr_numpy(silent_left, mixed)[0] == pytest.approx(0.0, abs=1e-9)
    assert metrics.snr(silent_left, mixed).numpy()[0] == pytest.approx(0.0, abs=1e-4)
    zeros = np.zeros_like(y_true)
    for values in (
        metrics.evaluate_clip_numpy(zeros[0], zeros[0], normalize=True),
        metrics.evaluate_clip_numpy(y_true[0], zeros[0], normalize=True),
    ):
        assert all(np.isfinite(list(values.values())))


def test_wav_of_a_constant_offset():
    y_true, _ = _pair(batch=1)
    offset = 0.1  # per channel: 1e3 * 0.1^2 = 10; summed over two channels: 20
    assert metrics.wave_distance_numpy(y_true, y_true + offset)[0] == pytest.approx(20.0)
    assert metrics.wave_distance(y_true, y_true + offset).numpy()[0] == pytest.approx(20.0)


def test_snr_of_a_known_scaled_error():
    y_true, _ = _pair(batch=1)
    y_pred = 0.9 * y_true  # error = 0.1 y: 10 log10(1 / 0.01) = 20 dB in each channel
    assert metrics.snr_numpy(y_true, y_pred)[0] == pytest.approx(20.0)
    assert metrics.snr(y_true, y_pred).numpy()[0] == pytest.approx(20.0, rel=1e-5)


def test_phase_of_a_negated_signal_is_pi_squared_per_channel():
    y_true, _ = _pair(batch=1)
    spectrum = metrics.stft_numpy(np.swapaxes(y_true, -1, -2))
    assert np.all(np.abs(spectrum) > 0)  # every bin is non-zero, so every bin is off by pi
    expected = 2 * math.pi**2
    assert metrics.phase_distance_numpy(y_true, -y_true)[0] == pytest.approx(expected)
    assert metrics.phase_distance(y_true, -y_true).numpy()[0] == pytest.approx(expected)
    # A scaled copy has the same phase and no amplitude-independent error.
    assert metrics.phase_distance_numpy(y_true, 0.5 * y_true)[0] == pytest.approx(0.0, abs=1e-20)


def test_wrap_phase_lands_in_minus_pi_to_pi():
    angles = np.array([0.0, math.pi, -math.pi, 1.5 * math.pi, -1.5 * math.pi, 2 * math.pi])
    expected = [0.0, math.pi, math.pi, -0.5 * math.pi, 0.5 * math.pi, 0.0]
    np.testing.assert_allclose(metrics.wrap_phase_numpy(angles), expected, atol=1e-12)
    np.testing.assert_allclose(metrics.wrap_phase(angles).numpy(), expected, atol=1e-12)


def test_envelope_distance_of_two_tone_levels():
    # A tone with a whole number of periods has a flat Hilbert envelope equal to its amplitude.
    t = np.arange(4000) / 16000
    tone = np.sin(2 * np.pi * 400 * t)
    y_true = np.stack([tone, tone], axis=-1)
    # |1 - 0.5| in each channel, summed over two channels.
    assert metrics.envelope_distance_numpy(y_true, 0.5 * y_true) == pytest.approx(1.0)
    assert metrics.envelope_distance(y_true[None], 0.5 * y_true[None]).numpy()[0] == (
        pytest.approx(1.0, rel=1e-6)
    )


def test_normalize_divides_by_the_peak_of_each_signal():
    y_true, y_pred = _pair()
    raw = metrics.evaluate_clip_numpy(y_true[0], y_pred[0], normalize=True)
    rescaled = metrics.evaluate_clip_numpy(3 * y_true[0], 0.2 * y_pred[0], normalize=True)
    for name in metrics.METRIC_NAMES:
        assert rescaled[name] == pytest.approx(raw[name], rel=1e-6), name  # float32 inputs
    assert metrics.evaluate_clip_numpy(y_true[0], 2 * y_true[0], normalize=True)["wav"] == 0


def test_bad_shapes_and_short_clips_are_errors():
    y_true, y_pred = _pair()
    with pytest.raises(ValueError, match="y_true and y_pred"):
        metrics.evaluate_clip_numpy(y_true[0], y_pred[0, :-1])
    with pytest.raises(ValueError, match=r"\[batch, time, 2\]"):
        metrics.snr(y_true[..., :1], y_pred[..., :1])
    with pytest.raises(ValueError, match="at least 257 samples"):
        metrics.evaluate_clip_numpy(y_true[0, :256], y_pred[0, :256])


def test_tensorflow_metrics_run_in_a_graph_with_unknown_length():
    y_true, y_pred = _pair(batch=2, num_samples=3000)
    spec = tf.TensorSpec([None, None, 2], tf.float32)
    graph_fn = tf.function(metrics.evaluate_batch, input_signature=[spec, spec])
    actual = graph_fn(y_true, y_pred)
    for name, fn in metrics.NUMPY_METRICS.items():
        np.testing.assert_allclose(actual[name].numpy(), fn(y_true, y_pred), rtol=1e-5)


def test_keras_metric_averages_over_batches():
    y_true, y_pred = _pair(batch=4, num_samples=3000)
    for name in metrics.METRIC_NAMES:
        metric = metrics.BinauralMetric(name)
        metric.update_state(y_true[:1], y_pred[:1])
        metric.update_state(y_true[1:], y_pred[1:])
        expected = np.mean(metrics.NUMPY_METRICS[name](y_true, y_pred))
        assert float(metric.result()) == pytest.approx(expected, rel=1e-5), name
        metric.reset_state()
        assert float(metric.result()) == 0.0


def test_keras_metric_config_round_trip_and_use_in_evaluate():
    metric = metrics.BinauralMetric("env", normalize=True, name="env_norm")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert isinstance(clone, metrics.BinauralMetric)
    assert (clone.metric, clone.normalize, clone.name) == ("env", True, "env_norm")
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.BinauralMetric("sdr")

    y_true, _ = _pair(batch=4, num_samples=2000)
    inputs = keras.Input([None, 2])
    model = keras.Model(inputs, keras.layers.Rescaling(0.5)(inputs))
    model.compile(loss="mse", metrics=metrics.binaural_metrics())
    results = model.evaluate(y_true, y_true, batch_size=3, verbose=0, return_dict=True)
    expected = metrics.NUMPY_METRICS["snr"](y_true, 0.5 * y_true)
    assert results["snr"] == pytest.approx(np.mean(expected), rel=1e-5)  # 6.02 dB
    assert set(metrics.METRIC_NAMES) <= set(results)
