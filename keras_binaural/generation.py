"""Whole-clip generation: the one owner of windows, cross-fades, guidance per frame and maps.

The upmixers (`keras_binaural.models.upmixer.Upmixer`, `keras_binaural.models.clup.CLUP`) hold
the network and sample one stretch of audio (`Upmixer.sample_window`); this module turns that
into binaural audio for whole clips of any length, eagerly (`generate`, behind
`Upmixer.generate`) and as graph ops (`generate_in_graph`, behind the serving signatures of
`keras_binaural.serving`). Both compute the same thing (tested equal):

- `check_generation_inputs`: turns user input into `mono [batch, time]` and
  `frames [batch, num_frames, H, W, 3]` float32, or raises `GenerationInputError` naming what is
  wrong (stereo "mono", empty audio, NaN/Inf, frames whose duration does not match the audio's).
- `frame_patches`: the VGGish log-mel patch centred on every frame (frame k, 0-based, shows
  samples [k hop, (k + 1) hop) and sits at (k + 0.5) hop), the audio half of the guidance.
  The guidance of every frame (`clip_guidance`) and its localization map (`clip_maps`) come
  from `Upmixer.frame_guidance` and `LocalizationModel.frame_outputs`, the one per-frame map.
- `window_sizes`, `plan_windows` / `crossfade_weights` (and their tensor forms `window_plan` /
  `crossfade`): clips longer than `WINDOW_SECONDS` are cut into windows that overlap by
  `OVERLAP_SECONDS` and are overlap-added with linear cross-fades whose weights sum to one;
  every window starts on a frame boundary, so its guidance frames are a slice of the clip's.
  Window k of a clip generated with seed s is sampled with `window_seed(s, k)`.
- Eagerly, `PARALLEL_WINDOWS` windows are sampled at once in threads (one sampler call leaves
  the two cores partly idle between its small kernels; the result is the same) with a progress
  bar over windows.

Timing convention (SPEC section 2): frame k (1-based) shows [(k - 1) / 10, k / 10) s; at 16 kHz
one frame is `hop_samples` = 1600 samples.

Why one module of about 590 lines: it is the single owner of whole-clip generation, and the
eager and the in-graph versions must stay equal (serving is tested against `generate`); side
by side, a change to one is seen next to the other.
"""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Callable, Iterable, Iterator

import keras
import numpy as np
import tensorflow as tf

from keras_binaural.audio import frontend
from keras_binaural.conventions import (
    FRAMES_PER_SECOND,
    SAMPLE_RATE_HZ,
    SAMPLES_PER_FRAME,
)

# `generate`'s defaults, shared by the serving export (`generate_in_graph`).
WINDOW_SECONDS = 5.0  # longest stretch sampled in one pass (the conditioning: layers x time x 2C)
OVERLAP_SECONDS = 0.5  # overlap of consecutive windows, cross-faded
FRAME_BATCH_SIZE = 32  # frames encoded at once for the guidance and the maps (bounds memory)
PARALLEL_WINDOWS = 2  # windows sampled at once in threads: two fill two cores (BENCHMARKS.md)


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


def window_sizes(window_seconds: float, overlap_seconds: float) -> tuple[int, int]:
    """(window, overlap) in samples: whole frames, at least one frame per window, the overlap
    at most half the window."""
    hop = SAMPLES_PER_FRAME
    window = max(hop, round(window_seconds * FRAMES_PER_SECOND) * hop)
    overlap = min(round(overlap_seconds * FRAMES_PER_SECOND) * hop, (window // (2 * hop)) * hop)
    return window, overlap


def window_seed(seed, index):
    """The int32 sampler seed of window `index` of a clip generated with `seed`.

    Python ints give an int; a tensor `seed` or `index` gives an int32 tensor of the same value
    (int64 arithmetic in the graph).
    """
    if tf.is_tensor(seed) or tf.is_tensor(index):
        return tf.cast((tf.cast(seed, tf.int64) * 1_000_003 + tf.cast(index, tf.int64))
                       % (2**31 - 1), tf.int32)
    return int((int(seed) * 1_000_003 + index) % (2**31 - 1))


def progress_bar(items: Iterable, total: int, enabled: bool) -> Iterator:
    """Yields `items`, showing a `keras.utils.Progbar` of `total` steps when `enabled`."""
    bar = keras.utils.Progbar(total, unit_name="window") if enabled else None
    for done, item in enumerate(items, start=1):
        yield item
        if bar is not None:
            bar.update(done)


# === Whole clips, eagerly ===


def _traced(model, kind: str, jit_compile: bool = True):
    """`tf.function`s for eager generation, traced once per model and kind ("guidance" or a
    sampler name) and kept on the model."""
    key = (kind, jit_compile)
    if key not in model._generation_functions:
        if kind == "guidance":
            function = lambda frames, patches: model.frame_guidance(frames, patches)
        else:
            function = lambda mono, guidance, seed: model.sample_window(
                mono, guidance, seed, kind, jit_compile
            )
        model._generation_functions[key] = tf.function(function, reduce_retracing=True)
    return model._generation_functions[key]


def clip_guidance(model, mono, frames, frame_batch_size: int = FRAME_BATCH_SIZE):
    """Guidance of every frame of whole clips, `[batch, num_frames, G]` (None: audio-only).

    Args:
      model: an `Upmixer` or `CLUP`.
      mono: `[batch, time]` float32 at 16 kHz; frames: `[batch, F, H, W, 3]` in [0, 1].
      frame_batch_size: frames encoded per call (bounds memory).
    """
    if model.guidance == "none":
        return None
    batch, num_frames = frames.shape[0], frames.shape[1]
    patches = frame_patches(mono, num_frames)
    patches = tf.reshape(patches, [batch * num_frames, frontend.PATCH_FRAMES,
                                   frontend.NUM_MEL_BANDS])
    flat = tf.reshape(
        tf.convert_to_tensor(frames, tf.float32), [batch * num_frames, *frames.shape[2:]]
    )
    function = _traced(model, "guidance")
    vectors = [
        function(flat[i : i + frame_batch_size], patches[i : i + frame_batch_size])
        for i in range(0, batch * num_frames, frame_batch_size)
    ]
    return tf.reshape(tf.concat(vectors, 0), [batch, num_frames, model.guidance_width])


def clip_maps(localizer, mono: np.ndarray, frames: np.ndarray,
              batch_size: int = FRAME_BATCH_SIZE,
              on_batch: Callable[[int], object] | None = None) -> np.ndarray:
    """The localizer's map of every frame of a clip, with the 0.96 s mono patch centred on the
    frame (what the guidance of `generate` sees).

    Args:
      localizer: a `LocalizationModel` (an upmixer's `localizer`).
      mono: `[time]` float32 at 16 kHz; frames: `[num_frames, H, W, 3]` float32 in [0, 1].
      batch_size: frames per call.
      on_batch: called with the number of frames of each batch done (a progress bar's update).

    Returns:
      `[num_frames, H, W]` float32 >= 0 (OSA: the attention softmax upsampled; baseline: its
      gate).
    """
    patches = frame_patches(mono[None], len(frames))[0]
    maps = []
    for start in range(0, len(frames), batch_size):
        chunk = localizer.localize(frames[start : start + batch_size],
                                   patches[start : start + batch_size])
        maps.append(np.asarray(chunk, np.float32))
        if on_batch is not None:
            on_batch(len(maps[-1]))
    return np.concatenate(maps)


def generate(
    model,
    mono,
    frames=None,
    sampler: str = "fast",
    seed: int = 0,
    window_seconds: float = WINDOW_SECONDS,
    overlap_seconds: float = OVERLAP_SECONDS,
    progress: bool | None = None,
    jit_compile: bool = True,
    frame_batch_size: int = FRAME_BATCH_SIZE,
    parallel_windows: int = PARALLEL_WINDOWS,
) -> np.ndarray:
    """Binaural audio for whole clips of any length: L = m + d̂, R = m - d̂ (Eq. 3).

    Args:
      model: an `Upmixer` or `CLUP` (`Upmixer.generate` calls this).
      mono: `[batch, time]` float32 mono at 16 kHz in [-1, 1] (numpy or tensor).
      frames: `[batch, num_frames, H, W, 3]` RGB in [0, 1] at 10 fps covering the clip
        (frame k shows [(k - 1) / 10, k / 10) s; within one frame of time / 1600 frames),
        or `[batch, H, W, 3]` one frame for the whole clip. Ignored (may be None) for
        `guidance="none"`.
      sampler: one of `conventions.SAMPLERS` (`Upmixer.sampler_schedule`).
      seed: int; the same seed gives the same audio.
      window_seconds: longest stretch generated in one pass (memory: the conditioning holds
        layers x time x 2C values); longer clips are windowed.
      overlap_seconds: overlap of consecutive windows (cross-faded).
      progress: show a progress bar over windows (default: when there is more than one).
      jit_compile: XLA for each residual layer of the sampler (faster on CPU).
      frame_batch_size: frames encoded at once for the guidance.
      parallel_windows: windows sampled at once, in threads (each holds its own
        conditioning in memory); the result does not depend on it.

    Returns:
      `[batch, time, 2]` float32 binaural audio (left, right); (L + R) / 2 equals the mono.

    Raises:
      GenerationInputError: bad input (see `check_generation_inputs`).
    """
    model.check_sampler(sampler)
    hop = SAMPLES_PER_FRAME
    mono, frames = check_generation_inputs(
        mono, frames, needs_frames=model.guidance != "none", hop_samples=hop
    )
    batch, num_samples = mono.shape
    guidance = None
    if frames is not None:
        guidance = clip_guidance(model, mono, frames, frame_batch_size)
        if frames.shape[1] == 1:
            guidance = guidance[:, 0]  # one vector for the whole clip
    window, overlap = window_sizes(window_seconds, overlap_seconds)
    windows = plan_windows(num_samples, window, overlap, hop)
    weights = crossfade_weights(windows, overlap)
    function = _traced(model, sampler, jit_compile)

    def sample(index: int) -> np.ndarray:
        start, stop = windows[index]
        # Pad a window to whole seconds (full windows are whole already when window_seconds
        # is) so that XLA sees few shapes; padded samples are silent and cut off below.
        length = stop - start
        if length != window:
            length = padded_length(length, FRAMES_PER_SECOND * hop)
        segment = np.zeros((batch, length), np.float32)
        segment[:, : stop - start] = mono[:, start:stop]
        segment_guidance = guidance
        if guidance is not None and len(guidance.shape) == 3:
            first, frames_needed = start // hop, math.ceil(length / hop)
            indices = np.minimum(np.arange(first, first + frames_needed), guidance.shape[1] - 1)
            segment_guidance = tf.gather(guidance, indices, axis=1)
        seed_tensor = tf.constant(window_seed(seed, index), tf.int32)
        return np.asarray(function(tf.constant(segment), segment_guidance, seed_tensor))

    diff = np.zeros((batch, num_samples), np.float32)
    show = len(windows) > 1 if progress is None else progress
    # Windows run in parallel threads: one sampler call leaves the cores idle part of the
    # time (between its small per-layer kernels); two fill them (BENCHMARKS.md).
    with concurrent.futures.ThreadPoolExecutor(max(1, parallel_windows)) as pool:
        samples = pool.map(sample, range(len(windows)))
        for index, window_sample in progress_bar(enumerate(samples), len(windows), show):
            start, stop = windows[index]
            diff[:, start:stop] += weights[index][None, :] * window_sample[:, : stop - start]
    return np.stack([mono + diff, mono - diff], axis=-1)


# === Whole clips in the graph (serving) ===


def window_plan(num_samples, window_seconds: float, overlap_seconds: float):
    """`generate`'s windows in the graph: (length, step, count) as tensors, and the overlap.

    One window, padded to whole seconds, when the clip fits in `window_seconds`; otherwise
    windows of `window_seconds` overlapping by `overlap_seconds` (the last one zero-padded).
    """
    window, overlap = window_sizes(window_seconds, overlap_seconds)
    second = FRAMES_PER_SECOND * SAMPLES_PER_FRAME
    whole_seconds = (num_samples + second - 1) // second * second
    single = num_samples <= window
    length = tf.where(single, whole_seconds, window)
    step = tf.where(single, length, window - overlap)
    count = 1 + (tf.maximum(num_samples - length, 0) + step - 1) // step
    return length, step, count, overlap


def crossfade(count, length, overlap: int):
    """`crossfade_weights` of `count` windows of `length` as a `[count, length]` tensor."""
    index = tf.range(length)
    if overlap == 0:
        return tf.ones([count, length])
    ramp = (tf.cast(index, tf.float32) + 0.5) / overlap
    fade_in = tf.where(index < overlap, ramp, 1.0)
    fade_out = tf.where(index >= length - overlap,
                        1.0 - (tf.cast(index - (length - overlap), tf.float32) + 0.5) / overlap,
                        1.0)
    window = tf.range(count)[:, None]
    return (tf.where(window > 0, fade_in[None], 1.0)
            * tf.where(window < count - 1, fade_out[None], 1.0))


def _in_batches(function, inputs, batch_size: int, output_signature):
    """`function` over the first axis of `inputs` (a tuple) in sequential chunks of batch_size."""
    total = tf.shape(inputs[0])[0]
    chunks = (total + batch_size - 1) // batch_size
    padded = [tf.pad(x, [[0, chunks * batch_size - total]] + [[0, 0]] * (x.shape.rank - 1))
              for x in inputs]
    reshaped = [tf.reshape(x, tf.concat([[chunks, batch_size], tf.shape(x)[1:]], 0))
                for x in padded]
    outputs = tf.map_fn(lambda args: function(*args), tuple(reshaped),
                        fn_output_signature=output_signature, parallel_iterations=1)
    return tf.nest.map_structure(
        lambda y: tf.reshape(y, tf.concat([[-1], tf.shape(y)[2:]], 0))[:total], outputs)


def generate_in_graph(model, mono, frames, sampler: str = "fast", seed: int = 0,
                      jit_compile: bool = False, window_seconds: float = WINDOW_SECONDS,
                      overlap_seconds: float = OVERLAP_SECONDS,
                      frame_batch_size: int = FRAME_BATCH_SIZE):
    """`generate` (and the localization maps) for whole clips, as TensorFlow graph ops.

    Computes what `generate(model, mono, frames, sampler, seed)` computes (the same guidance per
    frame, windows, cross-fades, level normalisation and per-window seeds; tested equal) but
    traceable in a `tf.function` with unknown batch size and length, which the eager
    `generate` (numpy bookkeeping, Python loops over windows) is not. Without XLA by default:
    the stock TF Serving binary runs no XLA clusters unless started with
    `--xla_cpu_compilation_enabled=true`.

    Args:
      model: an `Upmixer` or `CLUP`.
      mono: `[batch, time]` float32 at 16 kHz.
      frames: `[batch, num_frames, H, W, 3]` float32 in [0, 1] with static H, W (num_frames
        within one frame of time / 1600); ignored for an audio-only model (may be None).
      window_seconds, overlap_seconds, frame_batch_size: as `generate`.

    Returns:
      (binaural `[batch, time, 2]`, maps `[batch, num_frames, H, W]` or None without a localizer).
    """
    hop = SAMPLES_PER_FRAME
    mono = tf.convert_to_tensor(mono, tf.float32)
    batch, num_samples = tf.shape(mono)[0], tf.shape(mono)[1]
    checks = [
        tf.debugging.assert_positive(num_samples, message="mono: the clip holds no samples"),
        tf.debugging.assert_all_finite(mono, "mono: NaN or Inf samples"),
    ]
    guidance = maps = None
    if model.localizer is not None:
        frames = tf.convert_to_tensor(frames, tf.float32)
        num_frames = tf.shape(frames)[1]
        mismatch = tf.abs(tf.cast(num_frames, tf.float32) - tf.cast(num_samples, tf.float32) / hop)
        checks += [
            tf.debugging.assert_positive(num_frames, message="frames: no frames"),
            tf.debugging.assert_all_finite(frames, "frames: NaN or Inf values"),
            # As generate: one frame per 0.1 s of audio (within one frame), or one for the clip.
            tf.debugging.Assert(
                tf.logical_or(tf.equal(num_frames, 1), mismatch <= 1.0),
                [("frames: need one frame per 0.1 s of audio (num_frames = ceil(time / 1600)) "
                  "or one frame for the whole clip; got num_frames and audio samples"),
                 num_frames, num_samples]),
        ]
        frames = tf.clip_by_value(frames, 0.0, 1.0)
        with tf.control_dependencies(checks):
            patches = frame_patches(mono, num_frames)
        height, width = frames.shape[2], frames.shape[3]
        flat_frames = tf.reshape(frames, [-1, height, width, 3])
        flat_patches = tf.reshape(patches, [-1, patches.shape[-2], patches.shape[-1]])

        def per_frame(frame, patch):
            return model.frame_guidance(frame, patch, return_map=True)

        vectors, heat = _in_batches(
            per_frame, (flat_frames, flat_patches), frame_batch_size,
            (tf.TensorSpec([frame_batch_size, model.guidance_width], tf.float32),
             tf.TensorSpec([frame_batch_size, height, width], tf.float32)))
        guidance = tf.reshape(tf.cast(vectors, tf.float32), [batch, num_frames, -1])
        maps = tf.reshape(tf.cast(heat, tf.float32), [batch, num_frames, height, width])
    else:
        with tf.control_dependencies(checks):
            mono = tf.identity(mono)

    length, step, count, overlap = window_plan(num_samples, window_seconds, overlap_seconds)
    total = (count - 1) * step + length
    padded = tf.pad(mono, [[0, 0], [0, total - num_samples]])

    def one_window(index):
        start = index * step
        segment = padded[:, start : start + length]
        segment.set_shape([None, None])
        window_guidance = None
        if guidance is not None:
            frame_index = tf.minimum(start // hop + tf.range(length // hop), num_frames - 1)
            window_guidance = tf.gather(guidance, frame_index, axis=1)
        return model.sample_window(segment, window_guidance, window_seed(seed, index), sampler,
                                   jit_compile)

    windows = tf.map_fn(one_window, tf.range(count), parallel_iterations=1,
                        fn_output_signature=tf.TensorSpec([None, None], tf.float32))
    weighted = tf.transpose(windows, [1, 0, 2]) * crossfade(count, length, overlap)[None]
    diff = tf.signal.overlap_and_add(weighted, step)[:, :num_samples]
    return tf.stack([mono + diff, mono - diff], axis=-1), maps
