"""Sound sources for synthetic scenes: a small numpy synthesizer, or the user's own recordings.

Seven classes of clearly different timbre, each playing a random phrase (`random_phrase`):
- `guitar`: plucked string, Karplus-Strong (a noise burst circulating in a damped delay line).
- `violin`: bowed string, band-limited sawtooth with delayed vibrato through body resonances.
- `trumpet`: brass, harmonics whose brightness follows the loudness (a_k ~ envelope^(0.6+0.3k)),
  shaped by a formant around 1.3 kHz, with a lip "scoop" into pitch.
- `clarinet`: woodwind, odd harmonics (a closed pipe) plus breath noise.
- `piano`: struck string, slightly inharmonic partials (f_k = k f0 sqrt(1 + B k^2)), two detuned
  strings per note, decay faster for higher partials, damper at key release; some chords.
- `drums`: percussion, kick (falling sine), snare (noise + tone) and hi-hat (high noise) on a
  16th-note grid.
- `bell`: FM bell (inharmonic carrier:modulator 1:1.4, decaying modulation index).

Everything is deterministic given the `numpy.random.Generator` passed in. Output is mono float32
at `sample_rate_hz` (16 kHz), normalised to an RMS of `TARGET_RMS` (-20 dBFS).

**Recordings:** `SourceBank(sources_dir)` also takes mono recordings from
`sources_dir/<class>/*.wav` (or .flac/.ogg; stereo files are averaged to mono, any rate is
resampled): a class with recordings plays a random excerpt of a random recording instead of the
synthesizer; a folder with a new class name adds that class.

Example:
  rng = np.random.default_rng(0)
  audio = synthesize("violin", 16000 * 10, rng)        # [160000] float32, 10 s at 16 kHz
  bank = SourceBank("my_sources")                      # classes: built-in + folder names
  audio = bank.render("guitar", 16000 * 10, rng)
"""

from __future__ import annotations

import fractions
import functools
import os

import numpy as np
import scipy.signal
import soundfile

from keras_binaural.conventions import SAMPLE_RATE_HZ

TARGET_RMS = 0.1
SOURCE_CLASSES = ("guitar", "violin", "trumpet", "clarinet", "piano", "drums", "bell")
RECORDING_EXTENSIONS = (".wav", ".flac", ".ogg")

# MIDI note ranges (inclusive) of the melodic classes.
_REGISTERS = {
    "guitar": (45, 76),
    "violin": (60, 91),
    "trumpet": (52, 76),
    "clarinet": (50, 79),
    "piano": (43, 79),
    "bell": (72, 96),
}
_SCALES = {
    "major_pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
    "major": (0, 2, 4, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
}


class SourceError(ValueError):
    """An unknown class or an unusable recordings folder; the message says which."""


def midi_to_hz(midi) -> np.ndarray:
    """Frequency in Hz of MIDI note numbers (69 = A4 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def random_phrase(
    rng: np.random.Generator,
    duration_s: float,
    low_midi: int,
    high_midi: int,
    rest_probability: float = 0.1,
) -> list[tuple[float, float, float]]:
    """A random melody: a walk on a random scale in [low_midi, high_midi] at a random tempo.

    Returns:
      A list of notes (onset_s, duration_s, midi), sorted by onset, covering `duration_s`.
    """
    tempo_bpm = rng.uniform(80.0, 140.0)
    beat_s = 60.0 / tempo_bpm
    scale = list(_SCALES.values())[rng.integers(len(_SCALES))]
    root = int(rng.integers(12))
    pitches = [m for m in range(low_midi, high_midi + 1) if (m - root) % 12 in scale]
    position = int(rng.integers(len(pitches) // 4, 3 * len(pitches) // 4 + 1))
    lengths_beats = np.array([0.5, 1.0, 1.5, 2.0, 3.0])
    weights = np.array([0.3, 0.35, 0.1, 0.2, 0.05])
    notes, time_s = [], float(rng.uniform(0.0, 0.3))
    while time_s < duration_s:
        length_s = float(rng.choice(lengths_beats, p=weights)) * beat_s
        if rng.random() >= rest_probability:
            notes.append((time_s, length_s, float(pitches[position])))
        step = int(rng.choice([-2, -1, -1, 0, 1, 1, 2]))
        position = int(np.clip(position + step, 0, len(pitches) - 1))
        time_s += length_s
    return notes


def _envelope(
    num_samples: int, sample_rate_hz: int, attack_s: float, release_s: float
) -> np.ndarray:
    """Linear attack, sustain, linear release over exactly `num_samples` samples."""
    t = np.arange(num_samples) / sample_rate_hz
    total_s = num_samples / sample_rate_hz
    attack = np.clip(t / max(attack_s, 1e-4), 0.0, 1.0)
    release = np.clip((total_s - t) / max(release_s, 1e-4), 0.0, 1.0)
    return attack * release


def _harmonic_sum(phase: np.ndarray, amplitudes: np.ndarray) -> np.ndarray:
    """Sum of sin(k * phase) * amplitudes[k-1]; phase `[time]`, amplitudes `[K]` or `[K, time]`."""
    k = np.arange(1, len(amplitudes) + 1)[:, None]
    return np.sum(np.sin(k * phase[None, :]) * np.asarray(amplitudes).reshape(len(k), -1), axis=0)


def _num_harmonics(frequency_hz: float, sample_rate_hz: int, limit: int = 40) -> int:
    return int(max(1, min(limit, np.floor(0.45 * sample_rate_hz / frequency_hz))))


# --- one note of each class: (frequency_hz, duration_s, rng, sample_rate_hz) -> [time] -----------


def _guitar_note(frequency_hz, duration_s, rng, sample_rate_hz):
    # Karplus-Strong: y[n] = x[n] + rho/2 (y[n-L] + y[n-L-1]); the burst lasts one period.
    period = max(2, round(sample_rate_hz / frequency_hz - 0.5))
    num_samples = int((duration_s + 0.4) * sample_rate_hz)
    burst = rng.uniform(-1.0, 1.0, period)
    brightness = rng.uniform(0.3, 0.8)
    burst = scipy.signal.lfilter([brightness], [1.0, brightness - 1.0], burst)  # one-pole low-pass
    excitation = np.zeros(num_samples)
    excitation[:period] = burst - burst.mean()
    rho = 0.996
    feedback = np.zeros(period + 2)
    feedback[0], feedback[period], feedback[period + 1] = 1.0, -rho / 2, -rho / 2
    note = scipy.signal.lfilter([1.0], feedback, excitation)
    # The string is damped by the next pluck's finger after the note (a short fade).
    fade = np.clip((num_samples - np.arange(num_samples)) / (0.35 * sample_rate_hz), 0.0, 1.0)
    return note * fade


_VIOLIN_BODY = ((280.0, 4.0, 1.0), (460.0, 5.0, 0.8), (1100.0, 4.0, 0.5), (2800.0, 3.0, 0.9))


def _violin_note(frequency_hz, duration_s, rng, sample_rate_hz):
    num_samples = int((duration_s + 0.08) * sample_rate_hz)
    t = np.arange(num_samples) / sample_rate_hz
    vibrato_depth = np.clip((t - 0.15) / 0.3, 0.0, 1.0) * 0.008 * rng.uniform(0.7, 1.3)
    frequency = frequency_hz * (1.0 + vibrato_depth * np.sin(2 * np.pi * rng.uniform(5.0, 6.5) * t))
    phase = 2 * np.pi * np.cumsum(frequency) / sample_rate_hz
    count = _num_harmonics(frequency_hz * 1.01, sample_rate_hz)
    saw = _harmonic_sum(phase, 1.0 / np.arange(1, count + 1))
    saw += 0.02 * rng.standard_normal(num_samples)  # bow noise
    body = 0.3 * saw
    for centre_hz, quality, gain in _VIOLIN_BODY:
        if centre_hz < 0.45 * sample_rate_hz:
            b, a = scipy.signal.iirpeak(centre_hz, quality, fs=sample_rate_hz)
            body += gain * scipy.signal.lfilter(b, a, saw)
    return body * _envelope(num_samples, sample_rate_hz, 0.09, 0.08)


def _trumpet_note(frequency_hz, duration_s, rng, sample_rate_hz):
    num_samples = int((duration_s + 0.05) * sample_rate_hz)
    t = np.arange(num_samples) / sample_rate_hz
    envelope = _envelope(num_samples, sample_rate_hz, 0.03, 0.06)
    envelope *= 1.0 - 0.2 * np.clip((t - 0.03) / 0.1, 0.0, 1.0)  # attack overshoot, then sustain
    scoop = 1.0 - 0.02 * np.exp(-t / 0.025)  # lips start flat and snap to pitch
    phase = 2 * np.pi * np.cumsum(frequency_hz * scoop) / sample_rate_hz
    count = _num_harmonics(frequency_hz, sample_rate_hz, limit=24)
    k = np.arange(1, count + 1)[:, None]
    # The bell's formant: harmonics near 1.3 kHz are strongest, a steep roll-off above.
    formant = np.exp(-0.5 * (np.log2(k * frequency_hz / 1300.0) / 0.9) ** 2)
    amplitudes = np.power(np.maximum(envelope, 1e-6)[None, :], 0.6 + 0.3 * k) * formant
    return _harmonic_sum(phase, amplitudes) * envelope


def _clarinet_note(frequency_hz, duration_s, rng, sample_rate_hz):
    num_samples = int((duration_s + 0.05) * sample_rate_hz)
    t = np.arange(num_samples) / sample_rate_hz
    phase = 2 * np.pi * frequency_hz * t + 0.002 * np.sin(2 * np.pi * 4.5 * t)
    count = _num_harmonics(frequency_hz, sample_rate_hz, limit=20)
    k = np.arange(1, count + 1)
    amplitudes = np.where(k % 2 == 1, 1.0 / k, 0.04 / k) * np.exp(-k / 12.0)
    tone = _harmonic_sum(phase, amplitudes)
    b, a = scipy.signal.butter(2, [1200.0, 3500.0], btype="band", fs=sample_rate_hz)
    breath = 0.04 * scipy.signal.lfilter(b, a, rng.standard_normal(num_samples))
    return (tone + breath) * _envelope(num_samples, sample_rate_hz, 0.05, 0.05)


def _piano_note(frequency_hz, duration_s, rng, sample_rate_hz):
    num_samples = int((duration_s + 0.25) * sample_rate_hz)
    t = np.arange(num_samples) / sample_rate_hz
    inharmonicity = 4e-4
    count = _num_harmonics(frequency_hz * 1.1, sample_rate_hz, limit=30)
    k = np.arange(1, count + 1)[:, None]
    partials_hz = k * frequency_hz * np.sqrt(1.0 + inharmonicity * k**2)
    decay_s = 1.8 * (261.6 / frequency_hz) ** 0.4 / (1.0 + 0.35 * k)
    amplitudes = np.exp(-t[None, :] / decay_s) / k**1.1
    detune = 1.0 + 0.0007 * np.array([-1.0, 1.0])
    tone = sum(
        np.sum(
            amplitudes * np.sin(2 * np.pi * partials_hz * d * t[None, :] + rng.uniform(0, 6.3)), 0
        )
        for d in detune
    )
    hammer = rng.standard_normal(num_samples) * np.exp(-t / 0.004) * 0.3
    damper = np.where(t < duration_s, 1.0, np.exp(-(t - duration_s) / 0.06))
    return (tone + hammer) * damper * _envelope(num_samples, sample_rate_hz, 0.002, 0.01)


def _bell_note(frequency_hz, duration_s, rng, sample_rate_hz):
    num_samples = int((duration_s + 0.8) * sample_rate_hz)
    t = np.arange(num_samples) / sample_rate_hz
    index = 3.5 * np.exp(-t / 0.35)
    modulator = np.sin(2 * np.pi * 1.4 * frequency_hz * t)
    tone = np.sin(2 * np.pi * frequency_hz * t + index * modulator) * np.exp(-t / 0.6)
    return tone * _envelope(num_samples, sample_rate_hz, 0.001, 0.05)


_NOTES = {
    "guitar": _guitar_note,
    "violin": _violin_note,
    "trumpet": _trumpet_note,
    "clarinet": _clarinet_note,
    "piano": _piano_note,
    "bell": _bell_note,
}


def _drum_hit(kind: str, rng, sample_rate_hz):
    t = np.arange(int(0.35 * sample_rate_hz)) / sample_rate_hz
    if kind == "kick":
        frequency = 45.0 + 90.0 * np.exp(-t / 0.04)
        return np.sin(2 * np.pi * np.cumsum(frequency) / sample_rate_hz) * np.exp(-t / 0.12) * 1.6
    if kind == "snare":
        b, a = scipy.signal.butter(
            2, [1000.0, min(6000.0, 0.45 * sample_rate_hz)], "band", fs=sample_rate_hz
        )
        noise = scipy.signal.lfilter(b, a, rng.standard_normal(len(t))) * np.exp(-t / 0.09)
        return 1.2 * noise + 0.5 * np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.06)
    b, a = scipy.signal.butter(2, min(5000.0, 0.4 * sample_rate_hz), "high", fs=sample_rate_hz)
    return 0.5 * scipy.signal.lfilter(b, a, rng.standard_normal(len(t))) * np.exp(-t / 0.025)


def _drums(num_samples, rng, sample_rate_hz):
    out = np.zeros(num_samples + int(0.4 * sample_rate_hz))
    sixteenth_s = 60.0 / rng.uniform(85.0, 150.0) / 4.0
    grid = int(np.ceil(num_samples / sample_rate_hz / sixteenth_s))
    hits = {kind: _drum_hit(kind, rng, sample_rate_hz) for kind in ("kick", "snare", "hat")}
    fill_bar = rng.random(grid // 16 + 1) < 0.2
    for step in range(grid):
        beat_step, bar = step % 16, step // 16
        start = int(step * sixteenth_s * sample_rate_hz)
        played = []
        if beat_step in (0, 8) or (beat_step in (6, 10, 14) and rng.random() < 0.25):
            played.append(("kick", 1.0))
        if beat_step in (4, 12) or (fill_bar[bar] and beat_step >= 12 and rng.random() < 0.7):
            played.append(("snare", 1.0))
        if beat_step % 2 == 0 or rng.random() < 0.15:
            played.append(("hat", 1.0 if beat_step % 4 == 0 else 0.6))
        for kind, velocity in played:
            hit = hits[kind] * velocity * rng.uniform(0.85, 1.0)
            out[start : start + len(hit)] += hit[: len(out) - start]
    return out[:num_samples]


def _normalise_rms(audio: np.ndarray, target_rms: float = TARGET_RMS) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(audio)))) if audio.size else 0.0
    return (audio * (target_rms / rms) if rms > 1e-9 else audio).astype(np.float32)


def synthesize(
    class_name: str,
    num_samples: int,
    rng: np.random.Generator,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> np.ndarray:
    """A random phrase of one synthesizer class.

    Args:
      class_name: one of `SOURCE_CLASSES`.
      num_samples: output length in samples.
      rng: the random generator (all randomness comes from it).
      sample_rate_hz: output rate.

    Returns:
      `[num_samples]` float32 mono at `sample_rate_hz`, RMS `TARGET_RMS`.
    """
    if class_name not in SOURCE_CLASSES:
        raise SourceError(
            f"unknown source class {class_name!r}; known: {', '.join(SOURCE_CLASSES)}"
        )
    if class_name == "drums":
        return _normalise_rms(_drums(num_samples, rng, sample_rate_hz))
    duration_s = num_samples / sample_rate_hz
    low, high = _REGISTERS[class_name]
    out = np.zeros(num_samples)
    note_function = _NOTES[class_name]
    rests = 0.3 if class_name == "bell" else 0.1  # a bell rings out between strokes
    for onset_s, length_s, midi in random_phrase(rng, duration_s, low, high, rests):
        chord = [midi]
        if class_name == "piano" and rng.random() < 0.3:
            chord.append(midi - float(rng.choice([3, 4, 5, 7])))
        for pitch in chord:
            note = note_function(float(midi_to_hz(pitch)), length_s, rng, sample_rate_hz)
            note *= rng.uniform(0.7, 1.0)  # velocity
            start = round(onset_s * sample_rate_hz)
            stop = min(num_samples, start + len(note))
            if stop > start:
                out[start:stop] += note[: stop - start]
    return _normalise_rms(out)


# --- recordings ---------------------------------------------------------------------------------


def find_recordings(sources_dir: str | os.PathLike) -> dict[str, list[str]]:
    """Recordings per class: `sources_dir/<class>/*.wav|flac|ogg`, sorted (deterministic order).

    Raises:
      SourceError: `sources_dir` is not a folder, holds no recordings at all, or a recording
        that cannot be read or is truncated (each is checked here, before any clip is made).
    """
    sources_dir = os.fspath(sources_dir)
    if not os.path.isdir(sources_dir):
        raise SourceError(f"{sources_dir}: no such folder of source recordings")
    recordings = {}
    for class_name in sorted(os.listdir(sources_dir)):
        folder = os.path.join(sources_dir, class_name)
        if not os.path.isdir(folder) or class_name.startswith("."):
            continue
        files = sorted(
            os.path.join(folder, name)
            for name in os.listdir(folder)
            if name.lower().endswith(RECORDING_EXTENSIONS)
        )
        if files:
            recordings[class_name] = files
            for path in files:  # before any clip is made, not in the middle of the run
                _check_recording(path)
    if not recordings:
        raise SourceError(
            f"{sources_dir}: no recordings found; expected <class>/*.wav (one folder per class)"
        )
    return recordings


def _check_recording(path: str) -> None:
    """A recording's header: readable, and for a WAV as long as it says (soundfile reads a
    truncated WAV without a word)."""
    from keras_binaural.audio.io import AudioError, read_wav_header  # imports TensorFlow

    try:
        if path.lower().endswith(".wav"):
            read_wav_header(path)
        soundfile.info(path)
    except AudioError as error:
        raise SourceError(str(error)) from None
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise SourceError(f"{path}: cannot read the recording: {error}") from None


@functools.lru_cache(maxsize=64)
def _read_recording(path: str, sample_rate_hz: int) -> np.ndarray:
    try:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise SourceError(f"{path}: cannot read the recording: {error}")
    if audio.shape[0] == 0:
        raise SourceError(f"{path}: the recording holds no samples")
    mono = audio.mean(axis=1).astype(np.float64)
    if not np.all(np.isfinite(mono)):
        raise SourceError(f"{path}: the recording holds NaN or Inf samples")
    if rate != sample_rate_hz:
        ratio = fractions.Fraction(sample_rate_hz, rate)
        mono = scipy.signal.resample_poly(mono, ratio.numerator, ratio.denominator)
    return mono


def recording_excerpt(
    path: str,
    num_samples: int,
    rng: np.random.Generator,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> np.ndarray:
    """A random `[num_samples]` float32 excerpt of a recording (looped if too short).

    The recording is averaged to mono and resampled to `sample_rate_hz`; the excerpt is
    RMS-normalised to `TARGET_RMS`.
    """
    audio = _read_recording(os.fspath(path), int(sample_rate_hz))
    if len(audio) < num_samples:
        audio = np.tile(audio, int(np.ceil(num_samples / len(audio))) + 1)
    best = None
    for _ in range(4):  # avoid silent stretches
        start = int(rng.integers(0, len(audio) - num_samples + 1))
        excerpt = audio[start : start + num_samples]
        rms = float(np.sqrt(np.mean(excerpt**2)))
        if best is None or rms > best[0]:
            best = (rms, excerpt)
        if rms > 0.1 * TARGET_RMS:
            break
    return _normalise_rms(best[1])


class SourceBank:
    """The classes a scene can use: the synthesizer's, plus (or replaced by) recordings.

    Args:
      sources_dir: optional folder `sources_dir/<class>/*.wav`; a class with recordings plays
        them instead of the synthesizer, a new class name adds a class.
      sample_rate_hz: output rate.
    """

    def __init__(
        self, sources_dir: str | os.PathLike | None = None, sample_rate_hz: int = SAMPLE_RATE_HZ
    ):
        self.sources_dir = None if sources_dir is None else os.fspath(sources_dir)
        self.sample_rate_hz = int(sample_rate_hz)
        self.recordings = find_recordings(self.sources_dir) if self.sources_dir else {}
        self.classes = tuple(SOURCE_CLASSES) + tuple(
            sorted(name for name in self.recordings if name not in SOURCE_CLASSES)
        )

    def render(self, class_name: str, num_samples: int, rng: np.random.Generator) -> np.ndarray:
        """`[num_samples]` float32 mono of class `class_name` at `sample_rate_hz`, RMS 0.1."""
        files = self.recordings.get(class_name)
        if files:
            path = files[int(rng.integers(len(files)))]
            return recording_excerpt(path, num_samples, rng, self.sample_rate_hz)
        return synthesize(class_name, num_samples, rng, self.sample_rate_hz)
