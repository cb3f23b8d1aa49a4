"""SavedModel export for TensorFlow Serving (SPEC section 7), written with keras.export.ExportArchive.

    export_saved_model(model, "exports", "clup", version=1)   # -> exports/clup/1/

The folder `EXPORT_DIR/<model_name>/<version>/` is what TF Serving watches (it serves the highest
numeric version under `EXPORT_DIR/<model_name>`). Signatures (both take the frames; the model's
frame size is fixed at export, the batch, clip length and frame count are free):

  serving_default   (`SERVING_SIGNATURE`)
    inputs   mono        float32 [batch, time]                 mono at 16 kHz in [-1, 1]
             frames      float32 [batch, num_frames, H, W, 3]  RGB in [0, 1] at 10 fps
    outputs  binaural    float32 [batch, time, 2]              (left, right) at 16 kHz
             map         float32 [batch, num_frames, H, W]     localization map per frame
  binauralize_wav   (`WAV_SIGNATURE`)
    inputs   wav_bytes   string  [batch]                       the bytes of a WAV file each
             frames      float32 [batch, num_frames, H, W, 3]
    outputs  binaural, map as above

num_frames must be ceil(time / 1600) (one frame per 0.1 s of audio; within one frame) or 1 (one
frame for the whole clip), as the model's `generate` checks; a request that breaks this, or holds
NaN or Inf, fails with an error that says so (an InvalidArgument status in TF Serving). The result
is what `model.generate(mono, frames, sampler, seed)` returns, windows and all
(`generate_in_graph`); the map is the localizer's map of each frame with the 0.96 s mono patch
centred on it. The WAV signature decodes in the graph with `tf.audio.decode_wav` (16-bit PCM WAV, any
channel count and sample rate: downmixed by the mean of the channels, m = (L + R) / 2 for stereo,
and resampled to 16 kHz with `keras_binaural.audio.resample`); every WAV of a batch must give the
same number of samples. Only core TensorFlow ops are used, so the stock TF Serving binary runs the
model (no tensorflow-io ops). A model without a localizer (the audio-only upmixer) has no `map`
output.

**Sampling is deterministic:** the diffusion sampler ("fast", BinauralGrad's 6 steps, by default;
"full" for all T steps) and its seed (0 by default) are fixed at export, so the same request always
gets the same answer (responses can be cached, replicas agree). Export another version with
another `seed` for other samples. Both are written, with the frame size and sample rate, to
`assets.extra/keras_binaural.json` in the version folder (TF Serving ignores that folder).

**Atomic:** the SavedModel is written to a hidden temporary folder beside the version folder
(`.<version>.*.tmp`, which TF Serving ignores: not a number) and renamed to `<version>` when
complete. An existing version is refused unless `overwrite=True`.

Reference: SPEC section 7; TF Serving's model layout and REST/gRPC Predict API.
"""

from __future__ import annotations

import inspect
import os
import re

import keras
import tensorflow as tf

from keras_binaural import generation
from keras_binaural.audio.io import resample
from keras_binaural.conventions import (
    FRAMES_PER_SECOND,
    SAMPLE_RATE_HZ,
    SAMPLERS,
    SAMPLES_PER_FRAME,
)
from keras_binaural.files import atomic_directory, write_json

SERVING_SIGNATURE = "serving_default"
WAV_SIGNATURE = "binauralize_wav"
METADATA_PATH = os.path.join("assets.extra", "keras_binaural.json")


class ExportError(ValueError):
    """An export that cannot be done; the message names the argument and what is wrong."""


# === Whole-clip generation in the graph ===


def _generate_defaults(model) -> tuple[float, float, int]:
    """`generate`'s window_seconds, overlap_seconds and frame_batch_size defaults."""
    parameters = inspect.signature(model.generate).parameters
    return (float(parameters["window_seconds"].default),
            float(parameters["overlap_seconds"].default),
            int(parameters["frame_batch_size"].default))


def window_plan(num_samples, window_seconds: float, overlap_seconds: float):
    """`Upmixer.generate`'s windows: (length, step, count) as tensors, and the overlap in samples.

    One window, padded to whole seconds, when the clip fits in `window_seconds`; otherwise
    windows of `window_seconds` overlapping by `overlap_seconds` (the last one zero-padded).
    """
    hop = SAMPLES_PER_FRAME
    window = max(hop, round(window_seconds * 10) * hop)
    overlap = min(round(overlap_seconds * 10) * hop, (window // (2 * hop)) * hop)
    whole_seconds = (num_samples + 10 * hop - 1) // (10 * hop) * (10 * hop)
    single = num_samples <= window
    length = tf.where(single, whole_seconds, window)
    step = tf.where(single, length, window - overlap)
    count = 1 + (tf.maximum(num_samples - length, 0) + step - 1) // step
    return length, step, count, overlap


def crossfade(count, length, overlap: int):
    """`generation.crossfade_weights` of `count` windows of `length` as a `[count, length]` tensor."""
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
                      jit_compile: bool = False, window_seconds: float | None = None,
                      overlap_seconds: float | None = None):
    """`Upmixer.generate` (and the localization maps) for whole clips, as TensorFlow graph ops.

    Computes what `model.generate(mono, frames, sampler, seed)` computes (the same guidance per
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
      window_seconds, overlap_seconds: windowing; None for `generate`'s defaults.

    Returns:
      (binaural `[batch, time, 2]`, maps `[batch, num_frames, H, W]` or None without a localizer).
    """
    hop = SAMPLES_PER_FRAME
    default_window, default_overlap, frame_batch_size = _generate_defaults(model)
    window_seconds = default_window if window_seconds is None else window_seconds
    overlap_seconds = default_overlap if overlap_seconds is None else overlap_seconds
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
            patches = generation.frame_patches(mono, num_frames)
        height, width = frames.shape[2], frames.shape[3]
        flat_frames = tf.reshape(frames, [-1, height, width, 3])
        flat_patches = tf.reshape(patches, [-1, patches.shape[-2], patches.shape[-1]])

        def per_frame(frame, patch):
            return model.frame_guidance(frame, patch, return_map=True)

        vectors, heat = _in_batches(
            per_frame, (flat_frames, flat_patches), frame_batch_size,
            (tf.TensorSpec([frame_batch_size, model.guidance_channels], tf.float32),
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
        # generation.window_seed in int64 arithmetic.
        window_seed = tf.cast((tf.cast(seed, tf.int64) * 1_000_003 + tf.cast(index, tf.int64))
                              % (2**31 - 1), tf.int32)
        return model.sample_window(segment, window_guidance, window_seed, sampler, jit_compile)

    windows = tf.map_fn(one_window, tf.range(count), parallel_iterations=1,
                        fn_output_signature=tf.TensorSpec([None, None], tf.float32))
    weighted = tf.transpose(windows, [1, 0, 2]) * crossfade(count, length, overlap)[None]
    diff = tf.signal.overlap_and_add(weighted, step)[:, :num_samples]
    return tf.stack([mono + diff, mono - diff], axis=-1), maps


# === In-graph audio decoding ===


def decode_wav_mono(wav_bytes: tf.Tensor, sample_rate_hz: int = SAMPLE_RATE_HZ) -> tf.Tensor:
    """A WAV file's bytes (scalar string) -> mono `[time]` float32 at `sample_rate_hz`.

    16-bit PCM WAV (what `tf.audio.decode_wav` reads), any channel count (mean of the channels)
    and any sample rate (resampled).
    """
    audio, rate = tf.audio.decode_wav(wav_bytes)
    mono = tf.reduce_mean(audio, axis=1)
    return tf.cond(
        tf.equal(rate, sample_rate_hz),
        lambda: mono,
        lambda: resample(mono, rate, sample_rate_hz),
    )


def decode_wav_batch(wav_bytes: tf.Tensor, sample_rate_hz: int = SAMPLE_RATE_HZ) -> tf.Tensor:
    """`[batch]` WAV files' bytes -> mono `[batch, time]` float32 at `sample_rate_hz`.

    Raises (at run time) InvalidArgumentError when the files give different numbers of samples.
    """
    decoded = tf.map_fn(
        lambda contents: decode_wav_mono(contents, sample_rate_hz),
        wav_bytes,
        fn_output_signature=tf.RaggedTensorSpec(shape=[None], dtype=tf.float32),
    )
    lengths = decoded.row_lengths()
    check = tf.debugging.assert_equal(
        lengths, tf.fill(tf.shape(lengths), tf.reduce_max(lengths)),
        message="wav_bytes: every WAV of a batch must give the same number of samples at 16 kHz",
    )
    with tf.control_dependencies([check]):
        return tf.identity(decoded.to_tensor())


# === Export ===


def version_dir(export_dir: str | os.PathLike, model_name: str, version: int) -> str:
    """`export_dir/model_name/version`, the folder TF Serving loads a version from."""
    return os.path.join(os.fspath(export_dir), model_name, str(int(version)))


def check_export_arguments(export_dir, model_name: str, version, overwrite: bool = False,
                           sampler: str = "fast") -> str:
    """Checks the arguments of `export_saved_model` before any work; returns the version folder."""
    if not model_name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", model_name):
        raise ExportError(
            f"model_name {model_name!r}: use letters, digits, '_', '.', '-' (it is the folder "
            "name and the name clients call, e.g. clup)")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ExportError(
            f"version {version!r}: must be a positive integer (TF Serving serves the highest "
            "numeric version folder)")
    if sampler not in SAMPLERS:
        raise ExportError(f"sampler {sampler!r}: must be one of {', '.join(SAMPLERS)}")
    export_dir = os.fspath(export_dir)
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        raise ExportError(f"export_dir {export_dir}: exists and is not a folder")
    path = version_dir(export_dir, model_name, version)
    if os.path.exists(path) and not overwrite:
        raise ExportError(
            f"{path}: version {version} of {model_name} already exists; pass a new version "
            "number or overwrite=True (--overwrite)")
    return path


def _serving_functions(model, frame_size_wh, sampler: str, seed: int):
    """(name, function, input signature) of the two endpoints."""
    width, height = frame_size_wh
    mono_spec = tf.TensorSpec([None, None], tf.float32, name="mono")
    wav_spec = tf.TensorSpec([None], tf.string, name="wav_bytes")
    frames_spec = tf.TensorSpec([None, None, height, width, 3], tf.float32, name="frames")

    def outputs(mono, frames=None):
        binaural, maps = generate_in_graph(model, mono, frames, sampler=sampler, seed=seed)
        result = {"binaural": binaural}
        if maps is not None:
            result["map"] = maps
        return result

    if model.localizer is None:  # audio-only: no frames input, no map output
        return [(SERVING_SIGNATURE, outputs, [mono_spec]),
                (WAV_SIGNATURE, lambda wav_bytes: outputs(decode_wav_batch(wav_bytes)),
                 [wav_spec])]
    return [
        (SERVING_SIGNATURE, lambda mono, frames: outputs(mono, frames), [mono_spec, frames_spec]),
        (WAV_SIGNATURE, lambda wav_bytes, frames: outputs(decode_wav_batch(wav_bytes), frames),
         [wav_spec, frames_spec]),
    ]


def export_saved_model(
    model: keras.Model,
    export_dir: str | os.PathLike,
    model_name: str,
    version: int,
    frame_size_wh: tuple[int, int] | None = None,
    sampler: str = "fast",
    seed: int = 0,
    overwrite: bool = False,
) -> str:
    """Exports `model` as a SavedModel for TF Serving; returns `export_dir/model_name/version`.

    Args:
      model: a `CLUP` or `Upmixer` (an audio-only upmixer gets no frames input, no map output).
      export_dir: the base folder; the model goes to `export_dir/model_name/version`.
      model_name: the name clients use (`/v1/models/<model_name>:predict`).
      version: positive integer.
      frame_size_wh: (width, height) of the frames input: the frame size the model was trained
        on (the run's `data.crop_hw`, see `binauralize.frame_geometry`); ignored audio-only.
      sampler: "fast" or "full", fixed at export.
      seed: the sampler's seed, fixed at export (int32).
      overwrite: replace an existing version folder.

    Raises:
      ExportError: bad arguments or an existing version (checked before any work).
    """
    path = check_export_arguments(export_dir, model_name, version, overwrite, sampler)
    if not callable(getattr(model, "generate", None)) or not hasattr(model, "localizer"):
        raise ExportError(f"model: a {type(model).__name__} cannot generate binaural audio "
                          "(want a CLUP model or an Upmixer)")
    guided = model.localizer is not None
    if guided and frame_size_wh is None:
        raise ExportError("frame_size_wh: give the frame size the model was trained on, e.g. "
                          "(128, 128)")
    width, height = (int(v) for v in frame_size_wh) if guided else (0, 0)
    if guided and (width < 32 or height < 32):
        raise ExportError(f"frame_size_wh {width}x{height}: width and height must be >= 32")

    # Not `archive.track(model)`: the endpoints already capture the variables they use, and
    # tracking the model too wrote every variable twice (the Keras wrapper and the tf.Variable
    # under two checkpoint keys: 200 MB instead of 100 MB for CLUP) and added the training-only
    # ones (SSM head). The revived object then has no `.variables` list; serving needs none.
    archive = keras.export.ExportArchive()
    for name, function, signature in _serving_functions(model, (width, height), sampler, seed):
        archive.add_endpoint(name=name, fn=function, input_signature=signature)
    with atomic_directory(path) as temporary:
        archive.write_out(temporary, verbose=False)
        write_json(os.path.join(temporary, METADATA_PATH), {
            "model_class": type(model).__name__,
            "signatures": [SERVING_SIGNATURE, WAV_SIGNATURE],
            "sample_rate_hz": SAMPLE_RATE_HZ,
            "frames_per_second": FRAMES_PER_SECOND,
            "frame_size_wh": [width, height] if guided else None,
            "sampler": sampler,
            "seed": int(seed),
            "inputs": ["mono", "frames"] if guided else ["mono"],
            "outputs": ["binaural", "map"] if guided else ["binaural"],
        })
    return path
