import os

import numpy as np
import pytest
import soundfile
import tensorflow as tf

from keras_binaural.audio import (
    AudioError,
    from_mono_diff,
    load_audio,
    read_audio,
    resample,
    to_mono_diff,
    write_wav,
)
from keras_binaural.audio.io import WavHeader, encode_wav, read_wav_header


def _tones(rate_hz, seconds=1.0):
    """A stereo test signal: 440 Hz left, 220 Hz at half level right, as a function of time."""
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 220 * t)], 1)


@pytest.mark.parametrize("rate_in_hz", [8000, 22050, 44100, 48000])
def test_resample_matches_the_analytic_signal_without_delay(rate_in_hz):
    out = resample(_tones(rate_in_hz).astype(np.float32), rate_in_hz, 16000).numpy()
    assert out.shape == (16000, 2)
    inner = slice(400, -400)  # away from the zero-padded edges
    np.testing.assert_allclose(out[inner], _tones(16000)[inner], atol=2e-3)


def test_resample_keeps_an_impulse_in_place():
    impulse = np.zeros(44100, np.float32)
    impulse[4410] = 1.0
    out = resample(impulse, 44100, 16000).numpy()
    assert np.argmax(out) == 1600


@pytest.mark.parametrize(
    "name, subtype, atol",
    [("pcm16.wav", "PCM_16", 1e-3), ("float.wav", "FLOAT", 1e-3), ("a.flac", "PCM_16", 1e-3),
     ("a.ogg", None, 3e-2), ("a.mp3", None, 3e-2)],
)
def test_load_audio_decodes_every_format_at_16k(tmp_path, name, subtype, atol):
    path = tmp_path / name
    try:
        soundfile.write(path, _tones(44100), 44100, subtype=subtype)
    except (soundfile.LibsndfileError, TypeError, ValueError) as error:
        pytest.skip(f"this libsndfile cannot write {name}: {error}")
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.shape[1] == 2
    assert abs(audio.shape[0] - 16000) <= 16000 * 0.01 + 1200  # lossy codecs may pad
    n = 15000
    np.testing.assert_allclose(audio[400:n], _tones(16000)[400:n], atol=atol)


def test_read_audio_runs_in_graph_mode_and_tf_data(tmp_path):
    write_wav(tmp_path / "a.wav", _tones(16000))
    soundfile.write(tmp_path / "b.flac", _tones(44100), 44100)
    graph_read = tf.function(read_audio, autograph=False)
    a = graph_read(tf.constant(str(tmp_path / "a.wav")))
    assert a.shape == (16000, 2)
    dataset = tf.data.Dataset.from_tensor_slices([str(tmp_path / "a.wav"), str(tmp_path / "b.flac")])
    shapes = [tuple(x.shape) for x in dataset.map(read_audio)]
    assert shapes == [(16000, 2), (16000, 2)]


def test_channel_handling(tmp_path):
    write_wav(tmp_path / "stereo.wav", _tones(16000))
    write_wav(tmp_path / "mono.wav", _tones(16000)[:, 0])
    stereo = load_audio(tmp_path / "stereo.wav")
    mono = load_audio(tmp_path / "stereo.wav", channels=1)
    np.testing.assert_allclose(mono[:, 0], stereo.mean(axis=1), atol=1e-7)
    assert load_audio(tmp_path / "mono.wav", channels=1).shape == (16000, 1)
    with pytest.raises(AudioError, match="mono.wav: binaural .* but the file is mono"):
        load_audio(tmp_path / "mono.wav", channels=2)


def _bad_files(folder):
    write_wav(folder / "good.wav", _tones(16000))
    data = (folder / "good.wav").read_bytes()
    (folder / "truncated.wav").write_bytes(data[: len(data) // 2])
    (folder / "garbage.wav").write_bytes(b"not audio at all" * 20)
    soundfile.write(folder / "empty.wav", np.zeros((0, 2)), 16000)
    nan = _tones(16000).astype(np.float32)
    nan[100, 0] = np.nan
    soundfile.write(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    (folder / "notes.txt").write_text("hello")


@pytest.mark.parametrize(
    "name, message",
    [("missing.wav", "no such file"), ("truncated.wav", "truncated WAV: its header says 1.00 s"),
     ("garbage.wav", "not a WAV file"), ("empty.wav", "no audio samples|cannot decode"),
     ("nan.wav", "NaN or Inf"), ("notes.txt", "not an audio file")],
)
def test_bad_files_raise_a_clear_error_naming_the_file(tmp_path, name, message):
    _bad_files(tmp_path)
    with pytest.raises(AudioError, match=message) as error:
        load_audio(tmp_path / name)
    assert str(error.value).startswith(str(tmp_path / name))


def test_write_wav_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "out.wav"
    write_wav(path, _tones(16000))
    before = path.read_bytes()
    bad = _tones(16000)
    bad[5, 1] = np.inf
    with pytest.raises(AudioError, match="NaN or Inf"):
        write_wav(path, bad)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["out.wav"]
    np.testing.assert_allclose(load_audio(path), _tones(16000), atol=1e-4)


def test_wav_headers_are_read_without_the_samples_and_truncation_is_named(tmp_path):
    path = tmp_path / "two_seconds.wav"
    write_wav(path, _tones(16000, seconds=2.0))
    assert read_wav_header(path) == WavHeader(1, 2, 16000, 16, 2 * 16000 * 4)
    assert read_wav_header(path).seconds == 2.0
    soundfile.write(tmp_path / "float.wav", _tones(8000), 8000, subtype="FLOAT")
    assert read_wav_header(tmp_path / "float.wav") == WavHeader(3, 2, 8000, 32, 8000 * 8)
    data = path.read_bytes()
    (tmp_path / "half.wav").write_bytes(data[: len(data) // 2])  # the header still says 2 s
    with pytest.raises(AudioError) as error:
        read_wav_header(tmp_path / "half.wav")
    assert str(error.value) == (f"{tmp_path / 'half.wav'}: truncated WAV: its header says 2.00 s "
                                "of audio, the file holds 1.00 s (63978 of 128000 bytes); copy "
                                "or export it again")
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(AudioError, match="notes.wav: not a WAV file"):
        read_wav_header(tmp_path / "notes.wav")


def test_a_full_disk_while_writing_a_wav_is_an_output_error(tmp_path, monkeypatch):
    import builtins
    import errno

    from keras_binaural import files

    real_open = builtins.open

    class FullDisk:
        def __init__(self, path):
            self.path = path

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)

    def fake_open(path, mode="r", *args, **kwargs):
        return FullDisk(path) if "w" in mode else real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    with pytest.raises(files.OutputError, match=r"out.wav: cannot write \(No space left on "):
        write_wav(tmp_path / "out.wav", _tones(16000))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []
    assert encode_wav(_tones(16000)) == _bytes_of(write_wav, tmp_path / "b.wav", _tones(16000))


def _bytes_of(writer, path, audio):
    writer(path, audio)
    return path.read_bytes()


def test_mono_diff_round_trip_is_exact():
    rng = np.random.default_rng(0)
    binaural = rng.uniform(-1, 1, size=(3, 1000, 2)).astype(np.float32)
    mono, diff = to_mono_diff(binaural)
    np.testing.assert_allclose(mono, binaural.mean(-1), rtol=1e-7)
    rebuilt = from_mono_diff(mono, diff)
    np.testing.assert_allclose(rebuilt, binaural, atol=1e-7)
    # L + R equals 2m for any generated differential (SPEC Eq. 3).
    any_diff = rng.uniform(-1, 1, size=mono.shape).astype(np.float32)
    generated = from_mono_diff(tf.constant(mono), tf.constant(any_diff)).numpy()
    np.testing.assert_allclose(generated.sum(-1), 2 * mono, atol=1e-6)
