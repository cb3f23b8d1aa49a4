"""Rendering a synthetic scene (`keras_binaural.data.scenes`) to binaural sound and 10-fps frames.

- **Sound** (`render_audio`): each sounding object plays a phrase of its class
  (`keras_binaural.data.sources`), convolved with the HRIR pair of its azimuth
  (`keras_binaural.data.hrtf`). A moving object's sound is rendered block-wise (`spatialize`:
  50 %-overlapping periodic-Hann blocks of 2 x 256 samples, each convolved with the HRIR of the
  azimuth at the block's centre and overlap-added, so the filters cross-fade every 16 ms). A
  faint diffuse noise floor (independent in the two ears, `noise_db` below one source's level) is
  added, then the mix is scaled to a peak of `peak` (0.9) and rounded to 16-bit PCM values,
  exactly as the WAV file holds them.
- **Picture** (`render_frames`): 10 frames per second; frame k (1-based) shows the scene at the
  centre of [(k - 1) / 10, k / 10) s, matching SPEC's frame index for a chunk. Each object is
  drawn in its class's look as a flat colour at x = camera.x_from_azimuth(azimuth) on a plain
  room background (wall, floor, soft texture).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence

import numpy as np
import scipy.signal
from PIL import Image, ImageDraw, ImageFont

from keras_binaural.data.hrtf import HrirSet
from keras_binaural.data.scenes import (
    Camera,
    Look,
    SceneError,
    SceneObject,
    SceneSettings,
    class_look,
)
from keras_binaural.data.sources import SourceBank

_HOP_SAMPLES = 256  # block hop of the time-varying (moving source) rendering, 16 ms


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
    with_sources: bool = False,
) -> tuple[np.ndarray, float] | tuple[np.ndarray, float, np.ndarray]:
    """The binaural mix of the sounding objects, peak-normalised and on the 16-bit grid.

    Args:
      with_sources: also return each sounding object's own binaural signal in the mix.

    Returns:
      (binaural `[num_samples, 2]` float32 (left, right) with max |sample| = settings.peak,
      the normalisation gain in dB) and with `with_sources` `[num_sounding, num_samples, 2]`
      float32: each sounding object's part of the mix (in `objects`' order, at the mix's gain,
      not quantised; the mix is their sum plus the noise floor).
    """
    num_samples = settings.num_samples
    mix = np.zeros((num_samples, 2), dtype=np.float64)
    sources = []
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
        sources.append(spatialize(mono, azimuths, hrirs))
        mix += sources[-1]
    noise_rms = 0.1 * 10.0 ** (settings.noise_db / 20.0)  # sources are normalised to RMS 0.1
    noise = rng.standard_normal((num_samples, 2))
    noise = scipy.signal.lfilter([1.0], [1.0, -0.9], noise, axis=0)  # a darker, room-like hiss
    mix += noise * (noise_rms / max(float(np.sqrt(np.mean(noise**2))), 1e-12))
    peak = float(np.max(np.abs(mix)))
    gain = settings.peak / peak if peak > 0 else 1.0
    binaural, gain_db = quantize_pcm16(mix * gain), 20.0 * math.log10(gain)
    if not with_sources:
        return binaural, gain_db
    return binaural, gain_db, (np.asarray(sources).reshape(-1, num_samples, 2) * gain).astype(
        np.float32)


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


