"""Synthetic binaural scenes in the FAIR-Play layout (SPEC section 2): sample, render, draw, write.

A clip is a scene of 1..`max_sources` sounding objects (distinct classes) and 0..`distractors`
silent objects (any class, so a silent object may look exactly like a sounding one), seen by a
camera and heard by a measured head (HRIRs, `keras_binaural.data.hrtf`):

- **Sound:** each sounding object plays a phrase of its class (`keras_binaural.data.sources`),
  convolved with the HRIR pair of its azimuth. A moving object's azimuth follows a raised-cosine
  path from a start to an end azimuth over the clip; its sound is rendered block-wise
  (`spatialize`: 50 %-overlapping periodic-Hann blocks of 2 x 256 samples, each convolved with
  the HRIR of the azimuth at the block's centre and overlap-added, so the filters cross-fade
  every 16 ms). A faint diffuse noise floor (independent in the two ears, `noise_db` below
  one source's level) is added, then the mix is scaled to a peak of `peak` (0.9) and rounded to
  16-bit PCM values, exactly as the WAV file holds them.
- **Picture:** 10 frames per second; frame k (1-based, `frames/<id>.mp4/%06d.png`) shows the
  scene at the centre of [(k - 1) / 10, k / 10) s, matching SPEC's frame index for a chunk.
  Each class has its own shape, colour and glyph (`class_look`), drawn as a flat colour at
  x = camera.x_from_azimuth(azimuth) on a plain room background (wall, floor, soft texture).
  Elevation is 0 for sound; objects stand around the horizon (image centre row) with a small
  vertical jitter that is visual only.
- **Camera** (`Camera`, written into every clip's metadata): `pinhole:FOV` maps azimuth to
  x = cx - f tan(azimuth) with f = cx / tan(FOV / 2); `equirect` maps the full circle linearly,
  x = cx - azimuth / 360 * width. +azimuth is left (SOFA), so a source left of the image centre
  is louder and earlier in the left ear.

Files per clip `<id>` (six digits, from 000001), each written atomically (temporary name, then
rename; the frames folder as a whole), metadata last, so a clip whose `metadata/<id>.json`
exists is complete and a rerun skips it:
  binaural_audios/<id>.wav   16 kHz, 16-bit PCM, channels (left, right)
  frames/<id>.mp4/000001.png ...  the frames, lossless, exactly as drawn
  videos/<id>.mp4            the frames (H.264, 10 fps) with the **mono** mix (L + R) / 2 as its
                             audio track (AAC, 16 kHz): what a user's own video looks like
  metadata/<id>.json         scene description (`clip_metadata` documents the schema)
and for the dataset: `dataset.json` (the settings; a rerun with other settings is refused),
`splits/{train,val,test}.txt` (clip ids of split 1) and `splits/splitK/{train,val,test}.{txt,h5}`
(the h5 files hold a dataset `audio` of absolute wav paths, as FAIR-Play's).

Determinism: everything is drawn from `numpy.random.SeedSequence([seed, clip_index])`, so a clip
does not depend on the number of workers or on which clips were already made. The same seed
gives byte-identical WAV, PNG, JSON, text, h5 (written without timestamps) and mp4 files
(x264 runs single-threaded, whose output does not depend on the machine's core count, and the
frames are converted to yuv420p before `encode`, whose implicit conversion in PyAV gave
different bytes from run to run; the mp4 bytes still depend on the FFmpeg/x264 build that
PyAV ships).

Not modelled: room acoustics (the HRIRs are anechoic, so the scenes are dry), source distance
and elevation (all sources are on the horizontal plane at the HRIR set's distance), occlusion
in sound. The PNG frames are the exact drawings while the mp4 is H.264-compressed, as a user's
video would be.

Example:
  settings = SceneSettings(clip_seconds=10.0, camera="pinhole:90", max_sources=2)
  clip = make_clip(1, settings, seed=0)      # in memory: clip.binaural [160000, 2], clip.frames
  make_dataset("data/synthetic", settings, num_clips=100, seed=0, workers=2)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import multiprocessing
import os
import re
import zlib
from collections.abc import Iterable, Sequence

import h5py
import numpy as np
import scipy.signal
from PIL import Image, ImageDraw, ImageFont

from keras_binaural.audio.io import write_wav
from keras_binaural.conventions import FRAMES_PER_SECOND, SAMPLE_RATE_HZ
from keras_binaural import files
from keras_binaural.data.hrtf import HrirSet, load_hrirs
from keras_binaural.data.sources import SourceBank

# Bumped whenever the metadata schema or the rendering changes (the same seed then gives other
# files); a rerun into a folder made by another version is refused (see make_dataset).
METADATA_VERSION = 1
SPLIT_NAMES = ("train", "val", "test")
_HOP_SAMPLES = 256  # block hop of the time-varying (moving source) rendering, 16 ms


class SceneError(ValueError):
    """Invalid scene settings or an output folder that cannot be used; the message says why."""


# === Camera ======================================================================================


@dataclasses.dataclass(frozen=True)
class Camera:
    """Maps azimuth (deg, +left, SOFA) to the horizontal image coordinate and back.

    Pixel coordinates are continuous: x = 0 is the left edge of the image, x = width its right
    edge, pixel column i covers [i, i + 1); the optical axis (azimuth 0) is at cx = width / 2.

    Attributes:
      model: "pinhole" (x = cx - f tan(azimuth), f = cx / tan(fov_deg / 2)) or "equirect"
        (x = cx - azimuth / 360 * width: a 360-degree panorama).
      width, height: frame size in pixels.
      fov_deg: horizontal field of view (360 for equirect).
    """

    model: str
    width: int
    height: int
    fov_deg: float = 90.0

    def __post_init__(self):
        if self.model not in ("pinhole", "equirect"):
            raise SceneError(
                f"unknown camera model {self.model!r}; use pinhole:FOV_DEG or equirect"
            )
        if self.model == "pinhole" and not 1.0 <= self.fov_deg <= 170.0:
            raise SceneError(
                f"pinhole field of view must be in [1, 170] degrees, got {self.fov_deg}"
            )
        if self.model == "equirect":
            object.__setattr__(self, "fov_deg", 360.0)

    @property
    def cx(self) -> float:
        return self.width / 2.0

    @property
    def focal_px(self) -> float:
        """Pinhole focal length in pixels; for equirect, pixels per radian."""
        if self.model == "pinhole":
            return self.cx / math.tan(math.radians(self.fov_deg) / 2.0)
        return self.width / (2.0 * math.pi)

    def x_from_azimuth(self, azimuth_deg):
        """Image x in pixels of azimuths in degrees (+left, so positive azimuths give x < cx)."""
        azimuth = np.asarray(azimuth_deg, dtype=np.float64)
        if self.model == "pinhole":
            return self.cx - self.focal_px * np.tan(np.radians(azimuth))
        return self.cx - (((azimuth + 180.0) % 360.0) - 180.0) / 360.0 * self.width

    def azimuth_from_x(self, x):
        """Azimuth in degrees (+left) of image x in pixels; the inverse of `x_from_azimuth`."""
        x = np.asarray(x, dtype=np.float64)
        if self.model == "pinhole":
            return np.degrees(np.arctan((self.cx - x) / self.focal_px))
        return (self.cx - x) / self.width * 360.0

    def to_json(self) -> dict:
        """The camera as written into the metadata (with the mapping spelled out)."""
        description = {
            "model": self.model,
            "width": self.width,
            "height": self.height,
            "fov_deg": self.fov_deg,
            "cx": self.cx,
            "cy": self.height / 2.0,
        }
        if self.model == "pinhole":
            description["focal_px"] = self.focal_px
            description["x_from_azimuth"] = "x = cx - focal_px * tan(azimuth_deg), +azimuth = left"
        else:
            description["x_from_azimuth"] = "x = cx - azimuth_deg / 360 * width, +azimuth = left"
        return description

    @classmethod
    def from_json(cls, description: dict) -> Camera:
        return cls(
            description["model"],
            description["width"],
            description["height"],
            description["fov_deg"],
        )


def parse_camera(spec: str, width: int, height: int) -> Camera:
    """`pinhole:FOV_DEG` (e.g. pinhole:90) or `equirect`, for frames of `width` x `height`."""
    text = spec.strip().lower()
    if text == "equirect":
        return Camera("equirect", width, height)
    match = re.fullmatch(r"pinhole(?::([0-9.]+))?", text)
    if not match:
        raise SceneError(
            f"camera {spec!r} not understood; use pinhole:FOV_DEG (e.g. pinhole:90) or equirect"
        )
    return Camera("pinhole", width, height, float(match.group(1) or 90.0))


# === Looks =======================================================================================


@dataclasses.dataclass(frozen=True)
class Look:
    """How a class is drawn: shape, flat RGB fill colour, white glyph, width/height ratio."""

    shape: str
    color: tuple[int, int, int]
    glyph: str
    aspect: float = 1.0


CLASS_LOOKS = {
    "guitar": Look("circle", (235, 120, 20), "G"),
    "violin": Look("diamond", (205, 25, 45), "V", 0.8),
    "trumpet": Look("triangle", (240, 205, 25), "T", 1.1),
    "clarinet": Look("capsule", (35, 85, 225), "C", 0.5),
    "piano": Look("square", (140, 50, 200), "P", 1.2),
    "drums": Look("hexagon", (30, 170, 60), "D"),
    "bell": Look("star", (0, 195, 210), "B"),
}
_SHAPES = ("circle", "diamond", "triangle", "capsule", "square", "hexagon", "star")


def class_look(class_name: str) -> Look:
    """The look of a class.

    A class without a fixed look (a new class from --sources_dir) gets one from a hash of its
    name: a shape, its initial as glyph, and a colour from `_spare_colors()` (saturated colours
    that differ clearly from the fixed classes' colours and from the grey background).
    """
    if class_name in CLASS_LOOKS:
        return CLASS_LOOKS[class_name]
    code = zlib.crc32(class_name.encode("utf-8"))
    spare = _spare_colors()
    shape = _SHAPES[(code // len(spare)) % len(_SHAPES)]
    aspect = 0.5 if shape == "capsule" else 1.0
    return Look(shape, spare[code % len(spare)], class_name[:1].upper() or "?", aspect)


@functools.lru_cache(maxsize=1)
def _spare_colors() -> tuple[tuple[int, int, int], ...]:
    fixed = np.array([look.color for look in CLASS_LOOKS.values()], dtype=np.float64)
    candidates = [
        _hsv_to_rgb(hue / 360.0, saturation, value)
        for hue in range(0, 360, 10)
        for saturation in (0.7, 0.95)
        for value in (0.6, 0.9)
    ]
    return tuple(c for c in candidates if np.min(np.linalg.norm(fixed - c, axis=1)) >= 90.0)


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    sector = int(hue * 6.0) % 6
    fraction = hue * 6.0 - int(hue * 6.0)
    p, q, t = (
        value * (1 - saturation),
        value * (1 - fraction * saturation),
        value * (1 - (1 - fraction) * saturation),
    )
    rgb = [
        (value, t, p),
        (q, value, p),
        (p, value, t),
        (p, q, value),
        (t, p, value),
        (value, p, q),
    ][sector]
    return tuple(round(255 * c) for c in rgb)


# === Settings and scenes =========================================================================


@dataclasses.dataclass(frozen=True)
class SceneSettings:
    """Everything that decides a clip besides the seed and the clip index.

    Args:
      clip_seconds: clip length in seconds (a multiple of 0.1 s is tidy: one frame per 0.1 s).
      sample_rate_hz: audio rate.
      frame_size: (width, height) of the frames in pixels (even numbers).
      camera: "pinhole:FOV_DEG" or "equirect".
      hrtf: "kemar" or the path of a .sofa file.
      max_sources: each clip has 1..max_sources sounding objects, of distinct classes.
      distractors: each clip has 0..distractors silent objects (any class).
      moving: probability that an object moves during the clip (0 = all static).
      sources_dir: optional folder of recordings `<class>/*.wav` (see `SourceBank`).
      peak: peak absolute sample value of the binaural mix.
      noise_db: level of the diffuse noise floor relative to one source (RMS), in dB.
      min_move_deg: smallest azimuth change of a moving object.
    """

    clip_seconds: float = 10.0
    sample_rate_hz: int = SAMPLE_RATE_HZ
    frame_size: tuple[int, int] = (224, 224)
    camera: str = "pinhole:90"
    hrtf: str = "kemar"
    max_sources: int = 3
    distractors: int = 2
    moving: float = 0.25
    sources_dir: str | None = None
    peak: float = 0.9
    noise_db: float = -45.0
    min_move_deg: float = 15.0

    def __post_init__(self):
        object.__setattr__(self, "frame_size", tuple(int(v) for v in self.frame_size))
        if not 0.2 <= self.clip_seconds <= 600:
            raise SceneError(f"clip_seconds must be in [0.2, 600], got {self.clip_seconds}")
        if self.max_sources < 1:
            raise SceneError(f"max_sources must be at least 1, got {self.max_sources}")
        if self.distractors < 0:
            raise SceneError(f"distractors must be >= 0, got {self.distractors}")
        if not 0.0 <= self.moving <= 1.0:
            raise SceneError(f"moving is a probability in [0, 1], got {self.moving}")
        if not 0.0 < self.peak <= 1.0:
            raise SceneError(f"peak must be in (0, 1], got {self.peak}")
        width, height = self.frame_size
        if width < 32 or height < 32 or width % 2 or height % 2:
            raise SceneError(
                f"frame size {width}x{height}: width and height must be even and >= 32 (H.264 "
                "video)"
            )
        self.camera_model()  # validates the camera spec

    def camera_model(self) -> Camera:
        return parse_camera(self.camera, *self.frame_size)

    @property
    def num_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate_hz)

    @property
    def num_frames(self) -> int:
        return max(1, round(self.clip_seconds * FRAMES_PER_SECOND))

    def frame_times_s(self) -> np.ndarray:
        """`[num_frames]` the time each frame shows: the centre of [(k-1)/10, k/10) s."""
        return (np.arange(self.num_frames) + 0.5) / FRAMES_PER_SECOND

    def to_json(self) -> dict:
        description = dataclasses.asdict(self)
        description["frame_size"] = list(self.frame_size)
        return description


@dataclasses.dataclass
class SceneObject:
    """One object of a scene.

    Attributes:
      class_name: its class (look and timbre).
      sounding: whether it is heard; silent distractors are only seen.
      start_azimuth_deg, end_azimuth_deg: its azimuth (+left) at the clip's start and end
        (equal for a static object); in between it follows `raised_cosine_path`.
      centre_y_px: vertical centre of its box in pixels.
      width_px, height_px: its box size in pixels.
      gain_db: level of its sound relative to the others (0 for silent objects).
    """

    class_name: str
    sounding: bool
    start_azimuth_deg: float
    end_azimuth_deg: float
    centre_y_px: float
    width_px: int
    height_px: int
    gain_db: float = 0.0

    @property
    def moving(self) -> bool:
        return self.start_azimuth_deg != self.end_azimuth_deg

    def azimuth_at(self, times_s, clip_seconds: float) -> np.ndarray:
        """Azimuths in degrees at `times_s` (any shape), following a raised-cosine path."""
        fraction = np.clip(np.asarray(times_s, dtype=np.float64) / clip_seconds, 0.0, 1.0)
        return raised_cosine_path(self.start_azimuth_deg, self.end_azimuth_deg, fraction)


def raised_cosine_path(start, end, fraction) -> np.ndarray:
    """start + (end - start) (1 - cos(pi fraction)) / 2: smooth, at rest at both ends."""
    fraction = np.asarray(fraction, dtype=np.float64)
    return start + (end - start) * 0.5 * (1.0 - np.cos(np.pi * fraction))


def _x_range(camera: Camera, width_px: int) -> tuple[float, float]:
    """Centre x positions that keep a box of `width_px` inside the frame (1 px margin)."""
    return width_px / 2.0 + 1.0, camera.width - width_px / 2.0 - 1.0


def _place(rng, camera, objects, box_width, moves, min_move_deg):
    """Start and end x of a new object: the first of 50 random tries that keeps clear of the
    others (or the clearest try), and its clearance in pixels (negative: overlapping)."""
    low, high = _x_range(camera, box_width)
    best, best_clearance = None, -np.inf
    for _ in range(50):
        start_x = end_x = rng.uniform(low, high)
        if moves:
            end_x = rng.uniform(low, high)
            start_azimuth, end_azimuth = camera.azimuth_from_x([start_x, end_x])
            if abs(end_azimuth - start_azimuth) < min_move_deg:
                continue
        clearances = [
            abs(x - float(camera.x_from_azimuth(azimuth))) - 0.9 * (box_width + other.width_px) / 2
            for other in objects
            for x, azimuth in ((start_x, other.start_azimuth_deg), (end_x, other.end_azimuth_deg))
        ]
        clearance = min(clearances, default=np.inf)
        if clearance > best_clearance:
            best, best_clearance = (start_x, end_x), clearance
        if clearance >= 0:
            break
    return best, best_clearance


def sample_scene(
    rng: np.random.Generator,
    settings: SceneSettings,
    classes: Sequence[str],
) -> list[SceneObject]:
    """Random objects for one clip: sounding ones first, then silent distractors.

    Positions are uniform in image x (within the frame); objects keep apart so that at the
    start and end of the clip no two boxes overlap by more than a tenth of their widths (a
    distractor that finds no room in 50 tries is left out; a sounding object takes the
    clearest of its tries; a moving object may pass others in between).
    """
    camera = settings.camera_model()
    height = settings.frame_size[1]
    if settings.max_sources > len(classes):
        raise SceneError(
            f"max_sources={settings.max_sources} but only {len(classes)} classes exist"
        )
    num_sounding = int(rng.integers(1, settings.max_sources + 1))
    num_silent = int(rng.integers(0, settings.distractors + 1))
    sounding_classes = [classes[i] for i in rng.permutation(len(classes))[:num_sounding]]
    silent_classes = [classes[i] for i in rng.integers(0, len(classes), num_silent)]
    objects: list[SceneObject] = []
    for class_name, sounding in [(c, True) for c in sounding_classes] + [
        (c, False) for c in silent_classes
    ]:
        look = class_look(class_name)
        box_height = round(rng.uniform(0.2, 0.3) * height)
        box_width = max(4, round(look.aspect * box_height))
        centre_y = height / 2.0 + rng.uniform(-0.06, 0.06) * height
        moves = rng.random() < settings.moving
        best, clearance = _place(rng, camera, objects, box_width, moves, settings.min_move_deg)
        if best is None:  # no move of min_move_deg fits in this picture: the object stays still
            moves = False
            best, clearance = _place(rng, camera, objects, box_width, False, settings.min_move_deg)
        if clearance < 0 and not sounding:
            continue
        start_azimuth, end_azimuth = (float(a) for a in camera.azimuth_from_x(list(best)))
        objects.append(
            SceneObject(
                class_name=class_name,
                sounding=sounding,
                start_azimuth_deg=start_azimuth,
                end_azimuth_deg=end_azimuth if moves else start_azimuth,
                centre_y_px=float(centre_y),
                width_px=box_width,
                height_px=box_height,
                gain_db=float(rng.uniform(-4.0, 2.0)) if sounding else 0.0,
            )
        )
    return objects


# === Sound =======================================================================================


def spatialize(
    mono: np.ndarray,
    azimuths_deg,
    hrirs: HrirSet,
    hop_samples: int = _HOP_SAMPLES,
) -> np.ndarray:
    """Renders a mono source to binaural by convolution with HRIRs.

    Args:
      mono: `[time]` float, at `hrirs.sample_rate_hz`.
      azimuths_deg: a number (a static source: one plain convolution), or `[ceil(time / hop) + 1]`
        azimuths (deg, +left) at samples 0, hop, 2 hop, ... (a moving source: each periodic-Hann
        block of 2 hop samples centred on sample k hop is convolved with the HRIR of
        azimuths_deg[k] and overlap-added; the windows sum to one, so a constant azimuth gives
        the plain convolution).
      hrirs: the HRIR set.
      hop_samples: the block hop of the moving rendering.

    Returns:
      `[time, 2]` float32 (left, right); the convolution tail past the end is dropped.
    """
    mono = np.asarray(mono, dtype=np.float64)
    num_samples = len(mono)
    if np.ndim(azimuths_deg) == 0:
        pair = hrirs.hrir(float(azimuths_deg)).astype(np.float64)
        out = scipy.signal.oaconvolve(mono[:, None], pair, axes=0)[:num_samples]
        return out.astype(np.float32)

    azimuths = np.asarray(azimuths_deg, dtype=np.float64)
    num_blocks = math.ceil(num_samples / hop_samples) + 1
    if azimuths.shape != (num_blocks,):
        raise ValueError(
            f"azimuths_deg must have shape [{num_blocks}] for {num_samples} samples, "
            f"got {azimuths.shape}"
        )
    block = 2 * hop_samples
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(block) / block)  # periodic Hann
    padded = np.zeros((num_blocks + 1) * hop_samples)
    padded[hop_samples : hop_samples + num_samples] = mono  # block k starts at padded k * hop
    starts = np.arange(num_blocks) * hop_samples
    blocks = padded[starts[:, None] + np.arange(block)[None, :]] * window  # [blocks, block]

    pairs = hrirs.hrirs_at(azimuths).astype(np.float64)  # [blocks, taps, 2]
    length = block + pairs.shape[1] - 1
    fft_size = 1 << (length - 1).bit_length()
    spectra = np.fft.rfft(blocks, fft_size, axis=1)[:, :, None] * np.fft.rfft(
        pairs, fft_size, axis=1
    )
    pieces = np.fft.irfft(spectra, fft_size, axis=1)[:, :length]  # [blocks, length, 2]

    # Overlap-add: cut each piece into hop-long parts and add part j one hop further per j.
    parts = math.ceil(length / hop_samples)
    pieces = np.pad(pieces, ((0, 0), (0, parts * hop_samples - length), (0, 0)))
    pieces = pieces.reshape(num_blocks, parts, hop_samples, 2)
    out = np.zeros(((num_blocks + parts) * hop_samples, 2))
    for j in range(parts):
        out[j * hop_samples : (j + num_blocks) * hop_samples] += pieces[:, j].reshape(-1, 2)
    return out[hop_samples : hop_samples + num_samples].astype(np.float32)


def quantize_pcm16(audio: np.ndarray) -> np.ndarray:
    """Rounds float audio to the 16-bit PCM grid (k / 32768, clipped), as a WAV file stores it."""
    steps = np.clip(np.round(np.asarray(audio, dtype=np.float64) * 32768.0), -32768, 32767)
    return (steps / 32768.0).astype(np.float32)


def render_audio(
    objects: Sequence[SceneObject],
    settings: SceneSettings,
    rng: np.random.Generator,
    hrirs: HrirSet,
    bank: SourceBank,
) -> tuple[np.ndarray, float]:
    """The binaural mix of the sounding objects, peak-normalised and on the 16-bit grid.

    Returns:
      (binaural `[num_samples, 2]` float32 (left, right) with max |sample| = settings.peak,
      the normalisation gain in dB).
    """
    num_samples = settings.num_samples
    mix = np.zeros((num_samples, 2), dtype=np.float64)
    hop_times_s = (
        np.arange(math.ceil(num_samples / _HOP_SAMPLES) + 1)
        * _HOP_SAMPLES
        / settings.sample_rate_hz
    )
    for item in objects:
        # One stream per object, heard or not, so the draws do not depend on which ones sound.
        source_rng = np.random.default_rng(rng.integers(2**63))
        if not item.sounding:
            continue
        mono = bank.render(item.class_name, num_samples, source_rng) * 10.0 ** (item.gain_db / 20.0)
        if item.moving:
            azimuths = item.azimuth_at(hop_times_s, settings.clip_seconds)
        else:
            azimuths = item.start_azimuth_deg
        mix += spatialize(mono, azimuths, hrirs)
    noise_rms = 0.1 * 10.0 ** (settings.noise_db / 20.0)  # sources are normalised to RMS 0.1
    noise = rng.standard_normal((num_samples, 2))
    noise = scipy.signal.lfilter([1.0], [1.0, -0.9], noise, axis=0)  # a darker, room-like hiss
    mix += noise * (noise_rms / max(float(np.sqrt(np.mean(noise**2))), 1e-12))
    peak = float(np.max(np.abs(mix)))
    gain = settings.peak / peak if peak > 0 else 1.0
    return quantize_pcm16(mix * gain), 20.0 * math.log10(gain)


# === Picture =====================================================================================


def render_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A plain room: a greyish wall (soft vertical gradient, blotchy texture), a darker floor.

    Colours stay unsaturated (channel spread < 40) so that no object colour occurs in it.

    Returns:
      `[height, width, 3]` uint8.
    """
    wall = rng.uniform(135.0, 195.0) + rng.uniform(-10.0, 10.0, 3)
    floor = wall * rng.uniform(0.55, 0.7) + rng.uniform(-8.0, 8.0, 3)
    horizon = round(height * rng.uniform(0.64, 0.74))
    rows = np.arange(height)[:, None, None]
    picture = np.where(rows < horizon, wall + 18.0 * (1.0 - rows / max(horizon, 1)), floor)
    picture = np.broadcast_to(picture, (height, width, 3)).astype(np.float32)
    coarse = rng.normal(0.0, 5.0, (6, 8)).astype(np.float32)
    texture = np.asarray(Image.fromarray(coarse, mode="F").resize((width, height), Image.BILINEAR))
    picture = picture + texture[..., None]  # smooth, so the PNG frames stay small (~20 kB)
    return np.clip(np.round(picture), 0, 255).astype(np.uint8)


def object_box(camera: Camera, item: SceneObject, azimuth_deg: float) -> list[int]:
    """The box [x0, y0, x1, y1] (pixel edges: columns x0..x1-1 and rows y0..y1-1 are drawn)."""
    centre_x = float(camera.x_from_azimuth(azimuth_deg))
    x0 = round(centre_x - item.width_px / 2.0)
    y0 = round(item.centre_y_px - item.height_px / 2.0)
    return [x0, y0, x0 + item.width_px, y0 + item.height_px]


@functools.lru_cache(maxsize=32)
def _font(size: int):
    return ImageFont.load_default(size=size)


def _shape_polygon(
    shape: str, x0: float, y0: float, x1: float, y1: float
) -> list[tuple[float, float]]:
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if shape == "diamond":
        return [(cx, y0), (x1, cy), (cx, y1), (x0, cy)]
    if shape == "triangle":
        return [(cx, y0), (x1, y1), (x0, y1)]
    if shape == "hexagon":
        angles = np.radians(np.arange(6) * 60.0)
        return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in angles]
    if shape == "star":
        angles = np.radians(np.arange(10) * 36.0 - 90.0)
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return [(cx + rx * r * np.cos(a), cy + ry * r * np.sin(a)) for a, r in zip(angles, radii)]
    raise SceneError(f"unknown shape {shape!r}")


def draw_objects(
    background: np.ndarray, items: Iterable[tuple[Look, Sequence[int]]]
) -> Image.Image:
    """Draws (look, box) items, in order, on a copy of `background` `[height, width, 3]` uint8.

    Each shape fills exactly its box's pixels' extent with the look's flat colour; the glyph is
    white, centred, about half the box height.
    """
    image = Image.fromarray(background)
    draw = ImageDraw.Draw(image)
    for look, (x0, y0, x1, y1) in items:
        right, bottom = x1 - 1, y1 - 1  # PIL's boxes include their last pixel
        if look.shape == "circle":
            draw.ellipse([x0, y0, right, bottom], fill=look.color)
        elif look.shape == "square":
            draw.rectangle([x0, y0, right, bottom], fill=look.color)
        elif look.shape == "capsule":
            radius = max(1, (right - x0) // 2)
            draw.rounded_rectangle([x0, y0, right, bottom], radius=radius, fill=look.color)
        else:
            draw.polygon(_shape_polygon(look.shape, x0, y0, right, bottom), fill=look.color)
        size = max(6, int(0.45 * (y1 - y0)))
        glyph_y = (y0 + y1) / 2 + (0.12 * (y1 - y0) if look.shape == "triangle" else 0.0)
        draw.text(
            ((x0 + x1) / 2, glyph_y),
            look.glyph,
            fill=(255, 255, 255),
            font=_font(size),
            anchor="mm",
        )
    return image


def render_frames(
    objects: Sequence[SceneObject],
    settings: SceneSettings,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[list[list[int]]], list[np.ndarray]]:
    """Draws every frame of a clip.

    Objects are drawn back to front by the bottom of their box (lower in the picture = nearer).

    Returns:
      frames `[num_frames, height, width, 3]` uint8, boxes per object per frame
      (`[objects][frames][4]`), azimuths per object `[num_frames]` in degrees.
    """
    camera = settings.camera_model()
    background = render_background(rng, *settings.frame_size)
    times_s = settings.frame_times_s()
    azimuths = [item.azimuth_at(times_s, settings.clip_seconds) for item in objects]
    boxes = [[object_box(camera, item, a) for a in track] for item, track in zip(objects, azimuths)]
    looks = [class_look(item.class_name) for item in objects]
    frames = np.empty((len(times_s), settings.frame_size[1], settings.frame_size[0], 3), np.uint8)
    for frame in range(len(times_s)):
        order = sorted(range(len(objects)), key=lambda i: (boxes[i][frame][3], i))
        image = draw_objects(background, [(looks[i], boxes[i][frame]) for i in order])
        frames[frame] = np.asarray(image)
    return frames, boxes, azimuths


# === Clips =======================================================================================


@dataclasses.dataclass
class RenderedClip:
    """One rendered clip in memory.

    Attributes:
      clip_id: six-digit id, e.g. "000001".
      binaural: `[num_samples, 2]` float32 (left, right), on the 16-bit PCM grid.
      frames: `[num_frames, height, width, 3]` uint8.
      metadata: the JSON-able description (`clip_metadata`).
    """

    clip_id: str
    binaural: np.ndarray
    frames: np.ndarray
    metadata: dict

    @property
    def mono(self) -> np.ndarray:
        """`[num_samples]` float32 m = (L + R) / 2 (SPEC section 1): the video's audio track."""
        return ((self.binaural[:, 0].astype(np.float64) + self.binaural[:, 1]) / 2.0).astype(
            np.float32
        )


def clip_id(index: int) -> str:
    """FAIR-Play style id of clip `index` (1-based): 1 -> "000001"."""
    return f"{index:06d}"


@functools.lru_cache(maxsize=4)
def _source_bank(sources_dir: str | None, sample_rate_hz: int) -> SourceBank:
    return SourceBank(sources_dir, sample_rate_hz)


def _round(values, digits: int = 4):
    return np.round(np.asarray(values, dtype=np.float64), digits).tolist()


def clip_metadata(
    index: int,
    seed: int,
    settings: SceneSettings,
    objects: Sequence[SceneObject],
    boxes: Sequence[Sequence[Sequence[int]]],
    azimuths: Sequence[np.ndarray],
    hrirs: HrirSet,
    gain_db: float,
) -> dict:
    """The metadata JSON of one clip (schema version 1).

    Top level: id, index, seed, version, sample_rate_hz, clip_seconds, num_samples,
    frame_rate_hz, num_frames, frame_size [width, height], frame_times_s [num_frames] (the time
    each frame shows), camera (`Camera.to_json`), hrtf {name, distance_m}, peak, gain_db (the
    normalisation applied to the mix), noise_db, files {binaural, video, frames}, and objects:
    a list (sounding ones first) of
      class: str; sounding: bool; moving: bool;
      azimuth_deg: a number (static) or a list with one azimuth per frame (moving), +left;
      start_azimuth_deg, end_azimuth_deg: the ends of the raised-cosine path (equal if static);
      boxes_xyxy: one [x0, y0, x1, y1] per frame, integer pixel edges (x1, y1 exclusive);
      gain_db: its level in the mix before normalisation (0 for silent objects);
      look: {shape, color [r, g, b], glyph}.
    """
    identifier = clip_id(index)
    described = []
    for item, item_boxes, track in zip(objects, boxes, azimuths):
        look = class_look(item.class_name)
        described.append(
            {
                "class": item.class_name,
                "sounding": bool(item.sounding),
                "moving": bool(item.moving),
                "azimuth_deg": _round(track) if item.moving else round(item.start_azimuth_deg, 4),
                "start_azimuth_deg": round(item.start_azimuth_deg, 4),
                "end_azimuth_deg": round(item.end_azimuth_deg, 4),
                "boxes_xyxy": [list(map(int, box)) for box in item_boxes],
                "gain_db": round(item.gain_db, 3),
                "look": {"shape": look.shape, "color": list(look.color), "glyph": look.glyph},
            }
        )
    return {
        "id": identifier,
        "index": index,
        "seed": seed,
        "version": METADATA_VERSION,
        "sample_rate_hz": settings.sample_rate_hz,
        "clip_seconds": settings.clip_seconds,
        "num_samples": settings.num_samples,
        "frame_rate_hz": FRAMES_PER_SECOND,
        "num_frames": settings.num_frames,
        "frame_size": list(settings.frame_size),
        "frame_times_s": _round(settings.frame_times_s()),
        "camera": settings.camera_model().to_json(),
        "hrtf": {
            "name": settings.hrtf,
            "distance_m": None if math.isnan(hrirs.distance_m) else hrirs.distance_m,
        },
        "peak": settings.peak,
        "gain_db": round(gain_db, 3),
        "noise_db": settings.noise_db,
        "files": {
            "binaural": f"binaural_audios/{identifier}.wav",
            "video": f"videos/{identifier}.mp4",
            "frames": f"frames/{identifier}.mp4",
        },
        "objects": described,
    }


def make_clip(index: int, settings: SceneSettings, seed: int = 0) -> RenderedClip:
    """Samples and renders clip `index` (1-based) of the dataset with `seed`, in memory.

    Depends only on (seed, index, settings): `SeedSequence([seed, index])` feeds separate
    streams for the scene, the sound and the picture.
    """
    hrirs = load_hrirs(settings.hrtf, settings.sample_rate_hz)
    bank = _source_bank(settings.sources_dir, settings.sample_rate_hz)
    scene_seed, audio_seed, picture_seed = np.random.SeedSequence([seed, index]).spawn(3)
    objects = sample_scene(np.random.default_rng(scene_seed), settings, bank.classes)
    binaural, gain_db = render_audio(
        objects, settings, np.random.default_rng(audio_seed), hrirs, bank
    )
    frames, boxes, azimuths = render_frames(objects, settings, np.random.default_rng(picture_seed))
    metadata = clip_metadata(index, seed, settings, objects, boxes, azimuths, hrirs, gain_db)
    return RenderedClip(clip_id(index), binaural, frames, metadata)


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    mono: np.ndarray,
    frame_rate_hz: int = FRAMES_PER_SECOND,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> None:
    """Writes an mp4: H.264 video (yuv420p, CRF 18, single-threaded x264) and AAC mono audio.

    Not atomic by itself (`write_clip` wraps it). Args: frames `[num_frames, height, width, 3]`
    uint8 RGB; mono `[time]` float in [-1, 1] at `sample_rate_hz`. The encoder settings, and why
    they make the bytes deterministic, are in `keras_binaural.data.video`.
    """
    # Imported here so that the rest of the module needs no FFmpeg (PyAV).
    from keras_binaural.data import video

    mono = np.asarray(mono, dtype=np.float32)[:, None]
    video.write_video(path, frames, mono, frame_rate_hz, sample_rate_hz, container_format="mp4")


def clip_paths(output_dir: str | os.PathLike, identifier: str) -> dict[str, str]:
    """Paths of one clip's files: binaural, frames (a folder), video, metadata."""
    output_dir = os.fspath(output_dir)
    return {
        "binaural": os.path.join(output_dir, "binaural_audios", f"{identifier}.wav"),
        "frames": os.path.join(output_dir, "frames", f"{identifier}.mp4"),
        "video": os.path.join(output_dir, "videos", f"{identifier}.mp4"),
        "metadata": os.path.join(output_dir, "metadata", f"{identifier}.json"),
    }


def clip_finished(output_dir: str | os.PathLike, identifier: str) -> bool:
    """A clip is finished when its metadata (always written last) exists."""
    return os.path.isfile(clip_paths(output_dir, identifier)["metadata"])


def write_clip(
    output_dir: str | os.PathLike, clip: RenderedClip, sample_rate_hz: int = SAMPLE_RATE_HZ
) -> None:
    """Writes one clip's files, each atomically, the metadata last (see the module docstring)."""
    paths = clip_paths(output_dir, clip.clip_id)
    write_wav(paths["binaural"], clip.binaural, sample_rate_hz)
    with (
        files.atomic_directory(paths["frames"]) as frames_dir,
        files.atomic_file(paths["video"]) as video,
    ):
        for index, frame in enumerate(clip.frames):
            Image.fromarray(frame).save(
                os.path.join(frames_dir, f"{index + 1:06d}.png"), format="PNG"
            )
        write_video(video, clip.frames, clip.mono, FRAMES_PER_SECOND, sample_rate_hz)
    files.write_json(paths["metadata"], clip.metadata)


def generate_clip(
    output_dir: str | os.PathLike, index: int, settings: SceneSettings, seed: int = 0
) -> bool:
    """Makes and writes clip `index` unless it is finished already. Returns True if it was made."""
    if clip_finished(output_dir, clip_id(index)):
        return False
    write_clip(output_dir, make_clip(index, settings, seed), settings.sample_rate_hz)
    return True


# === Dataset =====================================================================================


def assign_splits(
    ids: Sequence[str],
    seed: int,
    split: int = 1,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> dict[str, list[str]]:
    """Deterministic train/val/test split of clip ids (by clip), numbered `split` (1, 2, ...).

    Each split is its own shuffle from (seed, split). Validation and test each get
    round(fraction x n) clips, at least one each when there are three or more clips.

    Returns:
      {"train": [...], "val": [...], "test": [...]}, each sorted.
    """
    ids = sorted(ids)
    count = len(ids)
    order = np.random.default_rng(np.random.SeedSequence([seed, 7919, split])).permutation(count)
    num_val = round(fractions[1] * count)
    num_test = round(fractions[2] * count)
    if count >= 3:
        num_val, num_test = max(1, num_val), max(1, num_test)
    shuffled = [ids[i] for i in order]
    return {
        "val": sorted(shuffled[:num_val]),
        "test": sorted(shuffled[num_val : num_val + num_test]),
        "train": sorted(shuffled[num_val + num_test :]),
    }


def write_splits(
    output_dir: str | os.PathLike, ids: Sequence[str], seed: int, num_splits: int = 1
) -> None:
    """Writes `splits/splitK/{train,val,test}.{txt,h5}` for K = 1..num_splits, and split 1 again
    as `splits/{train,val,test}.txt`. The h5 files hold a dataset `audio`: absolute wav paths as
    bytes, like FAIR-Play's (written without timestamps, so they are byte-identical on reruns).
    """
    output_dir = os.path.abspath(os.fspath(output_dir))
    for split in range(1, num_splits + 1):
        parts = assign_splits(ids, seed, split)
        folder = os.path.join(output_dir, "splits", f"split{split}")
        for name in SPLIT_NAMES:
            text = "".join(f"{identifier}\n" for identifier in parts[name])
            files.write_text(os.path.join(folder, f"{name}.txt"), text)
            if split == 1:
                files.write_text(os.path.join(output_dir, "splits", f"{name}.txt"), text)
            paths = [
                clip_paths(output_dir, identifier)["binaural"].encode("utf-8")
                for identifier in parts[name]
            ]
            with (
                files.atomic_file(os.path.join(folder, f"{name}.h5")) as temporary,
                h5py.File(temporary, "w", track_order=False) as handle,
            ):
                handle.create_dataset("audio", data=np.array(paths, dtype=bytes), track_times=False)


def dataset_description(settings: SceneSettings, seed: int) -> dict:
    """What `dataset.json` holds: the generator settings, the seed, the classes and their looks."""
    bank = _source_bank(settings.sources_dir, settings.sample_rate_hz)
    return {
        "generator": "keras_binaural.data.synthetic",
        "version": METADATA_VERSION,
        "seed": seed,
        "settings": settings.to_json(),
        "classes": {
            name: {
                "look": dataclasses.asdict(class_look(name)),
                "source": "recordings" if name in bank.recordings else "synthesizer",
            }
            for name in bank.classes
        },
    }


def _check_or_write_description(output_dir: str, description: dict) -> None:
    path = os.path.join(output_dir, "dataset.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as stream:
            existing = json.load(stream)
        expected = json.loads(json.dumps(description))
        if existing != expected:
            changed = sorted(
                key
                for key in set(existing.get("settings", {})) | set(expected["settings"])
                if existing.get("settings", {}).get(key) != expected["settings"].get(key)
            )
            for key in ("classes", "seed", "version", "generator"):
                if existing.get(key) != expected[key]:
                    changed.insert(
                        0, f"generator version {existing.get(key)}" if key == "version" else key
                    )
            raise SceneError(
                f"{output_dir}: holds a dataset made with other settings (differs in: "
                f"{', '.join(changed)}); use another --output_dir or the same settings"
            )
        return
    files.write_json(path, description)


def _worker(task: tuple[str, int, SceneSettings, int]) -> tuple[int, bool]:
    output_dir, index, settings, seed = task
    return index, generate_clip(output_dir, index, settings, seed)


def make_dataset(
    output_dir: str | os.PathLike,
    settings: SceneSettings,
    num_clips: int,
    seed: int = 0,
    workers: int = 1,
    num_splits: int = 1,
    progress: bool = False,
) -> dict:
    """Writes (or completes) a synthetic dataset of clips 1..num_clips in `output_dir`.

    Finished clips are skipped, so an interrupted run can simply be rerun; a rerun with other
    settings or another seed is refused (`dataset.json`). `num_clips` may grow on a rerun
    (clips do not depend on it; the splits are rewritten).

    Args:
      workers: processes rendering clips in parallel (1 renders in this process).
      num_splits: how many train/val/test splits to write (`splits/splitK`).
      progress: show a tqdm progress bar.

    Returns:
      {"made": clips rendered now, "skipped": clips already finished, "ids": all clip ids}.
    """
    if num_clips < 1:
        raise SceneError(f"num_clips must be at least 1, got {num_clips}")
    if workers < 1:
        raise SceneError(f"workers must be at least 1, got {workers}")
    output_dir = os.path.abspath(os.fspath(output_dir))
    load_hrirs(settings.hrtf, settings.sample_rate_hz)  # fail early (and warm the cache to fork)
    classes = _source_bank(settings.sources_dir, settings.sample_rate_hz).classes
    if settings.max_sources > len(classes):
        raise SceneError(
            f"max_sources={settings.max_sources} but only {len(classes)} classes exist"
        )
    os.makedirs(output_dir, exist_ok=True)
    _check_or_write_description(output_dir, dataset_description(settings, seed))

    ids = [clip_id(index) for index in range(1, num_clips + 1)]
    todo = [
        index for index in range(1, num_clips + 1) if not clip_finished(output_dir, clip_id(index))
    ]
    skipped = num_clips - len(todo)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=num_clips, initial=skipped, unit="clip", desc="clips")
    tasks = [(output_dir, index, settings, seed) for index in todo]
    made, pool = 0, None
    try:
        if workers == 1 or len(tasks) <= 1:
            results = map(_worker, tasks)
        else:
            pool = multiprocessing.get_context().Pool(min(workers, len(tasks)))
            results = pool.imap_unordered(_worker, tasks)
        for _, was_made in results:
            made += int(was_made)
            if bar is not None:
                bar.update(1)
        if pool is not None:
            pool.close()
            pool.join()
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.terminate()
    write_splits(output_dir, ids, seed, num_splits)
    return {"made": made, "skipped": skipped, "ids": ids}
