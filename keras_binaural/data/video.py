"""Video frames at 10 fps with PyAV (tensorflow-io's ffmpeg ops do not work on our stack).

Frame k (1-based) of a clip is the picture shown at time (k - 1) / 10 s, as `ffmpeg -r 10` would
give it: for each such time, the last decoded video frame that starts at or before it.
"""

from __future__ import annotations

import os
from typing import Iterator

import av
import numpy as np
from PIL import Image

from keras_binaural.data.atomic import atomic_directory

FRAMES_PER_SECOND = 10


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
            previous, next_time, count = None, 0.0, 0
            for frame in container.decode(stream):
                time = frame.time if frame.time is not None else count / float(stream.average_rate)
                # Emit the previous frame for every output time before this frame starts.
                while previous is not None and next_time < time - 1e-6:
                    yield previous
                    next_time += 1.0 / fps
                previous = _to_array(frame, size_wh)
                count += 1
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
