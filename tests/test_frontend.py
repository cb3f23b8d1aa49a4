"""The TensorFlow VGGish frontend against an independent numpy/librosa implementation."""

import librosa
import numpy as np
import pytest
import tensorflow as tf

from keras_binaural.audio import frontend


def _hz_to_htk_mel(hz):
    return 1127.0 * np.log1p(np.asarray(hz) / 700.0)


def reference_log_mel(waveform: np.ndarray) -> np.ndarray:
    """VGGish's log-mel from its published recipe, in numpy and librosa."""
    # librosa centres the 400-sample window in each 512-sample frame: 56 zeros on both sides
    # make its frames cover VGGish's [160 k, 160 k + 400).
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)  # periodic Hann
    padded = np.pad(waveform, (56, 56))
    spectrum = np.abs(
        librosa.stft(padded, n_fft=512, hop_length=160, win_length=400, window=window, center=False)
    ).T  # [frames, 257]
    bin_mel = _hz_to_htk_mel(np.linspace(0, 8000, 257))[:, None]
    edges = np.linspace(_hz_to_htk_mel(125.0), _hz_to_htk_mel(7500.0), 66)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0, np.minimum((bin_mel - lower) / (centre - lower),
                                       (upper - bin_mel) / (upper - centre)))
    weights[0] = 0.0  # VGGish drops the DC bin
    return np.log(spectrum @ weights + 0.01)


@pytest.fixture(scope="module")
def waveform():
    rng = np.random.default_rng(1)
    t = np.arange(16000 * 3) / 16000
    signal = 0.3 * np.sin(2 * np.pi * 523.25 * t) + 0.05 * rng.standard_normal(t.size)
    return signal.astype(np.float32)


def test_log_mel_matches_the_reference(waveform):
    ours = frontend.log_mel_spectrogram(waveform).numpy()
    reference = reference_log_mel(waveform.astype(np.float64))
    assert ours.shape == reference.shape == (1 + (waveform.size - 400) // 160, 64)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_patches_are_non_overlapping_96_frame_blocks(waveform):
    patches = frontend.log_mel_patches(waveform).numpy()
    reference = reference_log_mel(waveform.astype(np.float64))
    assert patches.shape == (reference.shape[0] // 96, 96, 64)
    np.testing.assert_allclose(patches[1], reference[96:192], atol=1e-4)


def test_short_audio_is_padded_to_one_patch_and_batches_work(waveform):
    short = waveform[:5000]
    patch = frontend.log_mel_patches(short).numpy()
    padded = np.concatenate([short, np.zeros(frontend.PATCH_SAMPLES - 5000, np.float32)])
    assert patch.shape == (1, 96, 64)
    np.testing.assert_allclose(patch[0], reference_log_mel(padded.astype(np.float64)), atol=1e-4)
    batch = frontend.log_mel_patches(np.stack([waveform, waveform[::-1]])).numpy()
    assert batch.shape == (2, 3, 96, 64)


@pytest.mark.parametrize("centre", [20000, 100, 47900])
def test_centred_patch(waveform, centre):
    patch = tf.function(frontend.centred_patch)(waveform, tf.constant(centre)).numpy()
    half = frontend.PATCH_SAMPLES // 2
    padded = np.pad(waveform, (half, half))
    segment = padded[centre : centre + frontend.PATCH_SAMPLES]
    assert patch.shape == (96, 64)
    np.testing.assert_allclose(patch, reference_log_mel(segment.astype(np.float64)), atol=1e-4)
    # The patch's middle sample is the requested centre: a click there lands in the middle frames.
    click = np.zeros(30000, np.float32)
    click[15000] = 1.0
    energy = frontend.centred_patch(click, 15000).numpy().sum(axis=1)
    assert abs(int(np.argmax(energy)) - 47.5) <= 2
