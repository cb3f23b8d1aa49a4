"""Binauralize a user's own clip: a video with sound, or a frames folder plus a mono recording.

The library behind `tools/binauralize.py`:

    model = runs.load_model("runs/demo/model.keras", generates=True)
    geometry = runs.frame_geometry("runs/demo/model.keras")  # the frames the model was trained on
    result = binauralize(model, geometry, video="talk.mp4", output_wav="talk_binaural.wav",
                         output_video="talk_binaural.mp4", overlay=True)

or step by step: `load_video` / `load_frames_dir` -> `run_model` -> `write_outputs`.

**Input** (SPEC section 1). Sound: the first audio stream of the video, or the `audio` file (WAV,
FLAC, MP3, OGG, M4A, ...: anything PyAV decodes), mono or any number of channels, any sample
rate: downmixed by the mean of its channels (m = (L + R) / 2 for stereo) and resampled to 16 kHz
with the package's zero-delay windowed-sinc resampler (`keras_binaural.audio.resample`, run
block by block so that long recordings need little memory; `resample_long`). A video's sound is
placed on the video's clock: an audio stream that starts after time 0 is preceded by silence,
as `iter_frames` holds the first picture back to time 0. Pictures: 10 fps (`iter_frames`: frame
k shows (k - 1) / 10 s), or the sorted PNG/JPEG files of a frames folder (000001.png ..., taken
as 10 fps), prepared as the model's training and evaluation prepared them (`runs.FrameGeometry`:
resize, central crop). The frames decide the clip's duration (they are what the model looks
at): the audio is cut, or padded with silence, to num_frames x 0.1 s, when the two differ by at
most 0.5 s (or 1 % of the clip); a larger difference means the sound is not the pictures' (a
truncated recording, another clip) and is an error naming the flag and both durations. A WAV
given as `audio` is checked against its header first (`read_wav_header`): a truncated file is an
error, not silence.

**Model** (`run_model`): one call of `model.generate` over the whole clip (it cuts clips longer
than its window into overlapping windows and cross-fades them; fast sampler and seed 0 by
default, so a rerun gives the same audio). With `overlay`, the localizer's map of every frame
(`generation.clip_maps`, with the 0.96 s mono patch centred on the frame, as the guidance sees
it).

**Output**: the binaural WAV (16 kHz, 16-bit PCM, (left, right)); optionally the video: the
input video's pictures at their own size and frame rate (for a frames folder: its pictures at
10 fps) re-encoded as H.264 with the binaural audio as the only audio track (AAC, 16 kHz stereo,
`video.mux_audio`); with `overlay`, each picture shows the map of the 10-fps frame on screen as a
heat map (`heatmap_overlay`). Both files are written in one `files.transaction`: under
temporary names, renamed only when both are complete, so a failed run (a full disk) leaves no
output, and the temporaries a killed run leaves are removed by the next `binauralize` of the same
outputs. The output folders are checked before any work (`check_request`), and their free space
for the WAV once the clip's duration is known.

Memory: the frames are held as float32 at the model's frame size (128 x 128: 0.2 MB per frame,
2 MB per second of video) for the one `generate` call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from collections.abc import Callable

import av
import numpy as np
from absl import logging
from PIL import Image

from keras_binaural import files, generation, runs
from keras_binaural.audio.io import AudioError, encode_wav, read_wav_header, resample
from keras_binaural.conventions import (
    FRAMES_PER_SECOND,
    SAMPLE_RATE_HZ,
    SAMPLERS,
    SAMPLES_PER_FRAME,
)
from keras_binaural.data import video as video_io

FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg")
VIDEO_OUTPUT_EXTENSIONS = (".mp4", ".mkv", ".mov")
OUTPUT_AUDIO_BIT_RATE = 128000  # AAC, stereo 16 kHz
# How far the sound's duration may be from the pictures' before it is an error (the larger of
# the two): a video's streams often differ by a few hundred milliseconds; more is another clip.
MAX_DURATION_MISMATCH_S = 0.5
MAX_DURATION_MISMATCH_FRACTION = 0.01

# The resampler's filter reaches 32 input samples to either side of an output sample.
_RESAMPLE_REACH = 33
_RESAMPLE_BLOCK_SAMPLES = SAMPLE_RATE_HZ * 20  # output samples per block (20 s)


class BinauralizeError(ValueError):
    """Input that cannot be binauralized; the message names the flag or file and what is wrong."""


@dataclasses.dataclass
class ClipInputs:
    """A clip ready for the model.

    Attributes:
      mono: `[time]` float32 at 16 kHz in [-1, 1], time = num_frames * 1600.
      frames: `[num_frames, height, width, 3]` float32 RGB in [0, 1] at 10 fps, prepared for the
        model (`runs.FrameGeometry.prepare`).
      video_path: the source video, or None for a frames folder.
      frame_paths: the source pictures of a frames folder, or None.
      source_samples: the sound's length at 16 kHz before it was fitted to the frames.
    """

    mono: np.ndarray
    frames: np.ndarray
    video_path: str | None = None
    frame_paths: list[str] | None = None
    source_samples: int = 0

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / FRAMES_PER_SECOND


@dataclasses.dataclass
class ClipResult:
    """The model's output for a clip.

    Attributes:
      binaural: `[time, 2]` float32 (left, right) at 16 kHz.
      maps: `[num_frames, height, width]` float32 >= 0, one localization map per 10-fps frame
        at the model's frame size, or None when not asked for.
    """

    binaural: np.ndarray
    maps: np.ndarray | None = None


# === The model ===


def is_guided(model) -> bool:
    """Whether the model looks at the frames (has a localizer, so it can draw a map)."""
    return getattr(model, "localizer", None) is not None


def run_model(model, inputs: ClipInputs, sampler: str = "fast", seed: int = 0,
              with_maps: bool = False, progress: bool = False) -> ClipResult:
    """Binaural audio of the whole clip (one `model.generate` call, which windows long clips
    itself) and, with `with_maps`, the localization map of every frame."""
    frames = inputs.frames[None] if is_guided(model) else None
    binaural = model.generate(inputs.mono[None], frames, sampler=sampler, seed=seed,
                              progress=None if progress else False)
    binaural = np.asarray(binaural, np.float32)[0]
    maps = None
    if with_maps:
        with _progress_bar(inputs.num_frames, "localizing", progress) as bar:
            maps = generation.clip_maps(model.localizer, inputs.mono, inputs.frames,
                                        on_batch=bar.update if bar is not None else None)
    return ClipResult(binaural, maps)


# === Reading ===


def decode_audio(path: str | os.PathLike, flag: str = "--audio") -> tuple[np.ndarray, int, float]:
    """Decodes the first audio stream of any file PyAV reads (a video or an audio file).

    Returns:
      (audio `[time, channels]` float32, sample rate in Hz, start time in seconds of the stream's
      first sample on the file's clock).

    Raises:
      BinauralizeError: missing file, no audio stream, undecodable, empty or non-finite audio.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BinauralizeError(f"{flag}={path}: no such file")
    chunks, start_s, rate = [], 0.0, None
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise BinauralizeError(
                    f"{flag}={path}: the file holds no audio stream (the sound to binauralize; "
                    "give a video with sound, or --frames_dir with --audio MONO.wav)")
            resampler = None
            for frame in container.decode(container.streams.audio[0]):
                if resampler is None:
                    # Planar float at the stream's own rate and layout: we downmix and resample.
                    start_s, rate = float(frame.time or 0.0), frame.sample_rate
                    resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=rate)
                chunks += [converted.to_ndarray() for converted in resampler.resample(frame)]
            if resampler is not None:
                chunks += [converted.to_ndarray() for converted in resampler.resample(None)]
    except av.error.FFmpegError as error:
        raise BinauralizeError(f"{flag}={path}: cannot decode the audio ({error})") from None
    if sum(chunk.shape[1] for chunk in chunks) == 0:
        raise BinauralizeError(f"{flag}={path}: the audio stream holds no samples")
    audio = np.concatenate(chunks, axis=1).T.astype(np.float32)
    if not np.all(np.isfinite(audio)):
        raise BinauralizeError(f"{flag}={path}: the audio holds NaN or Inf samples")
    return audio, int(rate), start_s


def resample_long(waveform: np.ndarray, rate_in_hz: int, rate_out_hz: int,
                  block_samples: int = _RESAMPLE_BLOCK_SAMPLES) -> np.ndarray:
    """`keras_binaural.audio.resample` of a `[time]` signal, computed in blocks of output samples.

    `resample` builds an `[output samples, 64]` table (gigabytes for minutes of audio); here
    each block starts at an output sample that falls on an input sample (a multiple of
    rate_out / gcd(rate_in, rate_out)) and sees 33 input samples of context on each side (zeros
    beyond the signal, as `resample`), so the result equals one call over the whole signal.
    """
    waveform = np.asarray(waveform, dtype=np.float32)
    if rate_in_hz == rate_out_hz:
        return waveform
    divisor = math.gcd(int(rate_in_hz), int(rate_out_hz))
    period_in, period_out = rate_in_hz // divisor, rate_out_hz // divisor
    pad_periods = -(-_RESAMPLE_REACH // period_in)
    pad_in, pad_out = pad_periods * period_in, pad_periods * period_out
    block = max(1, block_samples // period_out) * period_out
    num_out = -(-len(waveform) * rate_out_hz // rate_in_hz)
    padded = np.pad(waveform, (pad_in, pad_in + period_in))
    pieces = []
    for start_out in range(0, num_out, block):
        count = min(block, num_out - start_out)
        start_in = start_out // period_out * period_in  # exact: start_out is a multiple
        length = 2 * pad_in + -(-count * period_in // period_out)  # context + ceil(inputs)
        out = resample(padded[start_in : start_in + length], rate_in_hz, rate_out_hz).numpy()
        pieces.append(out[pad_out : pad_out + count])
    return np.concatenate(pieces)


def load_mono(path: str | os.PathLike, flag: str = "--audio",
              start_at_zero: bool = True) -> np.ndarray:
    """The first audio stream of a file as mono `[time]` float32 at 16 kHz.

    Args:
      start_at_zero: the stream's first sample is time 0 (an audio file); False keeps the
        stream's start time on the file's clock (silence before it; a video).
    """
    if os.fspath(path).lower().endswith(".wav") and os.path.isfile(path):
        try:
            read_wav_header(path)  # a truncated file decodes without a word: check its header
        except AudioError as error:
            raise BinauralizeError(f"{flag}={error}") from None
    audio, rate, start_s = decode_audio(path, flag)
    mono = resample_long(audio.mean(axis=1), rate, SAMPLE_RATE_HZ)
    offset = 0 if start_at_zero else round(start_s * SAMPLE_RATE_HZ)
    if offset > 0:
        mono = np.concatenate([np.zeros(offset, np.float32), mono])
    elif offset < 0:
        mono = mono[-offset:]
    return mono.astype(np.float32)


def check_duration(num_samples: int, num_frames: int, flag: str, path: str,
                   pictures: str) -> None:
    """Refuses sound whose duration is far from the pictures' (module docstring).

    Raises:
      BinauralizeError: naming `flag=path`, both durations and what would be right.
    """
    sound_s, frames_s = num_samples / SAMPLE_RATE_HZ, num_frames / FRAMES_PER_SECOND
    if abs(sound_s - frames_s) > max(MAX_DURATION_MISMATCH_S,
                                     MAX_DURATION_MISMATCH_FRACTION * frames_s):
        raise BinauralizeError(
            f"{flag}={path}: {sound_s:.2f} s of sound for {frames_s:.2f} s of pictures "
            f"({num_frames} frames {pictures} at {FRAMES_PER_SECOND} fps); give the sound and "
            f"the pictures of the same clip (at most {MAX_DURATION_MISMATCH_S} s, or "
            f"{MAX_DURATION_MISMATCH_FRACTION:.0%} of the clip, apart)")


def fit_duration(mono: np.ndarray, num_frames: int) -> np.ndarray:
    """Cuts or pads (with silence) mono audio to num_frames x 0.1 s."""
    want = num_frames * SAMPLES_PER_FRAME
    return mono[:want] if len(mono) >= want else np.pad(mono, (0, want - len(mono)))


def _progress_bar(total: int | None, description: str, enabled: bool):
    if not enabled:
        return contextlib.nullcontext(None)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="frame", file=sys.stderr, leave=False)


def load_video(path: str | os.PathLike, geometry: runs.FrameGeometry,
               progress: bool = False) -> ClipInputs:
    """Reads a video with sound: its 10-fps frames prepared by `geometry` and its sound as 16 kHz
    mono, cut or padded to the frames' duration."""
    path = os.fspath(path)
    mono = load_mono(path, "--video", start_at_zero=False)
    frames = []
    with _progress_bar(None, "reading frames", progress) as bar:
        try:
            for frame in video_io.iter_frames(path):
                frames.append(geometry.prepare(frame))
                if bar is not None:
                    bar.update(1)
        except video_io.VideoError as error:
            raise BinauralizeError(f"--video={error}") from None
    frames = np.stack(frames)
    check_duration(len(mono), len(frames), "--video", path, "in the video")
    return ClipInputs(fit_duration(mono, len(frames)), frames, video_path=path,
                      source_samples=len(mono))


def list_frames(frames_dir: str | os.PathLike) -> list[str]:
    """The pictures of a frames folder in order (sorted names; PNG or JPEG)."""
    frames_dir = os.fspath(frames_dir)
    if not os.path.isdir(frames_dir):
        raise BinauralizeError(f"--frames_dir={frames_dir}: no such folder (want a folder of "
                               "10-fps frames 000001.png, 000002.png, ...)")
    names = sorted(name for name in os.listdir(frames_dir)
                   if name.lower().endswith(FRAME_EXTENSIONS) and not name.startswith("."))
    if not names:
        raise BinauralizeError(f"--frames_dir={frames_dir}: the folder holds no .png or .jpg "
                               "frames (want 10-fps frames 000001.png, 000002.png, ...)")
    return [os.path.join(frames_dir, name) for name in names]


def _read_picture(path: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as error:
        raise BinauralizeError(f"--frames_dir: {path}: cannot read the picture ({error})") from None


def load_frames_dir(frames_dir: str | os.PathLike, audio_path: str | os.PathLike,
                    geometry: runs.FrameGeometry, progress: bool = False) -> ClipInputs:
    """Reads a folder of 10-fps frames (prepared by `geometry`) and a recording (16 kHz mono,
    cut or padded to the frames' duration)."""
    paths = list_frames(frames_dir)
    mono = load_mono(audio_path, "--audio")
    check_duration(len(mono), len(paths), "--audio", os.fspath(audio_path),
                   f"in --frames_dir={os.fspath(frames_dir)}")
    frames = []
    with _progress_bar(len(paths), "reading frames", progress) as bar:
        for path in paths:
            frames.append(geometry.prepare(_read_picture(path)))
            if bar is not None:
                bar.update(1)
    frames = np.stack(frames)
    return ClipInputs(fit_duration(mono, len(frames)), frames, frame_paths=paths,
                      source_samples=len(mono))


# === Overlay ===


def jet(values: np.ndarray) -> np.ndarray:
    """The 'jet' colour map: values in [0, 1] `[...]` -> RGB `[..., 3]` float in [0, 1]."""
    values = np.clip(values, 0.0, 1.0)[..., None]
    peaks = np.array([0.75, 0.5, 0.25], np.float32)  # where red, green and blue are brightest
    return np.clip(1.5 - np.abs(4.0 * (values - peaks)), 0.0, 1.0)


def heatmap_overlay(frame: np.ndarray, heat: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blends a localization map over a picture as a heat map.

    The map is scaled to [0, 1] by its own minimum and maximum (what matters is where it is
    high relative to the rest of the frame; a flat map draws nothing), resized bilinearly to the
    picture, coloured with `jet` and blended with weight alpha x value: where the map is at its
    minimum the picture is unchanged, at its peak the pixel is alpha colour, 1 - alpha picture.

    Args:
      frame: `[height, width, 3]` uint8 RGB.
      heat: `[h, w]` float, any size (stretched over the whole picture).

    Returns:
      `[height, width, 3]` uint8.
    """
    heat = np.nan_to_num(np.asarray(heat, np.float32), nan=0.0)
    low, high = float(heat.min()), float(heat.max())
    heat = (heat - low) / (high - low) if high > low else np.zeros_like(heat)
    height, width = frame.shape[:2]
    if heat.shape != (height, width):
        heat = np.asarray(Image.fromarray(heat, mode="F").resize((width, height), Image.BILINEAR))
    heat = np.clip(heat, 0.0, 1.0)
    weight = alpha * heat[..., None]
    blended = (1.0 - weight) * frame.astype(np.float32) + weight * 255.0 * jet(heat)
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def map_at(maps: np.ndarray, time_s: float) -> np.ndarray:
    """The map of the 10-fps frame on screen at `time_s` (frame k shows [(k-1)/10, k/10) s)."""
    index = math.floor(time_s * FRAMES_PER_SECOND + 1e-6)
    return maps[min(max(index, 0), len(maps) - 1)]


# === Writing ===


def write_outputs(
    inputs: ClipInputs,
    result: ClipResult,
    output_wav: str | os.PathLike,
    output_video: str | os.PathLike | None = None,
    geometry: runs.FrameGeometry | None = None,
    progress: bool = False,
) -> None:
    """Writes the binaural WAV and, if `output_video`, the video with the binaural track; with
    `result.maps` (and the `geometry` they were made with) the maps are drawn over the pictures.

    Both files are written in one `files.transaction`: on an error neither appears (and files
    already there are left as they were), and an `OSError` (a full disk) is a `files.OutputError`
    naming the file. Samples beyond [-1, 1] are clipped (16-bit PCM, AAC), with a warning.
    """
    clipped = int(np.count_nonzero(np.abs(result.binaural) > 1.0))
    if clipped:
        logging.warning("the binaural audio exceeds [-1, 1] on %d samples (peak %.2f); they are "
                        "clipped in %s", clipped, float(np.abs(result.binaural).max()), output_wav)
    wav_bytes = encode_wav(result.binaural, SAMPLE_RATE_HZ, path=os.fspath(output_wav))
    with files.transaction() as outputs:
        with open(outputs.file(output_wav), "wb") as stream:
            stream.write(wav_bytes)
        if output_video is None:
            return
        video_temporary = outputs.file(output_video)
        draw: Callable[[np.ndarray, float], np.ndarray] | None = None
        if result.maps is not None:
            geometry = geometry or runs.FrameGeometry()

            def draw(frame, time_s):
                return heatmap_overlay(frame, geometry.uncrop(map_at(result.maps, time_s)))

        if inputs.video_path is not None:
            rate = video_io.frame_rate(inputs.video_path)
            with _progress_bar(round(rate * inputs.duration_s), "writing video",
                               progress) as bar:
                video_io.mux_audio(inputs.video_path, result.binaural, video_temporary,
                                   SAMPLE_RATE_HZ, overlay=draw,
                                   audio_bit_rate=OUTPUT_AUDIO_BIT_RATE,
                                   progress=bar.update if bar is not None else None)
        else:
            def pictures():
                size_wh = None
                for index, path in enumerate(inputs.frame_paths):
                    frame = _read_picture(path)
                    if size_wh is None:
                        size_wh = frame.shape[1], frame.shape[0]
                    elif (frame.shape[1], frame.shape[0]) != size_wh:  # a video has one size
                        frame = np.asarray(Image.fromarray(frame).resize(size_wh, Image.BILINEAR))
                    yield draw(frame, index / FRAMES_PER_SECOND) if draw else frame

            with _progress_bar(inputs.num_frames, "writing video", progress) as bar:
                video_io.write_video(video_temporary, _counted(pictures(), bar), result.binaural,
                                     FRAMES_PER_SECOND, SAMPLE_RATE_HZ, OUTPUT_AUDIO_BIT_RATE)


def _counted(items, bar):
    for item in items:
        yield item
        if bar is not None:
            bar.update(1)


# === All steps ===


def check_request(
    video: str | None = None,
    frames_dir: str | None = None,
    audio: str | None = None,
    output_wav: str | None = None,
    output_video: str | None = None,
    overlay: bool = False,
    sampler: str = "fast",
) -> None:
    """Checks the inputs and outputs of a `binauralize` call before any work (files exist, the
    flags fit together, outputs are writable and overwrite no input); BinauralizeError naming
    the flag otherwise."""
    if video and (frames_dir or audio):
        raise BinauralizeError("--video and --frames_dir/--audio: give either --video IN.mp4 "
                               "(its own sound is used) or --frames_dir DIR with --audio MONO.wav")
    if not video and not frames_dir:
        raise BinauralizeError("no input: give --video IN.mp4, or --frames_dir DIR with "
                               "--audio MONO.wav")
    if frames_dir and not audio:
        raise BinauralizeError(f"--frames_dir={frames_dir}: needs --audio MONO.wav, the sound "
                               "of the frames")
    if audio and not frames_dir:
        raise BinauralizeError(f"--audio={audio}: goes with --frames_dir DIR (a video's own "
                               "sound is used with --video)")
    if video and not os.path.isfile(video):
        raise BinauralizeError(f"--video={video}: no such file")
    if frames_dir:
        list_frames(frames_dir)
        if not os.path.isfile(audio):
            raise BinauralizeError(f"--audio={audio}: no such file")
        if audio.lower().endswith(".wav"):
            try:
                read_wav_header(audio)  # a truncated WAV decodes without a word
            except AudioError as error:
                raise BinauralizeError(f"--audio={error}") from None
    if sampler not in SAMPLERS:
        raise BinauralizeError(f"--sampler={sampler}: must be one of {', '.join(SAMPLERS)}")
    if not output_wav:
        raise BinauralizeError("--output_wav: required, where to write the binaural WAV")
    if not output_wav.lower().endswith(".wav"):
        raise BinauralizeError(f"--output_wav={output_wav}: must end in .wav")
    if overlay and not output_video:
        raise BinauralizeError("--overlay: draws the localization map on --output_video; give "
                               "--output_video OUT.mp4 too")
    if output_video and not output_video.lower().endswith(VIDEO_OUTPUT_EXTENSIONS):
        raise BinauralizeError(f"--output_video={output_video}: must end in one of "
                               f"{', '.join(VIDEO_OUTPUT_EXTENSIONS)}")
    inputs = [os.path.abspath(p) for p in (video, audio) if p]
    outputs = {"--output_wav": output_wav, "--output_video": output_video}
    for flag, path in outputs.items():
        if not path:
            continue
        if os.path.abspath(path) in inputs:
            raise BinauralizeError(f"{flag}={path}: is an input file; choose another name")
        files.check_output(path, flag, error=BinauralizeError)
    if output_video and os.path.abspath(output_video) == os.path.abspath(output_wav):
        raise BinauralizeError("--output_video: must differ from --output_wav")


def binauralize(
    model,
    geometry: runs.FrameGeometry,
    *,
    video: str | None = None,
    frames_dir: str | None = None,
    audio: str | None = None,
    output_wav: str,
    output_video: str | None = None,
    overlay: bool = False,
    sampler: str = "fast",
    seed: int = 0,
    progress: bool = False,
) -> ClipResult:
    """Reads a clip, binauralizes it with `model` and writes the outputs (module docstring).

    Args:
      model: a model with `generate` (from `runs.load_model(..., generates=True)`).
      geometry: how the model's frames are prepared (`runs.frame_geometry`).
      video: a video with sound; or `frames_dir` (10-fps pictures) with `audio` (a recording).
      output_wav: the binaural WAV to write.
      output_video: optionally the video to write with the binaural track.
      overlay: draw the localization map over the video's pictures.
      sampler: one of `conventions.SAMPLERS`; seed: the sampler's seed.
      progress: show progress bars (stderr).

    Raises:
      BinauralizeError: bad input, naming the flag or file; nothing is written.
      files.OutputError: an output could not be written (a full disk); nothing is written.
    """
    check_request(video, frames_dir, audio, output_wav, output_video, overlay, sampler)
    if overlay and not is_guided(model):
        raise BinauralizeError(f"--overlay: the model ({type(model).__name__}, audio-only) has "
                               "no localizer, so there is no map to draw; drop --overlay")
    for path in (output_wav, output_video):
        if path:  # what a killed run of the same outputs left
            files.remove_temporaries(os.path.dirname(os.path.abspath(path)), names=[path])
    if video:
        inputs = load_video(video, geometry, progress)
    else:
        inputs = load_frames_dir(frames_dir, audio, geometry, progress)
    # Before the (slow) model: room for the WAV (16-bit stereo) and about the input's size again
    # for the video.
    files.check_output(output_wav, "--output_wav", error=BinauralizeError,
                       needed_bytes=44 + 4 * len(inputs.mono))
    if output_video and video:
        files.check_output(output_video, "--output_video", error=BinauralizeError,
                           needed_bytes=os.path.getsize(video))
    result = run_model(model, inputs, sampler, seed, with_maps=overlay, progress=progress)
    write_outputs(inputs, result, output_wav, output_video, geometry, progress)
    return result
