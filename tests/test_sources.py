import itertools

import numpy as np
import pytest
import soundfile

from keras_binaural.data import sources

RATE_HZ = 16000


def note_features(audio: np.ndarray) -> np.ndarray:
    """Timbre of a 1 s excerpt: its log spectrum in 24 log-spaced bands and its 50 ms envelope."""
    audio = np.pad(audio[:RATE_HZ], (0, max(0, RATE_HZ - len(audio))))
    power = np.abs(np.fft.rfft(audio)) ** 2
    frequencies = np.fft.rfftfreq(RATE_HZ, 1 / RATE_HZ)
    edges = np.geomspace(100, 8000, 25)
    bands = np.array(
        [
            power[(frequencies >= lo) & (frequencies < hi)].sum()
            for lo, hi in itertools.pairwise(edges)
        ]
    )
    bands = np.log10(bands + 1e-9)
    level = np.log10(np.sqrt(np.mean(audio.reshape(-1, 800) ** 2, axis=1)) + 1e-5)
    return np.concatenate(
        [np.maximum(bands - bands.max(), -6), np.maximum(level - level.max(), -4)]
    )


@pytest.mark.parametrize("name", sources.SOURCE_CLASSES)
def test_every_class_is_a_deterministic_mono_phrase(name):
    audio = sources.synthesize(name, RATE_HZ * 2, np.random.default_rng(3))
    assert audio.shape == (RATE_HZ * 2,) and audio.dtype == np.float32
    assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) < 1.5
    assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) == pytest.approx(
        sources.TARGET_RMS, rel=1e-3
    )
    again = sources.synthesize(name, RATE_HZ * 2, np.random.default_rng(3))
    np.testing.assert_array_equal(audio, again)
    other = sources.synthesize(name, RATE_HZ * 2, np.random.default_rng(4))
    assert not np.allclose(audio, other)
    # It keeps playing: most 100 ms stretches are well above silence (drums: half, between hits).
    stretches = audio.reshape(-1, RATE_HZ // 10)
    assert np.mean(np.sqrt(np.mean(stretches**2, axis=1)) > 0.01) > (
        0.5 if name == "drums" else 0.7
    )


def test_classes_have_distinguishable_timbres():
    """The same note (C5, 0.6 s) of each class, played twice with different randomness: each
    note is nearest (spectrum + envelope) to the other take of its own class."""

    def take(name, seed):
        rng = np.random.default_rng(seed)
        if name == "drums":  # unpitched: one second of the groove
            return sources.synthesize(name, RATE_HZ, rng)
        return sources._NOTES[name](523.25, 0.6, rng, RATE_HZ)

    names = sources.SOURCE_CLASSES
    for seed in (1, 3):
        first = np.stack([note_features(take(name, seed)) for name in names])
        second = np.stack([note_features(take(name, seed + 1)) for name in names])
        distances = np.linalg.norm(first[:, None] - second[None], axis=2)
        assert list(np.argmin(distances, axis=1)) == list(range(len(names)))


def test_karplus_strong_pitch_and_clarinet_odd_harmonics():
    rng = np.random.default_rng(0)
    note = sources._guitar_note(220.0, 0.5, rng, RATE_HZ)
    spectrum = np.abs(np.fft.rfft(note[: RATE_HZ // 2]))
    frequencies = np.fft.rfftfreq(RATE_HZ // 2, 1 / RATE_HZ)
    peak_hz = frequencies[np.argmax(spectrum * (frequencies < 400))]
    assert peak_hz == pytest.approx(220.0, rel=0.03)

    note = sources._clarinet_note(200.0, 0.5, rng, RATE_HZ)[: RATE_HZ // 2]
    spectrum = np.abs(np.fft.rfft(note))
    frequencies = np.fft.rfftfreq(len(note), 1 / RATE_HZ)

    def at(hz):
        return spectrum[np.abs(frequencies - hz) < 6].max()

    assert at(400) < 0.2 * at(600) and at(800) < 0.2 * at(1000)  # a closed pipe: odd harmonics


def test_random_phrase_stays_in_register_and_covers_the_clip():
    notes = sources.random_phrase(np.random.default_rng(1), 5.0, 50, 70)
    assert all(50 <= midi <= 70 for _, _, midi in notes)
    onsets = [onset for onset, _, _ in notes]
    assert onsets == sorted(onsets) and onsets[-1] > 3.0


def test_source_bank_uses_recordings(tmp_path):
    folder = tmp_path / "guitar"
    folder.mkdir()
    t = np.arange(44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 500 * t), np.sin(2 * np.pi * 500 * t)], axis=1) * 0.3
    soundfile.write(folder / "take1.wav", stereo, 44100)
    (tmp_path / "whistle").mkdir()
    whistle = np.sin(2 * np.pi * 1500 * np.arange(22050) / 22050) * 0.2  # 1 s at 22.05 kHz
    soundfile.write(tmp_path / "whistle" / "w.wav", whistle, 22050)
    (tmp_path / "empty").mkdir()

    bank = sources.SourceBank(tmp_path)
    assert bank.classes == sources.SOURCE_CLASSES + ("whistle",)
    audio = bank.render(
        "guitar", RATE_HZ * 2, np.random.default_rng(0)
    )  # looped: longer than the file
    assert audio.shape == (RATE_HZ * 2,)
    assert np.sqrt(np.mean(audio.astype(np.float64) ** 2)) == pytest.approx(
        sources.TARGET_RMS, rel=1e-3
    )
    frequencies = np.fft.rfftfreq(RATE_HZ, 1 / RATE_HZ)
    assert frequencies[np.argmax(np.abs(np.fft.rfft(audio[:RATE_HZ])))] == pytest.approx(500, abs=2)
    whistle = bank.render("whistle", RATE_HZ, np.random.default_rng(0))
    assert frequencies[np.argmax(np.abs(np.fft.rfft(whistle)))] == pytest.approx(1500, abs=2)
    assert bank.render("piano", RATE_HZ, np.random.default_rng(0)).shape == (
        RATE_HZ,
    )  # synthesized


def test_bad_classes_and_folders(tmp_path):
    with pytest.raises(sources.SourceError, match="unknown source class 'kazoo'"):
        sources.synthesize("kazoo", 100, np.random.default_rng(0))
    with pytest.raises(sources.SourceError, match="no such folder"):
        sources.SourceBank(tmp_path / "nope")
    with pytest.raises(sources.SourceError, match="no recordings found"):
        sources.SourceBank(tmp_path)
    (tmp_path / "drums").mkdir()
    (tmp_path / "drums" / "broken.wav").write_bytes(b"RIFF....")
    with pytest.raises(sources.SourceError, match="broken.wav: not a WAV file"):
        sources.SourceBank(tmp_path)  # checked before any clip is made
    tone = 0.1 * np.sin(np.arange(16000) / 5.0)
    soundfile.write(tmp_path / "drums" / "broken.wav", tone, 16000, subtype="PCM_16")
    data = (tmp_path / "drums" / "broken.wav").read_bytes()
    (tmp_path / "drums" / "broken.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(sources.SourceError, match="broken.wav: truncated WAV: its header says 1.00 s"):
        sources.SourceBank(tmp_path)
    (tmp_path / "drums" / "broken.flac").write_bytes(b"fLaC and then nothing")
    (tmp_path / "drums" / "broken.wav").unlink()
    with pytest.raises(sources.SourceError, match="broken.flac: cannot read the recording"):
        sources.SourceBank(tmp_path)
