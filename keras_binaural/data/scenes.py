"""What a synthetic scene is: its camera, the classes' looks, its settings and the random scene.

A clip of `keras_binaural.data.synthetic` is a scene of 1..`max_sources` sounding objects
(distinct classes) and 0..`distractors` silent objects, seen by a camera and heard by a measured
head. The silent objects are of classes no sounding object of the clip has (`distractor_classes
= "other"`, the default), or of any class (`"any"`: a silent object may then look exactly like a
sounding one, which no map from the frame and the mono can tell apart):

- **Camera** (`Camera`, written into every clip's metadata): `pinhole:FOV` maps azimuth to
  x = cx - f tan(azimuth) with f = cx / tan(FOV / 2); `equirect` maps the full circle linearly,
  x = cx - azimuth / 360 * width. +azimuth is left (SOFA), so a source left of the image centre
  is louder and earlier in the left ear.
- **Looks**: each class has its own shape, colour and glyph (`class_look`).
- **Scene** (`sample_scene`): the objects, their classes and azimuths; a moving object's azimuth
  follows a raised-cosine path from a start to an end azimuth over the clip. Elevation is 0 for
  sound; objects stand around the horizon (image centre row) with a small vertical jitter that
  is visual only.

`keras_binaural.data.rendering` turns a scene into sound and pictures.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import zlib
from collections.abc import Sequence

import numpy as np

from keras_binaural.conventions import FRAMES_PER_SECOND, SAMPLE_RATE_HZ


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
      distractors: each clip has 0..distractors silent objects.
      distractor_classes: "other" (silent objects are of classes none of the clip's sounding
        objects has) or "any".
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
    distractor_classes: str = "other"
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
        if self.distractor_classes not in ("other", "any"):
            raise SceneError(
                f"distractor_classes must be 'other' or 'any', got {self.distractor_classes!r}"
            )
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
    silent_pool = [c for c in classes
                   if settings.distractor_classes == "any" or c not in sounding_classes]
    silent_classes = ([silent_pool[i] for i in rng.integers(0, len(silent_pool), num_silent)]
                      if silent_pool else [])
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


