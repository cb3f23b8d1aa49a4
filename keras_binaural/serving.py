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
frame for the whole clip), as the model's `generate` checks. Every request is checked in the graph
before anything else runs (`check_request`): the ranks, the frame size, the same number of clips
in the audio and the frames, and frames that cover the audio; a request that breaks one, or holds
NaN or Inf, fails with a message in the request's terms (an InvalidArgument status in TF Serving),
e.g. "mono: want [batch, time] float32 at 16 kHz ...; got shape [32000]". The result
is what `model.generate(mono, frames, sampler, seed)` returns, windows and all
(`keras_binaural.generation.generate_in_graph`); the map is the localizer's map of each frame
with the 0.96 s mono patch centred on it. The WAV signature decodes in the graph with
`tf.audio.decode_wav` (16-bit PCM WAV, any
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
complete; the next export of that version removes what a killed one left. The export folder is
checked first (writable, room for the variables); a full disk is a `files.OutputError` naming
the folder, with nothing written. An existing version is refused unless `overwrite=True`.

Reference: SPEC section 7; TF Serving's model layout and REST/gRPC Predict API.
"""

from __future__ import annotations

import math
import os
import re

import keras
import tensorflow as tf

from keras_binaural import files, generation
from keras_binaural.audio.io import resample
from keras_binaural.conventions import (
    FRAMES_PER_SECOND,
    SAMPLE_RATE_HZ,
    SAMPLERS,
    SAMPLES_PER_FRAME,
)

SERVING_SIGNATURE = "serving_default"
WAV_SIGNATURE = "binauralize_wav"
METADATA_PATH = os.path.join("assets.extra", "keras_binaural.json")


class ExportError(ValueError):
    """An export that cannot be done; the message names the argument and what is wrong."""


# === In-graph audio decoding ===


def decode_wav_mono(wav_bytes: tf.Tensor, sample_rate_hz: int = SAMPLE_RATE_HZ) -> tf.Tensor:
    """A WAV file's bytes (scalar string) -> mono `[time]` float32 at `sample_rate_hz`.

    16-bit PCM WAV (what `tf.audio.decode_wav` reads), any channel count (mean of the channels)
    and any sample rate (resampled).
    """
    head = tf.strings.substr(wav_bytes + b"\0" * 12, 0, 12)  # padded: a short item is no error
    is_wav = tf.logical_and(tf.strings.substr(head, 0, 4) == "RIFF",
                            tf.strings.substr(head, 8, 4) == "WAVE")
    check = _assert(is_wav, "wav_bytes: an item is not a WAV file (no RIFF/WAVE header); want "
                    "the bytes of a 16-bit PCM WAV file")
    with tf.control_dependencies([check]):
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
    shape = _opaque_shape(wav_bytes)
    rank = _assert(tf.equal(tf.size(shape), 1),
                   "wav_bytes: want [batch] strings, the bytes of one WAV file per clip; got shape",
                   shape)
    with tf.control_dependencies([rank]):
        wav_bytes = tf.identity(wav_bytes)
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
    files.check_output(export_dir, "export_dir", folder=True, error=ExportError)
    path = version_dir(export_dir, model_name, version)
    if os.path.exists(path) and not overwrite:
        raise ExportError(
            f"{path}: version {version} of {model_name} already exists; pass a new version "
            "number or overwrite=True (--overwrite)")
    return path


def _assert(condition: tf.Tensor, message: str, *data: tf.Tensor):
    """`tf.debugging.Assert`: fails with "assertion failed: [message] [data] ..."."""
    return tf.debugging.Assert(condition, [message, *data])


def _opaque_shape(tensor: tf.Tensor) -> tf.Tensor:
    """The shape of `tensor` as the request has it. Through a view without a static shape:
    Grappler folds `tf.shape` of a tensor whose signature fixes the rank into a constant, which
    would turn every rank check into `assert True`."""
    return tf.shape(tf.compat.v1.placeholder_with_default(tensor, shape=None))


def check_request(mono: tf.Tensor, frames: tf.Tensor | None = None,
                  frame_size_wh: tuple[int, int] | None = None, mono_name: str = "mono"):
    """In-graph checks of a request, before any other op sees it; returns (mono, frames).

    A request that breaks them fails with an InvalidArgument status whose message says, in the
    request's terms, what is wrong: mono not [batch, time]; frames not [batch, num_frames, H, W, 3]
    at the exported frame size; a different number of clips in mono and frames; or frames that
    do not cover the audio (ceil(time / 1600) frames, one per 0.1 s, within one; or 1 for the
    whole clip). `mono_name` names the audio (the WAV signature's is decoded from `wav_bytes`).
    """
    mono_shape = _opaque_shape(mono)
    first = [_assert(tf.equal(tf.size(mono_shape), 2),
                     f"{mono_name}: want [batch, time] float32 at 16 kHz (one row per clip; add a "
                     "batch axis for one clip); got shape", mono_shape)]
    if frames is not None:
        width, height = frame_size_wh
        frames_shape = _opaque_shape(frames)
        first.append(_assert(tf.equal(tf.size(frames_shape), 5),
                             f"frames: want [batch, num_frames, {height}, {width}, 3] float32 RGB "
                             "in [0, 1]; got shape", frames_shape))
    with tf.control_dependencies(first):  # the shapes below are read only once the ranks are right
        checks = [_assert(tf.logical_and(mono_shape[0] > 0, mono_shape[1] > 0),
                          f"{mono_name}: empty (no clip or no samples); got shape", mono_shape)]
        if frames is not None:
            num_frames, num_samples = frames_shape[1], mono_shape[1]
            mismatch = tf.abs(tf.cast(num_frames, tf.float32)
                              - tf.cast(num_samples, tf.float32) / SAMPLES_PER_FRAME)
            checks += [
                _assert(tf.reduce_all(tf.equal(frames_shape[2:], [height, width, 3])),
                        f"frames: want [batch, num_frames, {height}, {width}, 3] (the exported "
                        "frame size, RGB); got shape", frames_shape),
                _assert(tf.equal(frames_shape[0], mono_shape[0]),
                        f"frames and {mono_name}: a different number of clips (one row of frames "
                        f"per clip); got frames, {mono_name}:", frames_shape[0], mono_shape[0]),
                _assert(tf.logical_or(tf.equal(num_frames, 1), mismatch <= 1.0),
                        f"frames: want ceil(time / 1600) frames (one per 0.1 s of {mono_name}, "
                        "within one) or 1 for the whole clip; got num_frames, audio samples:",
                        num_frames, num_samples),
            ]
    with tf.control_dependencies(checks):
        return tf.identity(mono), None if frames is None else tf.identity(frames)


def _serving_functions(model, frame_size_wh, sampler: str, seed: int):
    """(name, function, input signature) of the two endpoints."""
    width, height = frame_size_wh
    mono_spec = tf.TensorSpec([None, None], tf.float32, name="mono")
    wav_spec = tf.TensorSpec([None], tf.string, name="wav_bytes")
    frames_spec = tf.TensorSpec([None, None, height, width, 3], tf.float32, name="frames")

    def outputs(mono, frames=None, mono_name="mono"):
        mono, frames = check_request(mono, frames, frame_size_wh, mono_name)
        binaural, maps = generation.generate_in_graph(model, mono, frames, sampler=sampler,
                                                     seed=seed)
        result = {"binaural": binaural}
        if maps is not None:
            result["map"] = maps
        return result

    def from_wav(wav_bytes, frames=None):
        return outputs(decode_wav_batch(wav_bytes), frames, mono_name="wav_bytes")

    if model.localizer is None:  # audio-only: no frames input, no map output
        return [(SERVING_SIGNATURE, outputs, [mono_spec]),
                (WAV_SIGNATURE, from_wav, [wav_spec])]
    return [
        (SERVING_SIGNATURE, lambda mono, frames: outputs(mono, frames), [mono_spec, frames_spec]),
        (WAV_SIGNATURE, from_wav, [wav_spec, frames_spec]),
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
        on (the run's `data.crop_hw`, see `runs.frame_geometry`); ignored audio-only.
      sampler: one of `conventions.SAMPLERS`, fixed at export.
      seed: the sampler's seed, fixed at export (int32).
      overwrite: replace an existing version folder.

    Raises:
      ExportError: bad arguments or an existing version (checked before any work).
    """
    path = check_export_arguments(export_dir, model_name, version, overwrite, sampler)
    try:
        model.check_sampler(sampler)
    except ValueError as error:
        raise ExportError(f"sampler {sampler!r}: {error}") from None
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

    # Room for the variables, float32 (the graph is small beside them).
    parameters = sum(int(math.prod(variable.shape)) for variable in model.weights)
    files.check_output(export_dir, "export_dir", folder=True, error=ExportError,
                       needed_bytes=4 * parameters)
    files.remove_temporaries(os.path.dirname(path), names=[os.path.basename(path)])

    # Not `archive.track(model)`: the endpoints already capture the variables they use, and
    # tracking the model too wrote every variable twice (the Keras wrapper and the tf.Variable
    # under two checkpoint keys: 200 MB instead of 100 MB for CLUP) and added the training-only
    # ones (SSM head). The revived object then has no `.variables` list; serving needs none.
    archive = keras.export.ExportArchive()
    for name, function, signature in _serving_functions(model, (width, height), sampler, seed):
        archive.add_endpoint(name=name, fn=function, input_signature=signature)
    try:
        with files.atomic_directory(path) as temporary:
            archive.write_out(temporary, verbose=False)
            files.write_json(os.path.join(temporary, METADATA_PATH), {
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
    except tf.errors.OpError as cause:  # TensorFlow writes the variables itself (SaveV2)
        full = "No space left" in cause.message
        reason = "No space left on device" if full else " ".join(cause.message.split())[:300]
        hint = "; the disk is full: free space or choose another folder" if full else ""
        raise files.OutputError(f"{path}: cannot write ({reason}){hint}; nothing was written"
                                ) from None
    return path

