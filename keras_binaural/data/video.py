"""Video with PyAV (tensorflow-io's ffmpeg ops do not work on our stack): frames at 10 fps, and
writing mp4s (H.264 + AAC), also with a new audio track muxed into an existing video.

Frame k (1-based) of a clip is the picture shown at time (k - 1) / 10 s, as `ffmpeg -r 10` would
give it: for each such time, the last decoded video frame that starts at or before it.

Writing (`write_video`, `mux_audio`): H.264 (libx264, yuv420p, CRF 18, preset fast) and AAC, with
the choices that make the bytes depend only on the input (see `add_h264_stream` and
`rgb_to_yuv420p`), so the synthetic dataset's mp4s are byte-identical for a seed.
"""

from __future__ import annotations

import fractions
import os
from collections.abc import Callable, Iterable, Iterator

import av
import numpy as np
from PIL import Image

from keras_binaural.conventions import FRAMES_PER_SECOND, SAMPLE_RATE_HZ
from keras_binaural.files import atomic_directory


class VideoError(ValueError):
    """A video that cannot be decoded; the message names the file."""


def iter_frames(
    path: str | os.PathLike,
    fps: float = FRAMES_PER_SECOND,
    size_wh: tuple[int, int] | None = None,
) -> Iterator[np.ndarray]:
    """Yields the frames of a video resampled to `fps`, as `[height, width, 3]` uint8 RGB.

    Args:
      path: any container PyAV reads (mp4, mkv, avi, ...).
      fps: output frame rate; frame k shows time (k - 1) / fps.
      size_wh: (width, height) to resize to, or None to keep the video's size.

    Raises:
      VideoError: the file is missing, holds no video stream, or cannot be decoded.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VideoError(f"{path}: no such file")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: the file holds no video stream")
            stream = container.streams.video[0]
            previous, next_time = None, 0.0
            for count, frame in enumerate(container.decode(stream)):
                time = frame.time if frame.time is not None else count / float(stream.average_rate)
                # Emit the previous frame for every output time before this frame starts.
                while previous is not None and next_time < time - 1e-6:
                    yield previous
                    next_time += 1.0 / fps
                previous = _to_array(frame, size_wh)
                end = time + (1.0 / float(stream.average_rate) if stream.average_rate else 0.0)
            while previous is not None and next_time < end - 1e-6:
                yield previous
                next_time += 1.0 / fps
            if previous is None:
                raise VideoError(f"{path}: the video stream holds no frames")
    except av.error.FFmpegError as error:
        raise VideoError(f"{path}: cannot decode the video: {error}") from None


def _to_array(frame: av.VideoFrame, size_wh: tuple[int, int] | None) -> np.ndarray:
    image = frame.to_image()
    if size_wh is not None and image.size != tuple(size_wh):
        image = image.resize(size_wh, Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def extract_frames(
    video_path: str | os.PathLike,
    frames_dir: str | os.PathLike,
    fps: float = FRAMES_PER_SECOND,
    size_wh: tuple[int, int] | None = None,
) -> int:
    """Writes a video's frames as `frames_dir/000001.png ...` at `fps`; returns the count.

    The folder appears only when complete (written under a temporary name, then renamed), so an
    interrupted run leaves no partial folder, and `frames_dir` existing means the clip is done.
    """
    with atomic_directory(frames_dir) as temporary:
        count = 0
        for count, pixels in enumerate(iter_frames(video_path, fps, size_wh), start=1):
            Image.fromarray(pixels).save(os.path.join(temporary, f"{count:06d}.png"))
    return count


# === Writing ===


def rgb_to_yuv420p(frame: np.ndarray) -> np.ndarray:
    """RGB `[height, width, 3]` uint8 -> planar yuv420p `[height * 3 // 2, width]` uint8.

    BT.601 limited range (what FFmpeg assumes for untagged H.264) in integer arithmetic, so the
    bytes never depend on floating-point summation order; chroma averaged over 2x2 pixels.
    Even height and width.
    """
    r, g, b = (frame[..., i].astype(np.int32) for i in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    height, width = frame.shape[:2]

    def subsample(plane):
        return (plane.reshape(height // 2, 2, width // 2, 2).sum(axis=(1, 3)) + 2) >> 2

    planes = [y.ravel(), subsample(u).ravel(), subsample(v).ravel()]
    return np.concatenate(planes).astype(np.uint8).reshape(height * 3 // 2, width)


def add_h264_stream(container, width: int, height: int, frame_rate_hz) -> av.VideoStream:
    """Adds an H.264 stream (yuv420p, CRF 18, preset fast, one x264 thread) to an output container."""
    stream = container.add_stream("libx264", rate=frame_rate_hz)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    # No macroblock tree: its floating-point cost propagation reaches denormal numbers, so
    # its decisions (and the bytes) changed with the process's flush-to-zero state, which
    # other libraries leave set or cleared. One encoder thread: frame threads depend on timing.
    stream.options = {"crf": "18", "preset": "fast", "x264-params": "mbtree=0"}
    stream.codec_context.thread_count = 1
    stream.codec_context.thread_type = "NONE"
    return stream


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    audio: np.ndarray | None,
    frame_rate_hz=FRAMES_PER_SECOND,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    audio_bit_rate: int = 96000,
    container_format: str | None = None,
) -> int:
    """Writes a video: H.264 frames and an AAC mono or stereo track; returns the frame count.

    Not atomic by itself (its callers write it in a `files.transaction`).

    Args:
      frames: iterable of `[height, width, 3]` uint8 RGB, all of one size; an odd height or
        width loses its last row or column (yuv420p needs even sizes).
      audio: `[time, channels]` float in [-1, 1] at `sample_rate_hz`, or None for no audio.
      frame_rate_hz: frames per second (int or `fractions.Fraction`, e.g. 30000/1001).
      audio_bit_rate: AAC bit rate in bits per second for the whole track.
      container_format: FFmpeg format name ("mp4"), or None to follow the extension of `path`.
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise VideoError(f"{os.fspath(path)}: no frames to write")
    height, width = first.shape[0] // 2 * 2, first.shape[1] // 2 * 2
    with av.open(os.fspath(path), "w", format=container_format) as container:
        video = add_h264_stream(container, width, height, frame_rate_hz)
        if audio is not None:
            audio = np.asarray(audio, dtype=np.float32)
            sound_stream = container.add_stream("aac", rate=sample_rate_hz)
            sound_stream.layout = {1: "mono", 2: "stereo"}[audio.shape[1]]
            sound_stream.bit_rate = audio_bit_rate
        count = 0
        for count, frame in enumerate(_chain(first, frames), start=1):
            # Converted to yuv420p in numpy: FFmpeg's own conversion (swscale, inside encode()
            # or reformat()) gave different bytes from run to run now and then.
            picture = av.VideoFrame.from_ndarray(
                rgb_to_yuv420p(frame[:height, :width]), format="yuv420p")
            picture.pts = count - 1
            for packet in video.encode(picture):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            samples = np.ascontiguousarray(audio.T)
            sound = av.AudioFrame.from_ndarray(
                samples, format="fltp", layout=sound_stream.layout.name)
            sound.sample_rate, sound.pts = sample_rate_hz, 0
            for packet in sound_stream.encode(sound):
                container.mux(packet)
            for packet in sound_stream.encode():
                container.mux(packet)
    return count


def _chain(first, rest):
    yield first
    yield from rest


def frame_rate(path: str | os.PathLike) -> fractions.Fraction:
    """The average frame rate of a video's first video stream (10 fps when the file does not say)."""
    path = os.fspath(path)
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: the file holds no video stream")
            rate = container.streams.video[0].average_rate
    except av.error.FFmpegError as error:
        raise VideoError(f"{path}: cannot read the video: {error}") from None
    return fractions.Fraction(rate) if rate else fractions.Fraction(FRAMES_PER_SECOND)


def mux_audio(
    video_in: str | os.PathLike,
    audio: np.ndarray,
    out_path: str | os.PathLike,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    overlay: Callable[[np.ndarray, float], np.ndarray] | None = None,
    audio_bit_rate: int = 128000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Writes `video_in`'s pictures with `audio` as the only audio track; returns the frame count.

    The pictures are decoded and re-encoded (H.264, as `write_video`), at the input's average
    frame rate and size (resampled to a constant rate as `iter_frames` does; an odd size loses
    its last row or column), so any codec PyAV reads works and an overlay can be drawn. The
    input's own audio is dropped. Not atomic by itself (`keras_binaural.binauralize` writes it
    in a `files.transaction` with the WAV).

    Args:
      audio: `[time, channels]` (1 or 2 channels, e.g. binaural (left, right)) float in [-1, 1].
      overlay: optional `(frame [H, W, 3] uint8, time_s) -> frame` applied to every picture
        before encoding; time_s is the picture's time from the start of the video.
      progress: optional callback, called with 1 after each frame is encoded.
    """
    rate = frame_rate(video_in)

    def pictures():
        for index, frame in enumerate(iter_frames(video_in, fps=rate)):
            if overlay is not None:
                frame = overlay(frame, float(index / rate))
            yield frame
            if progress is not None:
                progress(1)

    return write_video(out_path, pictures(), audio, rate, sample_rate_hz, audio_bit_rate)
