"""Whole-clip generation helpers: input checks, per-frame audio patches, windows, overlap-add.

The upmixers (`keras_binaural.models.upmixer.Upmixer`, `keras_binaural.models.clup.CLUP`)
generate the differential d of a whole clip from its mono m and its 10 fps frames. These plain
functions do the bookkeeping around the diffusion sampler, so they can be tested without a model:

- `check_generation_inputs`: turns user input into `mono [batch, time]` and
  `frames [batch, num_frames, H, W, 3]` float32, or raises `GenerationInputError` naming what is
  wrong (stereo "mono", empty audio, NaN/Inf, frames whose duration does not match the audio's).
- `frame_patches`: the VGGish log-mel patch centred on every frame (frame k, 0-based, shows
  samples [k hop, (k + 1) hop) and sits at (k + 0.5) hop), the audio half of the guidance.
- `plan_windows` / `crossfade_weights`: clips longer than a window are cut into windows that
  overlap by `overlap_samples` and are overlap-added with linear cross-fades whose weights sum to
  one; every window starts on a frame boundary, so its guidance frames are a slice of the clip's.

Timing convention (SPEC section 2): frame k (1-based) shows [(k - 1) / 10, k / 10) s; at 16 kHz
one frame is `hop_samples` = 1600 samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import keras
import numpy as np
import tensorflow as tf

from keras_binaural.audio import frontend
from keras_binaural.conventions import FRAMES_PER_SECOND, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME


class GenerationInputError(ValueError):
    """Input that the upmixer cannot generate from; the message says what is wrong and how to fix it."""


# === Input checks ===


def check_generation_inputs(
    mono,
    frames=None,
    *,
    needs_frames: bool = True,
    hop_samples: int = SAMPLES_PER_FRAME,
    max_frame_mismatch: float = 1.0,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Checks and converts generation inputs.

    Args:
      mono: `[batch, time]` (or `[batch, time, 1]`) mono at 16 kHz in [-1, 1], numpy or tensor.
      frames: `[batch, num_frames, H, W, 3]` RGB frames at 10 fps covering the clip, or
        `[batch, H, W, 3]` / `[batch, 1, H, W, 3]`: one frame for the whole clip (then the
        duration check does not apply). float in [0, 1], or uint8 (divided by 255). None for an
        audio-only model.
      needs_frames: whether the model needs frames (a visually guided upmixer).
      hop_samples: audio samples per frame (1600 = 0.1 s at 16 kHz).
      max_frame_mismatch: the largest allowed |num_frames - time / hop_samples|, in frames.

    Returns:
      (mono `[batch, time]` float32, frames `[batch, num_frames, H, W, 3]` float32 or None).

    Raises:
      GenerationInputError: naming the problem: mono with two channels, an empty clip or batch,
        NaN or Inf in the audio or the frames, frames outside [0, 1], frames missing for a guided
        model, a batch-size mismatch, or frames and audio of inconsistent duration.
    """
    mono = np.asarray(keras.ops.convert_to_numpy(mono) if keras.ops.is_tensor(mono) else mono)
    if mono.ndim == 3 and mono.shape[-1] == 1:
        mono = mono[..., 0]
    if mono.ndim == 3 and mono.shape[-1] == 2:
        raise GenerationInputError(
            f"mono has 2 channels (shape {mono.shape}): the upmixer takes mono audio "
            "[batch, time]. Downmix stereo first: mono = (left + right) / 2 "
            "(keras_binaural.audio.to_mono_diff(binaural)[0])."
        )
    if mono.ndim != 2:
        hint = " Add a batch axis: mono[None]." if mono.ndim == 1 else ""
        raise GenerationInputError(
            f"mono must be [batch, time] float32 at 16 kHz; got shape {mono.shape}.{hint}"
        )
    if not np.issubdtype(mono.dtype, np.floating):
        raise GenerationInputError(
            f"mono must be float audio in [-1, 1]; got dtype {mono.dtype} (convert integer PCM "
            "with keras_binaural.audio.load_audio, or divide by 32768)."
        )
    if mono.shape[0] == 0 or mono.shape[1] == 0:
        raise GenerationInputError(
            f"mono is empty (shape {mono.shape}): there is no audio to upmix."
        )
    mono = mono.astype(np.float32)
    bad = ~np.isfinite(mono)
    if bad.any():
        clip = int(np.argmax(bad.any(axis=1)))
        raise GenerationInputError(
            f"mono contains NaN or Inf ({int(bad.sum())} samples; first in batch item {clip}, "
            f"sample {int(np.argmax(bad[clip]))})."
        )

    if frames is None:
        if needs_frames:
            raise GenerationInputError(
                "this upmixer is visually guided and needs frames [batch, num_frames, H, W, 3] "
                "(10 fps) or [batch, H, W, 3]; got None."
            )
        return mono, None
    if not needs_frames:
        return mono, None  # an audio-only model ignores frames
    frames = np.asarray(
        keras.ops.convert_to_numpy(frames) if keras.ops.is_tensor(frames) else frames
    )
    if frames.ndim == 4:
        frames = frames[:, None]
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise GenerationInputError(
            f"frames must be [batch, num_frames, height, width, 3] RGB (or [batch, H, W, 3] for "
            f"one frame per clip); got shape {frames.shape}."
        )
    if frames.dtype == np.uint8:
        frames = frames.astype(np.float32) / 255.0
    elif not np.issubdtype(frames.dtype, np.floating):
        raise GenerationInputError(
            f"frames must be float RGB in [0, 1] or uint8; got dtype {frames.dtype}."
        )
    frames = frames.astype(np.float32)
    if frames.shape[0] != mono.shape[0]:
        raise GenerationInputError(
            f"frames and mono have different batch sizes: {frames.shape[0]} and {mono.shape[0]}."
        )
    if frames.shape[1] == 0:
        raise GenerationInputError(f"frames is empty (shape {frames.shape}).")
    if not np.isfinite(frames).all():
        raise GenerationInputError("frames contain NaN or Inf.")
    low, high = float(frames.min()), float(frames.max())
    if low < -1e-3 or high > 1.0 + 1e-3:
        raise GenerationInputError(
            f"frames must be RGB in [0, 1]; got values in [{low:g}, {high:g}] "
            "(divide 0-255 frames by 255)."
        )
    num_frames, num_samples = frames.shape[1], mono.shape[1]
    expected = num_samples / hop_samples
    if num_frames > 1 and abs(num_frames - expected) > max_frame_mismatch:
        raise GenerationInputError(
            f"frames and audio have inconsistent durations: {num_frames} frames at "
            f"{FRAMES_PER_SECOND} fps ({num_frames * hop_samples / SAMPLE_RATE_HZ:g} s) but "
            f"{num_samples} audio samples ({num_samples / SAMPLE_RATE_HZ:g} s at 16 kHz, i.e. "
            f"{expected:g} frames). Pass the frames that cover the audio (frame k shows "
            "[(k-1)/10, k/10) s), or one frame per clip."
        )
    return mono, np.clip(frames, 0.0, 1.0)


# === Per-frame audio ===


def frame_patches(mono, num_frames: int, hop_samples: int = SAMPLES_PER_FRAME) -> tf.Tensor:
    """The VGGish log-mel patch centred on each frame (zero-padded at the clip's edges).

    Frame k (0-based) sits at sample (k + 0.5) * hop_samples; its patch covers
    [centre - 7800, centre + 7800), the same convention as `frontend.centred_patch` and the
    training chunks' `mono_patch`.

    Args:
      mono: `[batch, time]` float32 at 16 kHz.
      num_frames: number of frames F (>= 1); frames past the audio's end see zeros.
      hop_samples: samples per frame.

    Returns:
      `[batch, F, 96, 64]` float32.
    """
    mono = tf.convert_to_tensor(mono, tf.float32)
    half = frontend.PATCH_SAMPLES // 2
    extra = tf.maximum(0, num_frames * hop_samples - tf.shape(mono)[1])
    padded = tf.pad(mono, [[0, 0], [half, half + extra]])
    # Sample c of the clip sits at c + half of `padded`; the patch of centre c starts there.
    first = hop_samples // 2
    segments = tf.signal.frame(padded[:, first:], frontend.PATCH_SAMPLES, hop_samples)
    return frontend.log_mel_spectrogram(segments[:, :num_frames])


# === Windows and overlap-add ===


def plan_windows(
    num_samples: int,
    window_samples: int,
    overlap_samples: int,
    hop_samples: int = SAMPLES_PER_FRAME,
) -> list[tuple[int, int]]:
    """Windows (start, stop) covering [0, num_samples), overlapping by `overlap_samples`.

    One window when the clip fits. Otherwise windows of `window_samples` (the last one may be
    shorter) whose starts are multiples of `hop_samples`, each overlapping the previous by
    `overlap_samples`.

    Args:
      num_samples: clip length (> 0).
      window_samples: window length, a positive multiple of `hop_samples`.
      overlap_samples: overlap, a multiple of `hop_samples`, in [0, window_samples / 2].

    Returns:
      list of (start, stop), stop - start <= window_samples.
    """
    if window_samples <= 0 or window_samples % hop_samples:
        raise ValueError(
            f"window_samples must be a positive multiple of {hop_samples}; got {window_samples}."
        )
    if overlap_samples < 0 or overlap_samples % hop_samples or 2 * overlap_samples > window_samples:
        raise ValueError(
            f"overlap_samples must be a multiple of {hop_samples} in [0, window / 2]; got "
            f"{overlap_samples} for a window of {window_samples}."
        )
    if num_samples <= window_samples:
        return [(0, num_samples)]
    step = window_samples - overlap_samples
    windows, start = [], 0
    while True:
        stop = min(start + window_samples, num_samples)
        windows.append((start, stop))
        if stop == num_samples:
            return windows
        start += step


def crossfade_weights(windows: list[tuple[int, int]], overlap_samples: int) -> list[np.ndarray]:
    """Per-window weights `[stop - start]` for overlap-adding; they sum to 1 at every sample.

    Inside an overlap of two windows the earlier one fades out and the later one fades in
    linearly (weights (j + 0.5) / overlap), so each window's edges, where it saw zero padding
    instead of the neighbouring audio, contribute little.
    """
    weights = []
    for index, (start, stop) in enumerate(windows):
        weight = np.ones(stop - start, np.float32)
        if index > 0:
            overlap = windows[index - 1][1] - start
            weight[:overlap] = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if index + 1 < len(windows):
            overlap = stop - windows[index + 1][0]
            weight[-overlap:] = 1.0 - (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        weights.append(weight)
    return weights


def padded_length(num_samples: int, multiple: int) -> int:
    """`num_samples` rounded up to a multiple of `multiple` (limits the shapes XLA compiles)."""
    return int(math.ceil(num_samples / multiple) * multiple)


def window_seed(seed: int, index: int) -> int:
    """An int32 sampler seed for window `index` of a clip generated with `seed`."""
    return int((int(seed) * 1_000_003 + index) % (2**31 - 1))


def progress(items: Iterable, total: int, enabled: bool) -> Iterator:
    """Yields `items`, showing a `keras.utils.Progbar` of `total` steps when `enabled`."""
    bar = keras.utils.Progbar(total, unit_name="window") if enabled else None
    for done, item in enumerate(items, start=1):
        yield item
        if bar is not None:
            bar.update(done)
