"""tools/binauralize.py and keras_binaural.binauralize: a user's clip -> binaural WAV and video."""

import errno
import os
import pathlib
import subprocess
import sys

import av
import numpy as np
import pytest
import soundfile
from PIL import Image
from training_data import config_module

from keras_binaural import binauralize as lib
from keras_binaural import files, runs, training
from keras_binaural.audio import resample
from keras_binaural.data import video as video_io
from keras_binaural.models.clup import CLUP
from keras_binaural.models.upmixer import Upmixer

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = config_module().get_config("tiny")  # CLUP as configs/clup.py:tiny builds it
GEOMETRY = runs.FrameGeometry(tuple(TINY.data.resize_hw), tuple(TINY.data.crop_hw))  # 72 -> 64


def _picture(index: int, height: int = 96, width: int = 128) -> np.ndarray:
    """A room-coloured picture with a red square moving to the right."""
    frame = np.full((height, width, 3), (90, 110, 120), np.uint8)
    left = 8 + 4 * index
    frame[30:62, left : left + 32] = (220, 40, 40)
    return frame


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    model = training.build_model(TINY)
    assert isinstance(model, CLUP)
    model.save(str(root / "model.keras"))
    # As tools/train.py writes it, but for the diffusion sampler: the untrained spatial prior
    # (the config's own sampler) is mono-mono by design, and the ears would not differ.
    config = TINY.copy_and_resolve_references()
    config.eval.sampler = "fast"
    (root / "config.json").write_text(config.to_json_best_effort())
    return str(root / "model.keras")


def test_the_sampler_is_the_runs_unless_given(tmp_path):
    assert runs.run_sampler(tmp_path / "model.keras") == "fast"  # no config.json
    (tmp_path / "config.json").write_text(TINY.to_json_best_effort())
    assert TINY.eval.sampler == "prior"
    assert runs.run_sampler(tmp_path / "model.keras") == "prior"


@pytest.fixture(scope="module")
def model(model_path):
    return runs.load_model(model_path, generates=True)


@pytest.fixture(scope="module")
def user_video(tmp_path_factory):
    """1.2 s at 25 fps, 128 x 96, with a stereo 44.1 kHz AAC track (a phone's video, shortened)."""
    path = tmp_path_factory.mktemp("video") / "user.mp4"
    rng = np.random.default_rng(0)
    time_s = np.arange(int(1.2 * 44100)) / 44100
    # Quiet enough that L = m + d stays in [-1, 1] even for the untrained model's |d| <= 2 |m|.
    tone = 0.15 * np.sin(2 * np.pi * 440 * time_s) * (1 + 0.5 * np.sin(2 * np.pi * 3 * time_s))
    stereo = np.stack([tone, 0.5 * tone + 0.02 * rng.standard_normal(len(tone))], axis=1)
    video_io.write_video(path, [_picture(k // 2) for k in range(30)], stereo, frame_rate_hz=25,
                         sample_rate_hz=44100)
    return str(path)


def _run_tool(*flags):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "tools/binauralize.py", *flags], capture_output=True,
                          text=True, cwd=REPO, env=env, check=False)


def _decode(path):
    """(pictures, rate, audio [channels, time], audio rate, layout) of a video file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pictures = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        rate = stream.average_rate
    with av.open(str(path)) as container:
        audio_stream = container.streams.audio[0]
        audio = np.concatenate([f.to_ndarray() for f in container.decode(audio_stream)], axis=1)
        return pictures, rate, audio, audio_stream.rate, audio_stream.layout.name


def test_video_to_binaural_wav_and_video_with_the_map_overlaid(model_path, user_video, tmp_path):
    out_wav, out_video = tmp_path / "out" / "binaural.wav", tmp_path / "out" / "binaural.mp4"
    result = _run_tool(f"--model={model_path}", f"--video={user_video}",
                       f"--output_wav={out_wav}", f"--output_video={out_video}", "--overlay")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "binauralized 1.2 s" in result.stdout

    binaural, rate = soundfile.read(out_wav, dtype="float32")
    assert rate == 16000 and binaural.shape == (12 * 1600, 2)  # 12 frames at 10 fps
    # Eq. 3: (L + R) / 2 is the video's sound, downmixed and resampled (16-bit rounding apart).
    mono = lib.load_mono(user_video, start_at_zero=False)[: 12 * 1600]
    np.testing.assert_allclose(binaural.mean(axis=1), mono, atol=1e-4)
    assert np.abs(binaural[:, 0] - binaural[:, 1]).max() > 1e-3  # the ears differ

    pictures, frame_rate, audio, audio_rate, layout = _decode(out_video)
    source, *_ = _decode(user_video)
    assert (len(pictures), frame_rate, pictures[0].shape) == (30, 25, (96, 128, 3))
    assert (audio_rate, layout) == (16000, "stereo")
    # The AAC track carries the binaural audio (lossy: compare loosely), left and right in order.
    aac = audio[:, : len(binaural)]
    for channel in range(2):
        assert np.corrcoef(aac[channel], binaural[:, channel])[0, 1] > 0.95
    # The overlay tints the pictures where the map is high, and only there.
    change = np.abs(np.stack(pictures).astype(int) - np.stack(source).astype(int)).mean(axis=-1)
    assert change.max() > 40 and (change < 8).mean() > 0.05


def test_frames_folder_and_recording_give_generate_s_audio(model, tmp_path):
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for index in range(8):
        Image.fromarray(_picture(index)).save(frames_dir / f"{index + 1:06d}.png")
    rng = np.random.default_rng(1)
    recording = 0.2 * rng.standard_normal(int(0.75 * 22050))  # 22.05 kHz, shorter than 0.8 s
    soundfile.write(tmp_path / "mono.wav", recording, 22050, subtype="FLOAT")
    geometry = GEOMETRY
    out_wav, out_video = tmp_path / "b.wav", tmp_path / "b.mkv"

    result = lib.binauralize(model, geometry, frames_dir=str(frames_dir),
                             audio=str(tmp_path / "mono.wav"), output_wav=str(out_wav),
                             output_video=str(out_video), seed=3)

    mono = resample(recording.astype(np.float32), 22050, 16000).numpy()
    mono = np.pad(mono, (0, 8 * 1600 - len(mono)))  # padded with silence to the frames' 0.8 s
    frames = np.stack([geometry.prepare(_picture(index)) for index in range(8)])
    expected = model.generate(mono[None], frames[None], seed=3)[0]
    np.testing.assert_allclose(result.binaural, expected, atol=1e-6)
    written, rate = soundfile.read(out_wav, dtype="float32")
    assert rate == 16000 and written.shape == (8 * 1600, 2)
    np.testing.assert_allclose(written, np.clip(expected, -1, 1), atol=2 / 32768)
    pictures, frame_rate, _, _, layout = _decode(out_video)
    assert (len(pictures), frame_rate, layout) == (8, 10, "stereo")
    assert result.maps is None  # no overlay asked for


def test_frame_geometry_follows_the_run_config(model_path):
    geometry = runs.frame_geometry(model_path)
    assert geometry == GEOMETRY
    assert geometry.frame_size_wh == (TINY.data.crop_hw[1], TINY.data.crop_hw[0])
    assert runs.frame_geometry(model_path, (96, 48)) == runs.FrameGeometry((48, 96), (48, 96))
    prepared = geometry.prepare(_picture(0))
    assert prepared.shape == (*TINY.data.crop_hw, 3) and prepared.dtype == np.float32
    assert 0.0 <= prepared.min() and prepared.max() <= 1.0


@pytest.mark.parametrize("request_, message", [
    ({"video": "missing.mp4", "output_wav": "o.wav"}, "--video=missing.mp4: no such file"),
    ({"video": "v.mp4", "frames_dir": "f", "output_wav": "o.wav"},
     "--video and --frames_dir/--audio"),
    ({"output_wav": "o.wav"}, "no input: give --video IN.mp4"),
    ({"frames_dir": "f", "output_wav": "o.wav"}, "--frames_dir=f: needs --audio MONO.wav"),
    ({"video": "v.mp4", "output_wav": "o.mp3"}, "--output_wav=o.mp3: must end in .wav"),
    ({"video": "v.mp4", "output_wav": "o.wav", "overlay": True},
     "--overlay: draws the localization"),
    ({"video": "v.mp4", "output_wav": "o.wav", "output_video": "o.gif"},
     "--output_video=o.gif: must"),
    ({"video": "v.mp4", "output_wav": "o.wav", "output_video": "v.mp4"},
     "--output_video=v.mp4: is an input file"),
    ({"video": "v.mp4", "output_wav": "o.wav", "sampler": "ddim"},
     "--sampler=ddim: must be one of"),
])
def test_bad_requests_name_the_flag(tmp_path, monkeypatch, request_, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "v.mp4").write_bytes(b"")
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "000001.png").write_bytes(b"")
    with pytest.raises(lib.BinauralizeError) as error:
        lib.check_request(**request_)
    assert str(error.value).startswith(message)
    assert sorted(os.listdir(tmp_path)) == ["f", "v.mp4"]


def test_bad_files_and_models_are_refused_and_nothing_is_written(model, tmp_path):
    silent = tmp_path / "silent.mp4"
    video_io.write_video(silent, [_picture(0)] * 5, None)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    geometry = GEOMETRY
    out = {"output_wav": str(tmp_path / "out.wav"), "output_video": str(tmp_path / "out.mp4")}
    with pytest.raises(lib.BinauralizeError, match="silent.mp4: the file holds no audio stream"):
        lib.binauralize(model, geometry, video=str(silent), **out)
    with pytest.raises(lib.BinauralizeError, match="broken.mp4: cannot decode the audio"):
        lib.binauralize(model, geometry, video=str(tmp_path / "broken.mp4"), **out)
    audio_only = Upmixer(guidance="none", residual_channels=8, num_cycles=1)
    with pytest.raises(lib.BinauralizeError, match="--overlay: the model .* has no localizer"):
        lib.binauralize(audio_only, geometry, video=str(silent), overlay=True, **out)
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    with pytest.raises(lib.BinauralizeError, match="--model=.*broken.keras: not a Keras model "
                       r"file \(a .keras file is a zip archive; this one is damaged"):
        runs.load_model(str(tmp_path / "broken.keras"), "--model", lib.BinauralizeError,
                        generates=True)
    assert sorted(os.listdir(tmp_path)) == ["broken.keras", "broken.mp4", "silent.mp4"]


def test_a_failure_while_writing_leaves_no_output(model, user_video, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    silence = lib.ClipResult(np.zeros((12 * 1600, 2), np.float32))
    monkeypatch.setattr(lib, "run_model", lambda *args, **kwargs: silence)  # not under test here
    monkeypatch.setattr(video_io, "write_video", fail)
    out_wav, out_video = tmp_path / "b.wav", tmp_path / "b.mp4"
    with pytest.raises(OSError, match="disk full"):
        lib.binauralize(model, GEOMETRY, video=user_video,
                        output_wav=str(out_wav), output_video=str(out_video))
    assert os.listdir(tmp_path) == []  # the WAV, written first, is gone too


def _frames_dir(folder, count):
    folder.mkdir()
    for index in range(count):
        Image.fromarray(_picture(index)).save(folder / f"{index + 1:06d}.png")
    return str(folder)


def test_truncated_or_short_sound_is_refused_not_padded(model, tmp_path):
    frames_dir = _frames_dir(tmp_path / "frames", 20)  # 2 s of pictures
    tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)
    soundfile.write(tmp_path / "two_seconds.wav", tone, 16000, subtype="PCM_16")
    data = (tmp_path / "two_seconds.wav").read_bytes()
    (tmp_path / "half.wav").write_bytes(data[: len(data) // 2])  # its header still says 2 s
    soundfile.write(tmp_path / "short.wav", tone[:1600], 16000, subtype="PCM_16")  # 0.1 s
    out = {"frames_dir": frames_dir, "output_wav": str(tmp_path / "out.wav")}
    with pytest.raises(lib.BinauralizeError) as error:
        lib.check_request(audio=str(tmp_path / "half.wav"), **out)
    assert str(error.value).startswith(f"--audio={tmp_path / 'half.wav'}: truncated WAV: its "
                                       "header says 2.00 s of audio, the file holds 1.00 s")
    with pytest.raises(lib.BinauralizeError) as error:
        lib.binauralize(model, GEOMETRY, audio=str(tmp_path / "short.wav"), **out)
    assert str(error.value) == (
        f"--audio={tmp_path / 'short.wav'}: 0.10 s of sound for 2.00 s of pictures (20 frames in "
        f"--frames_dir={frames_dir} at 10 fps); give the sound and the pictures of the same clip "
        "(at most 0.5 s, or 1% of the clip, apart)")
    assert not (tmp_path / "out.wav").exists()


def test_a_full_disk_while_writing_the_video_is_one_line_and_leaves_nothing(
        model, user_video, tmp_path, monkeypatch):
    def full_disk(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)  # as PyAV raises it

    silence = lib.ClipResult(np.zeros((12 * 1600, 2), np.float32))
    monkeypatch.setattr(lib, "run_model", lambda *args, **kwargs: silence)
    monkeypatch.setattr(video_io, "write_video", full_disk)
    out_video = tmp_path / "b.mp4"
    with pytest.raises(files.OutputError) as error:
        lib.binauralize(model, GEOMETRY, video=user_video, output_wav=str(tmp_path / "b.wav"),
                        output_video=str(out_video))
    assert str(error.value) == (f"{out_video}: cannot write (No space left on device); the disk "
                                "is full: free space or choose another folder; nothing was "
                                "written")
    assert os.listdir(tmp_path) == []


def test_a_rerun_removes_what_a_killed_run_left(model, user_video, tmp_path, monkeypatch):
    leftovers = [".b.wav.x1y2z3w4.tmp.wav", ".b.mp4.a1b2c3d4.tmp.mp4"]
    for name in leftovers + [".other.wav.a1b2c3d4.tmp.wav"]:  # another output's: not ours
        (tmp_path / name).write_bytes(b"half-written")
    silence = lib.ClipResult(np.zeros((12 * 1600, 2), np.float32))
    monkeypatch.setattr(lib, "run_model", lambda *args, **kwargs: silence)
    lib.binauralize(model, GEOMETRY, video=user_video, output_wav=str(tmp_path / "b.wav"),
                    output_video=str(tmp_path / "b.mp4"))
    assert sorted(os.listdir(tmp_path)) == [".other.wav.a1b2c3d4.tmp.wav", "b.mp4", "b.wav"]


def test_the_tool_prints_one_line_and_writes_nothing_on_bad_input(model_path, tmp_path):
    result = _run_tool(f"--model={model_path}", f"--video={tmp_path / 'nope.mp4'}",
                       f"--output_wav={tmp_path / 'b.wav'}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"binauralize: error: --video={tmp_path / 'nope.mp4'}: no such file")
    assert os.listdir(tmp_path) == []
    (tmp_path / "afile").write_text("")
    result = _run_tool(f"--model={model_path}", f"--video={tmp_path / 'afile'}",
                       f"--output_wav={tmp_path / 'afile' / 'b.wav'}")
    assert result.returncode == 1
    afile = tmp_path / "afile"
    expected = (f"binauralize: error: --output_wav={afile / 'b.wav'}: {afile} is a file, so the "
                f"folder {afile} cannot be created; choose another path")
    assert result.stderr.strip().splitlines() == [expected]


def test_resample_long_equals_one_resample_call():
    rng = np.random.default_rng(0)
    for rate in (44100, 48000, 22050, 8000):
        signal = rng.standard_normal(rate // 3 + 17).astype(np.float32)
        whole = resample(signal, rate, 16000).numpy()
        np.testing.assert_allclose(lib.resample_long(signal, rate, 16000, block_samples=700),
                                   whole, atol=1e-6)


def test_heatmap_overlay_colours_the_peak_and_leaves_the_rest():
    frame = np.full((64, 96, 3), 100, np.uint8)
    heat = np.zeros((4, 6), np.float32)
    heat[1, 4] = 0.03  # a small softmax value: scaled by the map's own range
    drawn = lib.heatmap_overlay(frame, heat)
    assert drawn.shape == frame.shape and drawn.dtype == np.uint8
    assert (drawn[4, 4] == 100).all()  # far from the peak: unchanged
    peak = drawn[int(1.5 * 16), int(4.5 * 16)]
    assert peak[0] > peak[1] + 50 and peak[2] < 60  # 'jet' red at the peak
    np.testing.assert_array_equal(lib.heatmap_overlay(frame, np.full((4, 6), 0.2)), frame)
