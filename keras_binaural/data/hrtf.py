"""Measured head-related impulse responses (HRIRs) on the horizontal plane, at 16 kHz.

Two sources of HRIRs:
- **MIT KEMAR** (the default, `load_hrirs("kemar")`): the "normal pinna" set of the KEMAR dummy
  head (Gardner & Martin, MIT Media Lab, 1994; 710 directions, elevations -40..90 deg, 44.1 kHz,
  512 taps) as shipped in the PyPI package `slab` (`slab/data/mit_kemar_normal_pinna.bz2`).
  That file is a bz2 pickle of slab objects. `import slab` needs the PortAudio system library,
  so we never import slab: the file is found with `importlib.util.find_spec` and read with a
  restricted unpickler that admits only numpy's array reconstruction and two inert stand-in
  classes for slab's `HRTF` and `Filter` (see `_KemarUnpickler`).
- **Any SOFA file** (AES69, convention SimpleFreeFieldHRIR or any other FIR convention), read
  with h5py (SOFA is netCDF-4, i.e. HDF5): `Data.IR [M, R=2, N]`, `Data.SamplingRate`,
  `Data.Delay` (added as leading zeros), `SourcePosition [M, 3]` (spherical azimuth/elevation in
  degrees, distance in metres, or cartesian metres), `ReceiverPosition` (to find the left ear).

Conventions (SOFA's): azimuth 0 deg is straight ahead, **+azimuth is to the listener's left**
(counter-clockwise seen from above), elevation 0 is the horizontal plane. Channel order is
(left, right). All azimuths are wrapped to [-180, 180).

Only the horizontal plane is kept: directions with |elevation| <= 0.5 deg; if the set was
measured at several distances, the distance with the most horizontal directions (ties: the
farthest). The impulse responses are resampled to 16 kHz with `scipy.signal.resample_poly`
(linear phase, its delay compensated, so onsets do not move).

**Interpolation between measured azimuths** (`HrirSet.hrirs_at`): time-aligned linear
interpolation. Plain linear interpolation of two impulse responses whose onsets differ
comb-filters the result, so each measured HRIR (per ear) is split into an onset delay tau (the
first crossing of 20 % of its peak magnitude, with sub-sample precision by linear interpolation
of the crossing) and an aligned response (the HRIR advanced by tau, as a phase ramp on its
zero-padded spectrum). For an azimuth between the two nearest measured azimuths a <= az <= b,
with w = (az - a) / (b - a), both parts are interpolated linearly,
    tau(az) = (1 - w) tau_a + w tau_b,   H(az) = ((1 - w) H_a + w H_b) * exp(-2 pi i f tau(az)),
and the result is cut to the measured length. At a measured azimuth this returns the measured
HRIR. The interpolation wraps around +-180 deg; an azimuth whose bracketing measured azimuths
are more than `max_gap_deg` (45 deg) apart raises `HrtfError` (e.g. a frontal-only set asked
for a direction behind the head).

Example:
  hrirs = load_hrirs("kemar")                  # cached; a .sofa path works the same way
  pair = hrirs.hrir(30.0)                      # [taps, 2] float32, a source 30 deg to the left
  left, right = np.convolve(mono, pair[:, 0]), np.convolve(mono, pair[:, 1])
"""

from __future__ import annotations

import bz2
import dataclasses
import fractions
import functools
import importlib.util
import io
import os
import pickle

import h5py
import numpy as np
import scipy.signal

from keras_binaural.conventions import SAMPLE_RATE_HZ

KEMAR_NAME = "kemar"
KEMAR_FILE = "mit_kemar_normal_pinna.bz2"

_HORIZONTAL_TOLERANCE_DEG = 0.5
_ONSET_THRESHOLD = 0.2  # fraction of the peak magnitude that marks an impulse response's onset
_MAX_GAP_DEG = 45.0


class HrtfError(ValueError):
    """An HRTF that cannot be used; the message names the file (or set) and the problem."""


def wrap_azimuth_deg(azimuth_deg):
    """Wraps azimuths in degrees to [-180, 180). Works on numbers and numpy arrays."""
    return (np.asarray(azimuth_deg, dtype=np.float64) + 180.0) % 360.0 - 180.0


def onset_samples(impulse_responses: np.ndarray, threshold: float = _ONSET_THRESHOLD) -> np.ndarray:
    """Onset time of impulse responses: the first crossing of `threshold` x peak magnitude.

    Args:
      impulse_responses: `[..., taps]`.
      threshold: fraction of each response's peak absolute value.

    Returns:
      `[...]` float64 onsets in samples, sub-sample precise (the crossing is interpolated
      linearly between the two samples around it). An all-zero response has onset 0.
    """
    magnitude = np.abs(np.asarray(impulse_responses, dtype=np.float64))
    level = threshold * magnitude.max(axis=-1, keepdims=True)
    above = magnitude >= level
    first = np.argmax(above, axis=-1)
    before = np.maximum(first - 1, 0)
    m1 = np.take_along_axis(magnitude, first[..., None], -1)[..., 0]
    m0 = np.take_along_axis(magnitude, before[..., None], -1)[..., 0]
    lvl = level[..., 0]
    fraction = np.where(m1 > m0, (lvl - m0) / np.where(m1 > m0, m1 - m0, 1.0), 1.0)
    onset = np.where(first > 0, before + np.clip(fraction, 0.0, 1.0), 0.0)
    return np.where(lvl > 0, onset, 0.0)


@dataclasses.dataclass(frozen=True, eq=False)
class HrirSet:
    """Horizontal-plane HRIRs of one head, sorted by azimuth, at one sample rate.

    Attributes:
      name: where the set came from (a file path, or "kemar").
      azimuths_deg: `[directions]` float64, sorted, unique, in [-180, 180); +azimuth = left.
      hrirs: `[directions, taps, 2]` float32 impulse responses, channels (left, right).
      sample_rate_hz: the rate of `hrirs` (16000 unless asked otherwise).
      distance_m: the source distance of the measurements (NaN when the file does not say).
    """

    name: str
    azimuths_deg: np.ndarray
    hrirs: np.ndarray
    sample_rate_hz: int
    distance_m: float = float("nan")
    max_gap_deg: float = _MAX_GAP_DEG

    def __post_init__(self):
        # Precomputed parts of the time-aligned interpolation (module docstring).
        taps = self.hrirs.shape[1]
        fft_size = 1 << int(np.ceil(np.log2(2 * taps)))
        onsets = onset_samples(np.moveaxis(self.hrirs, 1, 2))  # [directions, 2]
        spectra = np.fft.rfft(self.hrirs.astype(np.float64), n=fft_size, axis=1)
        ramp = _phase_ramp(fft_size, onsets)  # [directions, bins, 2]
        object.__setattr__(self, "_fft_size", fft_size)
        object.__setattr__(self, "_onsets", onsets)
        object.__setattr__(self, "_aligned", spectra / ramp)

    @property
    def num_taps(self) -> int:
        return int(self.hrirs.shape[1])

    def hrirs_at(self, azimuths_deg) -> np.ndarray:
        """HRIR pairs for any azimuths (time-aligned linear interpolation, module docstring).

        Args:
          azimuths_deg: `[k]` (or a scalar) azimuths in degrees, +left, any range (wrapped).

        Returns:
          `[k, taps, 2]` float32 (left, right) at `sample_rate_hz`.

        Raises:
          HrtfError: an azimuth lies in a gap of more than `max_gap_deg` between measurements.
        """
        query = np.atleast_1d(wrap_azimuth_deg(azimuths_deg))
        lower, upper, weight = self._neighbours(query)
        w = weight[:, None, None]
        onsets = (1.0 - weight[:, None]) * self._onsets[lower] + weight[:, None] * self._onsets[
            upper
        ]
        aligned = (1.0 - w) * self._aligned[lower] + w * self._aligned[upper]
        spectra = aligned * _phase_ramp(self._fft_size, onsets)
        responses = np.fft.irfft(spectra, n=self._fft_size, axis=1)[:, : self.num_taps]
        return responses.astype(np.float32)

    def hrir(self, azimuth_deg: float) -> np.ndarray:
        """The `[taps, 2]` float32 (left, right) HRIR pair for one azimuth in degrees (+left)."""
        return self.hrirs_at([azimuth_deg])[0]

    def _neighbours(self, query: np.ndarray):
        """Indices of the measured azimuths around each query, and the weight of the upper one."""
        measured = self.azimuths_deg
        count = len(measured)
        upper = np.searchsorted(measured, query, side="left") % count
        exact = np.isclose(measured[upper], query, atol=1e-9, rtol=0.0)
        lower = np.where(exact, upper, (upper - 1) % count)
        gap = (measured[upper] - measured[lower]) % 360.0
        if count == 1:
            gap = np.where(exact, 0.0, 360.0)
        offset = (query - measured[lower]) % 360.0
        too_far = (gap > self.max_gap_deg) & ~exact
        if np.any(too_far):
            bad = int(np.argmax(too_far))
            raise HrtfError(
                f"{self.name}: no measured horizontal direction near azimuth {query[bad]:.1f} deg "
                f"(the nearest measured azimuths, {measured[lower[bad]]:.1f} and "
                f"{measured[upper[bad]]:.1f} deg, are {gap[bad]:.1f} deg apart; at most "
                f"{self.max_gap_deg:.0f} deg is interpolated)"
            )
        weight = np.where(gap > 0, offset / np.where(gap > 0, gap, 1.0), 0.0)
        return lower, upper, weight


def _phase_ramp(fft_size: int, delays_samples: np.ndarray) -> np.ndarray:
    """exp(-2 pi i f delay): `[..., channels]` delays -> `[..., bins, channels]` complex."""
    frequencies = np.fft.rfftfreq(fft_size)  # cycles per sample
    return np.exp(-2j * np.pi * frequencies[:, None] * np.asarray(delays_samples)[..., None, :])


def horizontal_hrir_set(
    name: str,
    impulse_responses: np.ndarray,
    source_sample_rate_hz: float,
    source_positions: np.ndarray,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> HrirSet:
    """Builds the horizontal-plane `HrirSet` from a full set of measured directions.

    Args:
      name: the file or set name, used in error messages.
      impulse_responses: `[directions, 2, taps]` (SOFA's Data.IR layout, receivers (left, right)).
      source_sample_rate_hz: the rate of `impulse_responses`.
      source_positions: `[directions, 3]` azimuth (deg, +left), elevation (deg), distance (m).
      sample_rate_hz: the output rate.

    Raises:
      HrtfError: no direction on the horizontal plane, or non-finite impulse responses.
    """
    impulse_responses = np.asarray(impulse_responses, dtype=np.float64)
    positions = np.asarray(source_positions, dtype=np.float64)
    if not np.all(np.isfinite(impulse_responses)):
        raise HrtfError(f"{name}: the impulse responses hold NaN or Inf values")
    horizontal = np.abs(positions[:, 1]) <= _HORIZONTAL_TOLERANCE_DEG
    if not np.any(horizontal):
        raise HrtfError(
            f"{name}: no horizontal-plane directions (elevation 0 deg, within "
            f"{_HORIZONTAL_TOLERANCE_DEG} deg); the measured elevations range from "
            f"{positions[:, 1].min():.1f} to {positions[:, 1].max():.1f} deg"
        )
    distances = np.round(positions[horizontal, 2], 3)
    if np.all(np.isfinite(distances)):
        values, counts = np.unique(distances, return_counts=True)
        best = values[counts == counts.max()].max()
        horizontal &= np.isclose(np.round(positions[:, 2], 3), best)
        distance_m = float(best)
    else:
        distance_m = float("nan")
    azimuths = wrap_azimuth_deg(positions[horizontal, 0])
    responses = impulse_responses[horizontal]
    azimuths, first = np.unique(np.round(azimuths, 6), return_index=True)  # sorted, no repeats
    responses = responses[first]

    rate = fractions.Fraction(float(source_sample_rate_hz)).limit_denominator(1000)
    if rate <= 0:
        raise HrtfError(f"{name}: invalid sampling rate {source_sample_rate_hz} Hz")
    ratio = fractions.Fraction(sample_rate_hz) / rate
    if ratio != 1:
        responses = scipy.signal.resample_poly(
            responses, ratio.numerator, ratio.denominator, axis=-1
        )
    hrirs = np.ascontiguousarray(np.moveaxis(responses, 1, 2), dtype=np.float32)
    return HrirSet(
        name=name,
        azimuths_deg=azimuths.astype(np.float64),
        hrirs=hrirs,
        sample_rate_hz=int(sample_rate_hz),
        distance_m=distance_m,
    )


# --- SOFA ---------------------------------------------------------------------------------------


def _text_attribute(attributes, key: str) -> str | None:
    if key not in attributes:
        return None
    value = attributes[key]
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else b""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


def _spherical_positions(dataset, count: int) -> np.ndarray:
    """SourcePosition as `[count, 3]` azimuth/elevation (deg), distance (m)."""
    positions = np.asarray(dataset[()], dtype=np.float64)
    positions = np.broadcast_to(positions.reshape(-1, 3), (count, 3)).copy()
    kind = (_text_attribute(dataset.attrs, "Type") or "spherical").lower()
    if kind == "cartesian":
        x, y, z = positions.T
        positions = np.stack(
            [
                np.degrees(np.arctan2(y, x)),
                np.degrees(np.arctan2(z, np.hypot(x, y))),
                np.sqrt(x**2 + y**2 + z**2),
            ],
            axis=1,
        )
    else:
        units = (_text_attribute(dataset.attrs, "Units") or "degree").lower()
        if units.startswith("rad"):
            positions[:, :2] = np.degrees(positions[:, :2])
    return positions


def read_sofa(path: str | os.PathLike, sample_rate_hz: int = SAMPLE_RATE_HZ) -> HrirSet:
    """Reads the horizontal-plane HRIRs of a SOFA (AES69) file, resampled to `sample_rate_hz`.

    Uncached; `load_hrirs(path)` is the cached entry point.

    Args:
      path: a `.sofa` file with impulse responses (DataType FIR, e.g. SimpleFreeFieldHRIR).
      sample_rate_hz: output rate.

    Raises:
      HrtfError: missing file, not HDF5/netCDF-4, not FIR data, not 2 receivers, no
        horizontal-plane directions. The message starts with the path.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise HrtfError(f"{path}: no such SOFA file")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise HrtfError(f"{path}: not a SOFA file (cannot be opened as netCDF-4/HDF5: {error})")
    with handle:
        conventions = _text_attribute(handle.attrs, "SOFAConventions") or "unknown convention"
        data_type = _text_attribute(handle.attrs, "DataType")
        if data_type is not None and not data_type.upper().startswith("FIR"):
            raise HrtfError(
                f"{path}: not HRIR data: the SOFA file holds DataType {data_type!r} "
                f"({conventions}); impulse responses (DataType 'FIR', SimpleFreeFieldHRIR) "
                "are needed"
            )
        for key in ("Data.IR", "Data.SamplingRate", "SourcePosition"):
            if key not in handle:
                raise HrtfError(
                    f"{path}: not HRIR data: no {key!r} variable ({conventions}); a SOFA "
                    f"SimpleFreeFieldHRIR file is needed"
                )
        responses = np.asarray(handle["Data.IR"][()], dtype=np.float64)
        if responses.ndim != 3 or responses.shape[1] != 2 or responses.shape[2] < 2:
            raise HrtfError(
                f"{path}: not HRIR data for two ears: Data.IR has shape {responses.shape}, "
                f"expected [measurements, 2 receivers, taps]"
            )
        count = responses.shape[0]
        rates = np.unique(np.asarray(handle["Data.SamplingRate"][()], dtype=np.float64).ravel())
        if rates.size != 1 or not np.isfinite(rates[0]) or rates[0] <= 0:
            raise HrtfError(f"{path}: Data.SamplingRate must be one positive rate, got {rates}")
        positions = _spherical_positions(handle["SourcePosition"], count)
        if "Data.Delay" in handle:
            responses = _apply_delays(responses, np.asarray(handle["Data.Delay"][()]), path)
        if "ReceiverPosition" in handle and _receivers_right_first(handle["ReceiverPosition"]):
            responses = responses[:, ::-1]
    return horizontal_hrir_set(path, responses, float(rates[0]), positions, sample_rate_hz)


def _apply_delays(responses: np.ndarray, delays: np.ndarray, path: str) -> np.ndarray:
    """Adds SOFA's Data.Delay (`[1 or M, 2]` samples) as leading zeros (rounded to samples)."""
    try:
        delays = np.broadcast_to(np.rint(delays.reshape(-1, 2)), responses.shape[:2]).astype(int)
    except ValueError:
        raise HrtfError(f"{path}: Data.Delay of shape {delays.shape} does not fit Data.IR")
    if not np.any(delays):
        return responses
    if np.any(delays < 0):
        raise HrtfError(f"{path}: Data.Delay holds negative delays")
    out = np.zeros(responses.shape[:2] + (responses.shape[2] + delays.max(),))
    for index in np.ndindex(*responses.shape[:2]):
        start = delays[index]
        out[index][start : start + responses.shape[2]] = responses[index]
    return out


def _receivers_right_first(dataset) -> bool:
    """True when ReceiverPosition (cartesian) puts receiver 0 on the right (y < 0 is right)."""
    kind = (_text_attribute(dataset.attrs, "Type") or "cartesian").lower()
    positions = np.asarray(dataset[()], dtype=np.float64)
    if (
        kind != "cartesian"
        or positions.ndim < 2
        or positions.shape[0] != 2
        or positions.shape[1] < 2
    ):
        return False
    y = positions[:, 1].reshape(2, -1)[:, 0]
    return bool(y[0] < y[1])


# --- MIT KEMAR from the slab package -------------------------------------------------------------


class _SlabObject:
    """Inert stand-in for a pickled slab object: it only keeps its state dictionary."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"unexpected slab object state of type {type(state)}")
        self.state = state


class _SlabHrtf(_SlabObject):
    pass


class _SlabFilter(_SlabObject):
    pass


def _numpy_multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray  # numpy < 2
    return multiarray


class _KemarUnpickler(pickle.Unpickler):
    """Admits only numpy array reconstruction and the stand-ins for slab's HRTF and Filter."""

    def find_class(self, module: str, name: str):
        multiarray = _numpy_multiarray()
        allowed = {
            ("slab.hrtf", "HRTF"): _SlabHrtf,
            ("slab.filter", "Filter"): _SlabFilter,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
            ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
            ("numpy.core.multiarray", "scalar"): multiarray.scalar,
            ("numpy._core.multiarray", "scalar"): multiarray.scalar,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the HRTF file")
        return allowed[(module, name)]


def kemar_path() -> str:
    """Path of MIT KEMAR in the installed `slab` package, found without importing slab.

    Raises:
      HrtfError: slab is not installed, or its data file is missing.
    """
    spec = importlib.util.find_spec("slab")  # a top-level package: found, not imported
    if spec is None or not spec.submodule_search_locations:
        raise HrtfError(
            f"{KEMAR_NAME}: the MIT KEMAR HRIRs come with the PyPI package 'slab', which is not "
            f"installed (pip install slab), or name a .sofa file instead"
        )
    for folder in spec.submodule_search_locations:
        candidate = os.path.join(folder, "data", KEMAR_FILE)
        if os.path.isfile(candidate):
            return candidate
    raise HrtfError(f"{KEMAR_NAME}: slab is installed but has no data/{KEMAR_FILE}")


def read_kemar(
    path: str | os.PathLike | None = None, sample_rate_hz: int = SAMPLE_RATE_HZ
) -> HrirSet:
    """Reads MIT KEMAR (normal pinna) from slab's pickle, horizontal plane at `sample_rate_hz`.

    Uncached; `load_hrirs("kemar")` is the cached entry point.
    """
    path = os.fspath(path) if path is not None else kemar_path()
    try:
        with open(path, "rb") as stream:
            hrtf = _KemarUnpickler(io.BytesIO(bz2.decompress(stream.read()))).load()
        state = hrtf.state
        filters = [item.state for item in state["data"]]
        responses = np.stack([np.asarray(item["data"], dtype=np.float64) for item in filters])
        rate = float(state["samplerate"])
        positions = np.asarray(state["sources"], dtype=np.float64)
    except (
        OSError,
        EOFError,
        KeyError,
        AttributeError,
        TypeError,
        ValueError,
        pickle.UnpicklingError,
    ) as error:
        raise HrtfError(f"{path}: cannot read the MIT KEMAR HRIRs: {error}")
    if responses.ndim != 3 or responses.shape[2] != 2 or len(positions) != len(responses):
        raise HrtfError(f"{path}: unexpected KEMAR layout {responses.shape}, {positions.shape}")
    # slab stores [taps, (left, right)] per direction, with SOFA's azimuth convention (+left).
    return horizontal_hrir_set(
        KEMAR_NAME, np.moveaxis(responses, 2, 1), rate, positions, sample_rate_hz
    )


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, stamp: tuple, sample_rate_hz: int) -> HrirSet:
    del stamp  # part of the cache key only: a rewritten file is read again
    if name == KEMAR_NAME:
        return read_kemar(sample_rate_hz=sample_rate_hz)
    return read_sofa(name, sample_rate_hz)


def load_hrirs(
    name: str | os.PathLike = KEMAR_NAME, sample_rate_hz: int = SAMPLE_RATE_HZ
) -> HrirSet:
    """The horizontal-plane HRIR set named `name`, cached (loading KEMAR takes about a second).

    Args:
      name: "kemar" (MIT KEMAR from the slab package) or the path of a `.sofa` file.
      sample_rate_hz: output rate.

    Raises:
      HrtfError: an unknown name, or a file that cannot be used (see `read_sofa`).
    """
    name = os.fspath(name)
    if name.lower() == KEMAR_NAME:
        return _load_cached(KEMAR_NAME, (), int(sample_rate_hz))
    if not os.path.isfile(name):
        known = "'kemar' or the path of a .sofa file"
        what = "no such SOFA file" if name.lower().endswith(".sofa") else "unknown HRTF"
        raise HrtfError(f"{name}: {what}; use {known}")
    stat = os.stat(name)
    path = os.path.abspath(name)
    return _load_cached(path, (stat.st_mtime_ns, stat.st_size), int(sample_rate_hz))
