"""The six FAIR-Play binaural quality metrics: STFT, ENV, WAV, AMP, PHA and SNR (supp. Eq. 4-9).

Each metric exists twice, and the tests hold the two together:
- `*_numpy`: the reference, numpy/scipy in float64, on one clip `[time, 2]` or a batch
  `[batch, time, 2]`. `evaluate_clip_numpy` gives all six for one clip.
- the TensorFlow version of the same name without the suffix: batched, `[batch, time, 2]` in,
  `[batch]` per-clip values out, graph-safe (unknown batch and time are fine), for
  `model.evaluate` and `tf.data`. `BinauralMetric` averages one of them over batches in Keras.

Definitions (SPEC section 6; y the ground truth, ŷ the prediction, c in {left, right}, S_c and
Ŝ_c their STFTs; per clip, the per-channel values are summed over c):
- STFT (supp. Eq. 4): mean over frequency, frames and {real, imaginary} of (S_c - Ŝ_c)^2.
- ENV  (supp. Eq. 5): sqrt(mean over time of (|hilbert(y_c)| - |hilbert(ŷ_c)|)^2).
- WAV  (supp. Eq. 6): 1e3 * mean over time of (y_c - ŷ_c)^2.
- AMP  (supp. Eq. 7): mean over frequency and frames of (|S_c| - |Ŝ_c|)^2.
- PHA  (supp. Eq. 8): mean over frequency and frames of wrap(∠S_c - ∠Ŝ_c)^2, with the
  difference wrapped to (-pi, pi]. ∠0 = 0 (the atan2 convention), so a bin that is exactly zero
  in one signal counts the other signal's whole phase.
- SNR  (supp. Eq. 9), in dB: 1/2 sum_c 10 log10(sum_t y_c^2 / sum_t (y_c - ŷ_c)^2). Each
  channel's term is clipped to [-100, 100] dB, so every value is finite and can be averaged:
  a perfect channel (zero error, including silent y and ŷ) scores +100 dB, a silent
  ground-truth channel with a non-zero prediction -100 dB. A perfect prediction therefore has
  SNR = 100 dB. 100 dB is beyond what 16-bit audio resolves (about 96 dB), so a real
  prediction never reaches the clip.
Lower is better for all but SNR.

STFT: n_fft 512, hop 160 (10 ms), a 400-sample (25 ms) periodic Hann window zero-padded on both
sides to 512, frames centred on t * 160 by reflect-padding the signal by 256 samples on each
side: librosa.stft(y, n_fft=512, hop_length=160, win_length=400, window="hann", center=True,
pad_mode="reflect"), as in the original FAIR-Play evaluation. A clip needs at least 257 samples
for the reflect padding. Signals are at 16 kHz and, by default, not rescaled; `normalize=True`
first divides each clip's signal (both channels together) by its peak |sample|, like the
original evaluation's normalisation flag (an all-zero signal stays zero).

The TensorFlow versions compute in float64 inside, whatever the input dtype: the phase of a
near-silent STFT bin is rounding noise in float32, which would make PHA depend on the backend.
They return float32.

The localization evaluation's pair metrics (supp. Eq. 10-11) are in
`keras_binaural.localization_metrics`.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import scipy.signal
import tensorflow as tf

FFT_LENGTH = 512
HOP_SAMPLES = 160
WINDOW_SAMPLES = 400
# Reflect padding of the centred STFT: half an FFT on each side.
PAD_SAMPLES = FFT_LENGTH // 2
MIN_SAMPLES = PAD_SAMPLES + 1
WAV_SCALE = 1e3
SNR_LIMIT_DB = 100.0
# A peak below this counts as silence in `normalize=True`.
_MIN_PEAK = 1e-20

METRIC_NAMES = ("stft", "env", "wav", "amp", "pha", "snr")
HIGHER_IS_BETTER = {
    "stft": False,
    "env": False,
    "wav": False,
    "amp": False,
    "pha": False,
    "snr": True,
}

_COMPUTE_DTYPE = tf.float64


def stft_window_numpy() -> np.ndarray:
    """The analysis window: periodic Hann of 400 samples, centred in 512 zeros. `[512]` float64."""
    n = np.arange(WINDOW_SAMPLES)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / WINDOW_SAMPLES)
    left = (FFT_LENGTH - WINDOW_SAMPLES) // 2
    return np.pad(hann, (left, FFT_LENGTH - WINDOW_SAMPLES - left))


# ================================ numpy reference ================================


def stft_numpy(waveform: np.ndarray) -> np.ndarray:
    """Centred STFT with reflect padding (see the module docstring), in float64.

    Args:
      waveform: `[..., time]` at 16 kHz, time >= 257.

    Returns:
      `[..., 1 + time // 160, 257]` complex128: frames, then frequency bins 0..8 kHz.
      The transpose of librosa.stft's `[..., 257, frames]`.
    """
    waveform = np.asarray(waveform, np.float64)
    _check_length_numpy(waveform.shape[-1])
    pad = [(0, 0)] * (waveform.ndim - 1) + [(PAD_SAMPLES, PAD_SAMPLES)]
    padded = np.pad(waveform, pad, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, FFT_LENGTH, axis=-1)
    frames = frames[..., ::HOP_SAMPLES, :]
    return np.fft.rfft(frames * stft_window_numpy(), axis=-1)


def envelope_numpy(waveform: np.ndarray) -> np.ndarray:
    """Hilbert envelope |y + j H(y)| over the whole signal (scipy.signal.hilbert).

    Args:
      waveform: `[..., time]`.

    Returns:
      `[..., time]` float64.
    """
    return np.abs(scipy.signal.hilbert(np.asarray(waveform, np.float64), axis=-1))


def stft_distance_numpy(y_true, y_pred, normalize: bool = False) -> np.ndarray:
    """STFT distance (supp. Eq. 4). Args and returns as `evaluate_clip_numpy`'s values."""
    true_spec, pred_spec = _channel_spectra_numpy(y_true, y_pred, normalize)
    error = true_spec - pred_spec
    # Mean over {real, imaginary} of the squares = half the squared modulus.
    per_channel = np.mean(np.real(error) ** 2 + np.imag(error) ** 2, axis=(-2, -1)) / 2
    return np.sum(per_channel, axis=-1)


def envelope_distance_numpy(y_true, y_pred, normalize: bool = False) -> np.ndarray:
    """ENV distance (supp. Eq. 5): sum_c of the RMS difference of the Hilbert envelopes."""
    y_true, y_pred = _channels_first_numpy(y_true, y_pred, normalize)
    error = envelope_numpy(y_true) - envelope_numpy(y_pred)
    return np.sum(np.sqrt(np.mean(error**2, axis=-1)), axis=-1)


def wave_distance_numpy(y_true, y_pred, normalize: bool = False) -> np.ndarray:
    """WAV (supp. Eq. 6): 1e3 * sum_c mean over time of (y_c - ŷ_c)^2."""
    y_true, y_pred = _channels_first_numpy(y_true, y_pred, normalize)
    return WAV_SCALE * np.sum(np.mean((y_true - y_pred) ** 2, axis=-1), axis=-1)


def amplitude_distance_numpy(y_true, y_pred, normalize: bool = False) -> np.ndarray:
    """AMP (supp. Eq. 7): sum_c mean over STFT bins of (|S_c| - |Ŝ_c|)^2."""
    true_spec, pred_spec = _channel_spectra_numpy(y_true, y_pred, normalize)
    error = np.abs(true_spec) - np.abs(pred_spec)
    return np.sum(np.mean(error**2, axis=(-2, -1)), axis=-1)


def phase_distance_numpy(y_true, y_pred, normalize: bool = False) -> np.ndarray:
    """PHA (supp. Eq. 8): sum_c mean over STFT bins of wrap(∠S_c - ∠Ŝ_c)^2, in rad^2."""
    true_spec, pred_spec = _channel_spectra_numpy(y_true, y_pred, normalize)
    error = wrap_phase_numpy(np.angle(true_spec) - np.angle(pred_spec))
    return np.sum(np.mean(error**2, axis=(-2, -1)), axis=-1)


def snr_numpy(y_true, y_pred, normalize: bool = False) -> np.ndarray:
    """SNR (supp. Eq. 9) in dB, each channel's term clipped to [-100, 100] dB (module docstring)."""
    y_true, y_pred = _channels_first_numpy(y_true, y_pred, normalize)
    signal_energy = np.sum(y_true**2, axis=-1)
    error_energy = np.sum((y_true - y_pred) ** 2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        error_to_signal = np.where(error_energy == 0, 0.0, error_energy / signal_energy)
    per_channel = -10 * np.log10(
        np.clip(error_to_signal, 10 ** (-SNR_LIMIT_DB / 10), 10 ** (SNR_LIMIT_DB / 10))
    )
    return np.sum(per_channel, axis=-1) / 2


def wrap_phase_numpy(phase: np.ndarray) -> np.ndarray:
    """Wraps angles in radians to (-pi, pi]."""
    return np.pi - np.mod(np.pi - phase, 2 * np.pi)


def evaluate_clip_numpy(y_true, y_pred, normalize: bool = False) -> dict[str, float]:
    """All six metrics of one clip, with the numpy reference.

    Args:
      y_true: `[time, 2]` ground-truth binaural audio (left, right) at 16 kHz, time >= 257.
      y_pred: `[time, 2]` predicted binaural audio, the same shape.
      normalize: divide each signal by its peak |sample| first.

    Returns:
      {"stft", "env", "wav", "amp", "pha", "snr"} -> float (SNR in dB, PHA in rad^2).
    """
    return {name: float(fn(y_true, y_pred, normalize)) for name, fn in NUMPY_METRICS.items()}


def diff_correlation_numpy(y_true, y_pred) -> float:
    """Pearson correlation of the predicted and the true differential (L - R) / 2 of a clip.

    Not a FAIR-Play metric: it says whether a model learnt the direction at all (1: the true d
    up to scale, 0: mono-mono or no direction, < 0: the wrong side), which the six metrics,
    dominated by the mono part, do not show.

    Args:
      y_true, y_pred: `[time, 2]` binaural audio (left, right).
    """
    true, predicted = (np.asarray(x, np.float64) for x in (y_true, y_pred))
    true, predicted = true[:, 0] - true[:, 1], predicted[:, 0] - predicted[:, 1]
    true, predicted = true - true.mean(), predicted - predicted.mean()
    denominator = np.linalg.norm(true) * np.linalg.norm(predicted)
    return float(np.dot(true, predicted) / max(denominator, 1e-12))


NUMPY_METRICS = {
    "stft": stft_distance_numpy,
    "env": envelope_distance_numpy,
    "wav": wave_distance_numpy,
    "amp": amplitude_distance_numpy,
    "pha": phase_distance_numpy,
    "snr": snr_numpy,
}


def _check_length_numpy(num_samples: int) -> None:
    if num_samples < MIN_SAMPLES:
        raise ValueError(
            f"the FAIR-Play metrics need at least {MIN_SAMPLES} samples per clip (the STFT's "
            f"reflect padding), got {num_samples}"
        )


def _channels_first_numpy(y_true, y_pred, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Checks `[..., time, 2]` pairs and returns both as float64 `[..., 2, time]`."""
    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64)
    if y_true.shape != y_pred.shape or y_true.ndim < 2 or y_true.shape[-1] != 2:
        raise ValueError(
            f"y_true and y_pred must both be [..., time, 2], got {y_true.shape} and {y_pred.shape}"
        )
    _check_length_numpy(y_true.shape[-2])
    if normalize:
        y_true, y_pred = _peak_normalize_numpy(y_true), _peak_normalize_numpy(y_pred)
    return np.swapaxes(y_true, -1, -2), np.swapaxes(y_pred, -1, -2)


def _peak_normalize_numpy(audio: np.ndarray) -> np.ndarray:
    peak = np.max(np.abs(audio), axis=(-2, -1), keepdims=True)
    return audio / np.maximum(peak, _MIN_PEAK)


def _channel_spectra_numpy(y_true, y_pred, normalize: bool) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _channels_first_numpy(y_true, y_pred, normalize)
    return stft_numpy(y_true), stft_numpy(y_pred)


# ================================ TensorFlow ================================


def stft(waveform) -> tf.Tensor:
    """Centred STFT with reflect padding in TensorFlow; the same numbers as `stft_numpy`.

    Args:
      waveform: `[..., time]` float32 or float64 at 16 kHz, time >= 257, known rank.

    Returns:
      `[..., 1 + time // 160, 257]` complex64 (float32 in) or complex128 (float64 in).
    """
    waveform = tf.convert_to_tensor(waveform)
    if not waveform.dtype.is_floating:
        waveform = tf.cast(waveform, tf.float32)
    rank = waveform.shape.rank
    paddings = [[0, 0]] * (rank - 1) + [[PAD_SAMPLES, PAD_SAMPLES]]
    padded = tf.pad(waveform, paddings, mode="REFLECT")
    frames = tf.signal.frame(padded, FFT_LENGTH, HOP_SAMPLES)
    window = tf.constant(stft_window_numpy(), waveform.dtype)
    return tf.signal.rfft(frames * window, [FFT_LENGTH])


def envelope(waveform) -> tf.Tensor:
    """Hilbert envelope via the FFT analytic signal; the same numbers as `envelope_numpy`.

    The analytic signal keeps bin 0 (and bin time/2 for even time), doubles the positive
    frequencies and drops the negative ones.

    Args:
      waveform: `[..., time]` float32 or float64.

    Returns:
      `[..., time]` of the input's dtype.
    """
    waveform = tf.convert_to_tensor(waveform)
    num_samples = tf.shape(waveform)[-1]
    spectrum = tf.signal.fft(tf.complex(waveform, tf.zeros_like(waveform)))
    twice_bin = 2 * tf.range(num_samples)
    weights = tf.where(
        tf.logical_or(twice_bin == 0, twice_bin == num_samples),
        1.0,
        tf.where(twice_bin < num_samples, 2.0, 0.0),
    )
    analytic = tf.signal.ifft(spectrum * tf.cast(weights, spectrum.dtype))
    return tf.abs(analytic)


def stft_distance(y_true, y_pred, normalize: bool = False) -> tf.Tensor:
    """STFT distance (supp. Eq. 4) per clip.

    Args:
      y_true: `[batch, time, 2]` ground-truth binaural audio (left, right) at 16 kHz.
      y_pred: `[batch, time, 2]` predicted binaural audio.
      normalize: divide each clip's signal by its peak |sample| first.

    Returns:
      `[batch]` float32. The other TF metrics take the same arguments.
    """
    true_spec, pred_spec = _channel_spectra(y_true, y_pred, normalize)
    error = true_spec - pred_spec
    # Mean over {real, imaginary} of the squares = half the squared modulus.
    squares = tf.square(tf.math.real(error)) + tf.square(tf.math.imag(error))
    return _sum_channels(tf.reduce_mean(squares, axis=[-2, -1]) / 2)


def envelope_distance(y_true, y_pred, normalize: bool = False) -> tf.Tensor:
    """ENV distance (supp. Eq. 5) per clip: `[batch, time, 2]` pair -> `[batch]` float32."""
    y_true, y_pred = _channels_first(y_true, y_pred, normalize)
    error = envelope(y_true) - envelope(y_pred)
    return _sum_channels(tf.sqrt(tf.reduce_mean(tf.square(error), axis=-1)))


def wave_distance(y_true, y_pred, normalize: bool = False) -> tf.Tensor:
    """WAV (supp. Eq. 6) per clip: `[batch, time, 2]` pair -> `[batch]` float32."""
    y_true, y_pred = _channels_first(y_true, y_pred, normalize)
    return _sum_channels(WAV_SCALE * tf.reduce_mean(tf.square(y_true - y_pred), axis=-1))


def amplitude_distance(y_true, y_pred, normalize: bool = False) -> tf.Tensor:
    """AMP (supp. Eq. 7) per clip: `[batch, time, 2]` pair -> `[batch]` float32."""
    true_spec, pred_spec = _channel_spectra(y_true, y_pred, normalize)
    error = tf.abs(true_spec) - tf.abs(pred_spec)
    return _sum_channels(tf.reduce_mean(tf.square(error), axis=[-2, -1]))


def phase_distance(y_true, y_pred, normalize: bool = False) -> tf.Tensor:
    """PHA (supp. Eq. 8) per clip, in rad^2: `[batch, time, 2]` pair -> `[batch]` float32."""
    true_spec, pred_spec = _channel_spectra(y_true, y_pred, normalize)
    error = wrap_phase(tf.math.angle(true_spec) - tf.math.angle(pred_spec))
    return _sum_channels(tf.reduce_mean(tf.square(error), axis=[-2, -1]))


def snr(y_true, y_pred, normalize: bool = False) -> tf.Tensor:
    """SNR (supp. Eq. 9) per clip in dB, each channel clipped to [-100, 100] dB: -> `[batch]`."""
    y_true, y_pred = _channels_first(y_true, y_pred, normalize)
    signal_energy = tf.reduce_sum(tf.square(y_true), axis=-1)
    error_energy = tf.reduce_sum(tf.square(y_true - y_pred), axis=-1)
    safe_signal = tf.where(error_energy == 0, tf.ones_like(signal_energy), signal_energy)
    # error / 0 = inf (silent ground truth) is wanted here: it clips to -100 dB.
    error_to_signal = error_energy / safe_signal
    limit = 10.0 ** (SNR_LIMIT_DB / 10)
    per_channel = -10.0 * _log10(tf.clip_by_value(error_to_signal, 1 / limit, limit))
    return _sum_channels(per_channel) / 2


def wrap_phase(phase) -> tf.Tensor:
    """Wraps angles in radians to (-pi, pi]."""
    return math.pi - tf.math.floormod(math.pi - phase, 2 * math.pi)


def evaluate_batch(y_true, y_pred, normalize: bool = False) -> dict[str, tf.Tensor]:
    """All six metrics per clip in TensorFlow.

    Args:
      y_true: `[batch, time, 2]` ground-truth binaural audio (left, right) at 16 kHz, time >= 257.
      y_pred: `[batch, time, 2]` predicted binaural audio.
      normalize: divide each clip's signal by its peak |sample| first.

    Returns:
      {"stft", "env", "wav", "amp", "pha", "snr"} -> `[batch]` float32.
    """
    return {name: fn(y_true, y_pred, normalize) for name, fn in TF_METRICS.items()}


TF_METRICS = {
    "stft": stft_distance,
    "env": envelope_distance,
    "wav": wave_distance,
    "amp": amplitude_distance,
    "pha": phase_distance,
    "snr": snr,
}


def _log10(x: tf.Tensor) -> tf.Tensor:
    return tf.math.log(x) / tf.math.log(tf.constant(10.0, x.dtype))


def _channels_first(y_true, y_pred, normalize: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """Checks two `[batch, time, 2]` tensors and returns them as float64 `[batch, 2, time]`."""
    y_true = tf.cast(tf.convert_to_tensor(y_true), _COMPUTE_DTYPE)
    y_pred = tf.cast(tf.convert_to_tensor(y_pred), _COMPUTE_DTYPE)
    for tensor in (y_true, y_pred):
        if tensor.shape.rank != 3 or tensor.shape[-1] not in (2, None):
            raise ValueError(f"binaural audio must be [batch, time, 2], got shape {tensor.shape}")
    if not y_true.shape.is_compatible_with(y_pred.shape):
        raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} and {y_pred.shape}")
    if y_true.shape[1] is not None:
        _check_length_numpy(y_true.shape[1])
    if normalize:
        y_true, y_pred = _peak_normalize(y_true), _peak_normalize(y_pred)
    return tf.transpose(y_true, [0, 2, 1]), tf.transpose(y_pred, [0, 2, 1])


def _peak_normalize(audio: tf.Tensor) -> tf.Tensor:
    peak = tf.reduce_max(tf.abs(audio), axis=[1, 2], keepdims=True)
    return audio / tf.maximum(peak, _MIN_PEAK)


def _channel_spectra(y_true, y_pred, normalize: bool) -> tuple[tf.Tensor, tf.Tensor]:
    y_true, y_pred = _channels_first(y_true, y_pred, normalize)
    return stft(y_true), stft(y_pred)


def _sum_channels(per_channel: tf.Tensor) -> tf.Tensor:
    """`[batch, 2]` float64 -> `[batch]` float32."""
    return tf.cast(tf.reduce_sum(per_channel, axis=-1), tf.float32)


# ================================ Keras ================================


@keras.saving.register_keras_serializable(package="keras_binaural")
class BinauralMetric(keras.metrics.Mean):
    """One FAIR-Play metric, averaged over every clip seen (a mean of per-clip values).

    Args:
      metric: one of "stft", "env", "wav", "amp", "pha", "snr" (see the module docstring).
      normalize: divide each clip's signal by its peak |sample| first.
      name: the name Keras logs; defaults to `metric`.
      dtype: the dtype of the result.

    Call arguments (`update_state`):
      y_true: `[batch, time, 2]` ground-truth binaural audio (left, right) at 16 kHz, time >= 257.
      y_pred: `[batch, time, 2]` predicted binaural audio.
      sample_weight: optional `[batch]` weight per clip.

    Example:
      model.compile(..., metrics=keras_binaural.metrics.binaural_metrics())

    Reference: supp. Eq. 4-9.
    """

    def __init__(
        self, metric: str = "stft", normalize: bool = False, name: str | None = None, dtype=None
    ):
        if metric not in TF_METRICS:
            raise ValueError(f"unknown metric {metric!r}, expected one of {METRIC_NAMES}")
        super().__init__(name=name or metric, dtype=dtype)
        self.metric = metric
        self.normalize = normalize

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = TF_METRICS[self.metric](y_true, y_pred, self.normalize)
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self) -> dict:
        return {**super().get_config(), "metric": self.metric, "normalize": self.normalize}


def binaural_metrics(normalize: bool = False) -> list[BinauralMetric]:
    """The six FAIR-Play metrics as Keras metrics, in the order of `METRIC_NAMES`."""
    return [BinauralMetric(name, normalize=normalize) for name in METRIC_NAMES]
