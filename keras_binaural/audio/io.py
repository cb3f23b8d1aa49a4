"""Audio I/O: decode WAV, FLAC, OGG and MP3 to float32 at 16 kHz, write WAV atomically.

Decoding uses tensorflow-io's audio readers, so `read_audio` also runs inside a `tf.function`.
`load_audio` is the eager entry point for tools and user code: it checks the file and the samples
first and raises `AudioError` naming the file and the problem. `decode_wav` decodes 16-bit PCM
or 32-bit float WAV bytes without any reader state: it is the one for parallel `tf.data` maps.

Channel order is always (left, right); mono m = (L + R) / 2, differential d = (L - R) / 2 (SPEC Eq. 3).
"""

from __future__ import annotations

import dataclasses
import io as io_lib
import math
import os
import re
import struct

import numpy as np
import soundfile
import tensorflow as tf
from tensorflow_io.python.ops import core_ops

from keras_binaural import files
from keras_binaural.conventions import SAMPLE_RATE_HZ

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")

# Resampler: windowed-sinc interpolation, zero phase (no delay), Kaiser window.
_RESAMPLE_HALF_TAPS = 32
_RESAMPLE_KAISER_BETA = 8.6
_RESAMPLE_ROLLOFF = 0.94  # cutoff as a fraction of the lower Nyquist frequency


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file and what is wrong."""


def resample(waveform: tf.Tensor, rate_in_hz, rate_out_hz) -> tf.Tensor:
    """Resamples along the first axis by band-limited (windowed-sinc) interpolation.

    Output sample n sits at input time n * rate_in / rate_out; it is a Kaiser-windowed sinc
    interpolation over 64 neighbouring input samples, low-passed at 0.94 of the lower Nyquist
    frequency. The filter is symmetric, so the output has no delay (unlike a causal resampler).

    Args:
      waveform: `[time]` or `[time, channels]` float32.
      rate_in_hz, rate_out_hz: sample rates, Python numbers or scalar tensors.

    Returns:
      `[ceil(time * rate_out / rate_in)]` or `[..., channels]` float32.
    """
    waveform = tf.convert_to_tensor(waveform, tf.float32)
    rate_in = tf.cast(rate_in_hz, tf.float64)
    rate_out = tf.cast(rate_out_hz, tf.float64)
    num_in = tf.shape(waveform, out_type=tf.int64)[0]
    num_out = tf.cast(tf.math.ceil(tf.cast(num_in, tf.float64) * rate_out / rate_in), tf.int64)
    cutoff = _RESAMPLE_ROLLOFF * tf.minimum(tf.constant(1.0, tf.float64), rate_out / rate_in)  # cycles per input sample * 2

    positions = tf.cast(tf.range(num_out), tf.float64) * rate_in / rate_out
    base = tf.floor(positions)
    offsets = tf.range(-_RESAMPLE_HALF_TAPS + 1, _RESAMPLE_HALF_TAPS + 1, dtype=tf.float64)
    taps = base[:, None] + offsets[None, :]  # [num_out, 2K] input sample indices
    distance = positions[:, None] - taps  # in input samples
    window_arg = distance / _RESAMPLE_HALF_TAPS
    window = tf.math.bessel_i0(
        _RESAMPLE_KAISER_BETA * tf.sqrt(tf.nn.relu(1.0 - tf.square(window_arg)))
    ) / tf.math.bessel_i0(tf.constant(_RESAMPLE_KAISER_BETA, tf.float64))
    x = math.pi * cutoff * distance
    sinc = tf.where(tf.abs(x) < 1e-9, tf.ones_like(x), tf.sin(x) / tf.where(x == 0, tf.ones_like(x), x))
    weights = tf.cast(cutoff * sinc * window, tf.float32)

    # Samples outside the signal are zeros.
    index = tf.cast(taps, tf.int64)
    valid = tf.logical_and(index >= 0, index < num_in)
    gathered = tf.gather(waveform, tf.clip_by_value(index, 0, tf.maximum(num_in - 1, 0)))
    mask = tf.cast(valid, tf.float32)
    if waveform.shape.rank == 2:
        weights, mask = weights[..., None], mask[..., None]
    return tf.reduce_sum(gathered * weights * mask, axis=1)


def _read_native(path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Decodes a whole file to float32 `[time, channels]` in [-1, 1] and its rate (int64)."""
    resource = core_ops.io_audio_readable_init(path)
    _, dtype_enum, rate = core_ops.io_audio_readable_spec(resource)

    # The reader's output dtype must be known when the graph is built, so read with each
    # dtype a file can hold and keep the branch that matches (a mismatch aborts the process).
    def reader(dtype, scale, offset=0.0):
        def read():
            raw = core_ops.io_audio_readable_read(resource, 0, -1, dtype=dtype)
            return (tf.cast(raw, tf.float32) - offset) / scale

        return read

    branches = {
        tf.int16.as_datatype_enum: reader(tf.int16, 32768.0),
        tf.int32.as_datatype_enum: reader(tf.int32, 2147483648.0),
        tf.uint8.as_datatype_enum: reader(tf.uint8, 128.0, 128.0),
        tf.float32.as_datatype_enum: reader(tf.float32, 1.0),
    }
    keys = sorted(branches)
    index = tf.argmax(tf.cast(tf.equal(tf.cast(dtype_enum, tf.int64), keys), tf.int32))
    audio = tf.switch_case(tf.cast(index, tf.int32), [branches[k] for k in keys])
    audio.set_shape([None, None])
    return audio, rate


def _to_rate(audio, rate, sample_rate_hz):
    return tf.cond(
        tf.equal(tf.cast(rate, tf.int64), sample_rate_hz),
        lambda: audio,
        lambda: resample(audio, rate, sample_rate_hz),
    )


def little_endian(contents, offset, num_bytes):
    """The unsigned little-endian integer of `num_bytes` bytes at `offset` of a string tensor."""
    data = tf.io.decode_raw(tf.strings.substr(contents, offset, num_bytes), tf.uint8)
    weights = tf.constant([1, 2**8, 2**16, 2**24][:num_bytes], tf.int64)
    return tf.reduce_sum(tf.cast(data, tf.int64) * weights)


def _chunk_offset(contents, chunk_id: str):
    """Byte offset of the first `chunk_id` ("fmt ", "data") in WAV bytes (their length if none)."""
    return tf.strings.length(tf.strings.split(contents, chunk_id, maxsplit=1)[0])


def wav_header(contents) -> dict:
    """The "fmt " fields of WAV bytes: format tag (1 PCM, 3 float), channels, rate, bits."""
    fmt = _chunk_offset(contents, "fmt ")
    return {
        "format": little_endian(contents, fmt + 8, 2),
        "channels": little_endian(contents, fmt + 10, 2),
        "rate": little_endian(contents, fmt + 12, 4),
        "bits": little_endian(contents, fmt + 22, 2),
    }


def decode_wav(contents, sample_rate_hz: int = SAMPLE_RATE_HZ, name="WAV") -> tf.Tensor:
    """Decodes 16-bit PCM or 32-bit float WAV bytes to float32 `[time, channels]`, in the graph.

    Stateless, so it is safe in a parallel `tf.data` map. `read_audio` is not: tensorflow-io's
    reader keeps one resource per graph node, which concurrent calls of the same map share (5 of
    200 parallel reads returned another file's audio in a stress test).

    Args:
      contents: scalar string tensor, the file's bytes.
      sample_rate_hz: output rate; other rates are resampled.
      name: what the error names (the file's path) when the format is another one.
    """
    header = wav_header(contents)
    is_float = tf.logical_and(tf.equal(header["format"], 3), tf.equal(header["bits"], 32))
    is_pcm16 = tf.logical_and(tf.equal(header["format"], 1), tf.equal(header["bits"], 16))
    check = tf.debugging.Assert(
        tf.logical_or(is_float, is_pcm16), ["not a 16-bit PCM or 32-bit float WAV:", name]
    )

    def float32():
        data = _chunk_offset(contents, "data")
        size = little_endian(contents, data + 4, 4)
        samples = tf.strings.substr(contents, data + 8, tf.cast(size, tf.int32))
        samples = tf.io.decode_raw(samples, tf.float32)
        return tf.reshape(samples, [-1, tf.cast(header["channels"], tf.int32)])

    with tf.control_dependencies([check]):
        audio = tf.cond(is_float, float32, lambda: tf.audio.decode_wav(contents)[0])
    audio.set_shape([None, None])
    return _to_rate(audio, header["rate"], sample_rate_hz)


def read_audio(path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> tf.Tensor:
    """Reads an audio file to float32 `[time, channels]` at `sample_rate_hz`; works in graph mode.

    No checks beyond the decoder's own errors: use `load_audio` where a clear message matters.
    Not for parallel `tf.data` maps (see `decode_wav`, which is).

    Args:
      path: scalar string tensor or Python string; WAV, FLAC, OGG or MP3.
      sample_rate_hz: output rate; any input rate is resampled (see `resample`).
    """
    audio, rate = _read_native(tf.convert_to_tensor(path, tf.string))
    return _to_rate(audio, rate, sample_rate_hz)


def load_audio(
    path: str | os.PathLike,
    channels: int | None = None,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> np.ndarray:
    """Loads an audio file, checked, as float32 `[time, channels]` at `sample_rate_hz`.

    Args:
      path: a WAV, FLAC, OGG or MP3 file.
      channels: None keeps the file's channels; 1 wants mono (a stereo file is downmixed by the
        mean of its channels, m = (L + R) / 2); 2 wants (left, right) and rejects a mono file.
      sample_rate_hz: output rate; other rates are resampled.

    Raises:
      AudioError: missing, unreadable, truncated (a WAV: checked against its header first) or
        empty file, NaN/Inf samples, or a channel count that does not fit `channels`. The
        message starts with the path.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such file")
    if not path.lower().endswith(AUDIO_EXTENSIONS):
        raise AudioError(f"{path}: not an audio file (expected one of {', '.join(AUDIO_EXTENSIONS)})")
    if path.lower().endswith(".wav"):
        read_wav_header(path)  # a truncated WAV is named as such, with both durations
    try:
        audio = read_audio(path, sample_rate_hz).numpy()
    except (tf.errors.OpError, ValueError) as error:
        message = getattr(error, "message", str(error)).split("[Op:")[0]
        message = re.sub(r"\{\{.*?\}\}", "", message).strip()
        raise AudioError(f"{path}: cannot decode audio (unreadable or truncated file): {message}")
    if audio.shape[0] == 0 or audio.shape[1] == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{path}: the audio holds NaN or Inf samples")
    return _fit_channels(audio, channels, path)


def _fit_channels(audio: np.ndarray, channels: int | None, path: str) -> np.ndarray:
    have = audio.shape[1]
    if channels is None or channels == have:
        return audio
    if channels == 1:
        return audio.mean(axis=1, keepdims=True)
    if channels == 2 and have == 1:
        raise AudioError(f"{path}: binaural (2-channel) audio wanted, but the file is mono")
    raise AudioError(f"{path}: {channels}-channel audio wanted, but the file has {have} channels")


def encode_wav(
    audio,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    subtype: str = "PCM_16",
    path: str = "audio",
) -> bytes:
    """The bytes of a WAV file of `[time]` or `[time, channels]` audio in [-1, 1].

    Encoded in memory, so that writing them is a plain file write whose errors (a full disk)
    are `OSError`s with their errno (libsndfile reports them as "System error.").

    Args:
      subtype: a libsndfile WAV subtype: "PCM_16" (default), "PCM_24", "FLOAT"; PCM clips to
        [-1, 1].
      path: named in the errors.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim not in (1, 2) or audio.shape[0] == 0:
        raise AudioError(f"{path}: audio to write must be [time] or [time, channels], got {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{path}: audio to write holds NaN or Inf samples")
    if subtype.startswith("PCM"):
        audio = np.clip(audio, -1.0, 1.0)
    buffer = io_lib.BytesIO()
    soundfile.write(buffer, audio, sample_rate_hz, subtype=subtype, format="WAV")
    return buffer.getvalue()


def write_wav(
    path: str | os.PathLike,
    audio,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    subtype: str = "PCM_16",
) -> None:
    """Writes `[time]` or `[time, channels]` audio in [-1, 1] to a WAV file, atomically.

    The samples go to a temporary file in the same folder, which is renamed over `path` only
    when complete, so a reader never sees a half-written file (`keras_binaural.files`). Inside a
    `files.transaction`, write `encode_wav(...)` to the transaction's temporary path instead.

    Args:
      subtype: a libsndfile WAV subtype: "PCM_16" (default), "PCM_24", "FLOAT".
    """
    path = os.fspath(path)
    files.write_bytes(path, encode_wav(audio, sample_rate_hz, subtype, path))


@dataclasses.dataclass(frozen=True)
class WavHeader:
    """What a WAV file's header says: format tag (1 PCM, 3 float, 0xFFFE extensible),
    channels, sample rate, bits per sample, and the size of its samples in bytes."""

    format_tag: int
    channels: int
    rate_hz: int
    bits: int
    data_bytes: int

    @property
    def seconds(self) -> float:
        frame_bytes = max(1, self.channels * self.bits // 8)
        return self.data_bytes / frame_bytes / max(1, self.rate_hz)


def read_wav_header(path: str | os.PathLike) -> WavHeader:
    """Reads a WAV file's header (no samples) and checks that the file holds all it promises.

    Fast (a few small reads), so a whole dataset is checked in seconds before training.

    Raises:
      AudioError: naming the file: missing, not a RIFF/WAVE file, no "fmt " or "data" chunk, or
        truncated (fewer bytes of samples than the header says; the message gives both
        durations).
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as stream:
            riff = stream.read(12)
            if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
                raise AudioError(f"{path}: not a WAV file (no RIFF/WAVE header)")
            fmt, offset = None, 12
            while offset + 8 <= size:
                stream.seek(offset)
                chunk_id, chunk_bytes = struct.unpack("<4sI", stream.read(8))
                if chunk_id == b"fmt ":
                    fmt = struct.unpack("<HHIIHH", stream.read(16).ljust(16, b"\0"))
                elif chunk_id == b"data":
                    break
                offset += 8 + chunk_bytes + (chunk_bytes & 1)  # chunks are word-aligned
            else:
                raise AudioError(f"{path}: no 'data' chunk (a truncated or broken WAV file)")
    except OSError as error:
        raise AudioError(f"{path}: cannot read ({error.strerror or error})") from None
    if fmt is None:
        raise AudioError(f"{path}: no 'fmt ' chunk before the samples (a broken WAV file)")
    header = WavHeader(fmt[0], fmt[1], fmt[2], fmt[5], chunk_bytes)
    present = size - (offset + 8)
    # 0 and 0xFFFFFFFF are what streaming writers leave when they cannot seek back.
    if chunk_bytes not in (0, 0xFFFFFFFF) and present < chunk_bytes:
        have = dataclasses.replace(header, data_bytes=present)
        raise AudioError(
            f"{path}: truncated WAV: its header says {header.seconds:.2f} s of audio, the file "
            f"holds {have.seconds:.2f} s ({present} of {chunk_bytes} bytes); copy or export it "
            "again")
    return header


def to_mono_diff(binaural):
    """Splits `[..., time, 2]` (left, right) into mono m = (L+R)/2 and differential d = (L-R)/2.

    Returns:
      (mono, diff), each `[..., time]`. Works on numpy arrays and tensors (SPEC Eq. 3).
    """
    left, right = binaural[..., 0], binaural[..., 1]
    return (left + right) / 2, (left - right) / 2


def from_mono_diff(mono, diff):
    """Rebuilds binaural `[..., time, 2]` from mono and differential: L = m + d, R = m - d (Eq. 3)."""
    if isinstance(mono, np.ndarray) and isinstance(diff, np.ndarray):
        return np.stack([mono + diff, mono - diff], axis=-1)
    return tf.stack([mono + diff, mono - diff], axis=-1)
