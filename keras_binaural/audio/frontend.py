"""The VGGish log-mel frontend in TensorFlow: waveform at 16 kHz -> `[num_patches, 96, 64]`.

VGGish's own parameters (SPEC section 3): 25 ms periodic-Hann window (400 samples), 10 ms hop
(160), 512-point FFT magnitude, 64 HTK-mel bands from 125 to 7500 Hz with triangles built in the
mel domain and the DC bin dropped, log(mel + 0.01), non-overlapping patches of 96 frames (0.96 s).
Frames are taken without padding, as in the released frontend: a patch spans 15,600 samples.

All functions run in graph mode and accept any leading batch axes.
"""

from __future__ import annotations

import tensorflow as tf

from keras_binaural.conventions import SAMPLE_RATE_HZ

WINDOW_SAMPLES = 400
HOP_SAMPLES = 160
FFT_LENGTH = 512
NUM_MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
PATCH_FRAMES = 96
# Samples that one patch of 96 frames covers: 95 hops plus one window.
PATCH_SAMPLES = (PATCH_FRAMES - 1) * HOP_SAMPLES + WINDOW_SAMPLES


def log_mel_spectrogram(waveform) -> tf.Tensor:
    """VGGish log-mel spectrogram.

    Args:
      waveform: `[..., time]` float32 at 16 kHz, time >= 400.

    Returns:
      `[..., 1 + (time - 400) // 160, 64]` float32, log(mel magnitude + 0.01).
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    frames = tf.signal.frame(waveform, WINDOW_SAMPLES, HOP_SAMPLES)
    window = tf.signal.hann_window(WINDOW_SAMPLES, periodic=True)
    magnitude = tf.abs(tf.signal.rfft(frames * window, [FFT_LENGTH]))
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=NUM_MEL_BANDS,
        num_spectrogram_bins=FFT_LENGTH // 2 + 1,
        sample_rate=SAMPLE_RATE_HZ,
        lower_edge_hertz=MEL_MIN_HZ,
        upper_edge_hertz=MEL_MAX_HZ,
    )
    return tf.math.log(tf.tensordot(magnitude, mel_matrix, 1) + LOG_OFFSET)


def log_mel_patches(waveform) -> tf.Tensor:
    """Splits a waveform into VGGish's non-overlapping 0.96 s log-mel patches.

    A waveform shorter than one patch (15,600 samples) is zero-padded at the end to one patch;
    a tail shorter than a patch is dropped, as in the released VGGish.

    Args:
      waveform: `[..., time]` float32 at 16 kHz.

    Returns:
      `[..., num_patches, 96, 64]` float32, num_patches = max(1, 1 + (frames - 96) // 96).
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    missing = tf.maximum(0, PATCH_SAMPLES - tf.shape(waveform)[-1])
    rank = tf.rank(waveform)
    paddings = tf.concat([tf.zeros([rank - 1, 2], tf.int32), [[0, missing]]], axis=0)
    waveform = tf.pad(waveform, paddings)
    log_mel = log_mel_spectrogram(waveform)
    return tf.signal.frame(log_mel, PATCH_FRAMES, PATCH_FRAMES, axis=-2)


def centred_patch(waveform, centre_sample) -> tf.Tensor:
    """The 0.96 s log-mel patch centred on a sample (zero-padded at the clip's edges).

    A training chunk [t0, t1) uses centre_sample = (t0 + t1) // 2.

    Args:
      waveform: `[..., time]` float32 at 16 kHz.
      centre_sample: scalar int, the sample the patch is centred on.

    Returns:
      `[..., 96, 64]` float32.
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    half = PATCH_SAMPLES // 2
    rank = tf.rank(waveform)
    paddings = tf.concat([tf.zeros([rank - 1, 2], tf.int32), [[half, half]]], axis=0)
    padded = tf.pad(waveform, paddings)
    # Sample c of the waveform sits at c + half of the padded one; the patch starts half earlier.
    start = tf.cast(centre_sample, tf.int32)
    segment = padded[..., start : start + PATCH_SAMPLES]
    return log_mel_spectrogram(segment)


def context_offset(chunk_samples: int) -> int:
    """Where a chunk starts inside the patch-long context centred on it (`PATCH_SAMPLES`,
    15,600 samples): the training chunk's place in its `binaural_context`."""
    return PATCH_SAMPLES // 2 - chunk_samples // 2
