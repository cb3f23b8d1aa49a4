"""tools/prepare_fairplay.py on a small FAIR-Play-shaped download that the test writes."""

import os
import subprocess
import sys

import av
import h5py
import numpy as np
import pytest
import soundfile
from PIL import Image

from keras_binaural.data import fairplay, prepare, video

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIDEO_FPS = 30
SECONDS = 1.5


def _write_video(path, seconds=SECONDS):
    """Frame i (at i / 30 s) is grey level 8 * (i // 3): constant over each 0.1 s."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=VIDEO_FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"qp": "0"}
        for i in range(int(seconds * VIDEO_FPS)):
            pixels = np.full((48, 64, 3), 8 * (i // 3), np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())


def _write_download(root, ids=("000001", "000002")):
    (root / "videos").mkdir(parents=True)
    (root / "binaural_audios").mkdir()
    (root / "splits" / "split1").mkdir(parents=True)
    t = np.arange(int(44100 * SECONDS)) / 44100
    for clip_id in ids:
        _write_video(root / "videos" / f"{clip_id}.mp4")
        tone = np.stack([np.sin(2 * np.pi * 300 * t), 0.5 * np.sin(2 * np.pi * 300 * t)], 1)
        soundfile.write(root / "binaural_audios" / f"{clip_id}.wav", 0.5 * tone, 44100)
    for subset in ("train", "test"):
        with h5py.File(root / "splits" / "split1" / f"{subset}.h5", "w") as file:
            file["audio"] = [f"/home/someone/FAIR-Play/binaural_audios/{i}.wav".encode() for i in ids]


def test_iter_frames_resamples_to_10_fps(tmp_path):
    _write_video(tmp_path / "v.mp4")
    frames = list(video.iter_frames(tmp_path / "v.mp4"))
    assert len(frames) == 15
    levels = [float(f.mean()) for f in frames]
    np.testing.assert_allclose(levels, [8 * k for k in range(15)], atol=2)
    resized = next(video.iter_frames(tmp_path / "v.mp4", size_wh=(32, 16)))
    assert resized.shape == (16, 32, 3)


def test_prepare_writes_frames_audio_and_splits_and_resumes(tmp_path):
    download, out = tmp_path / "download", tmp_path / "prepared"
    _write_download(download)
    splits = tmp_path / "new_splits" / "split3"
    splits.mkdir(parents=True)
    (splits / "train.txt").write_text("000001.mp4\n000002.mp4\n")
    report = prepare.prepare_fairplay(str(download), str(out), (32, 24), str(splits.parent),
                                      progress=False)
    assert (report.extracted, report.skipped, report.failures) == (2, 0, [])
    pngs = sorted(os.listdir(out / "frames" / "000002.mp4"))
    assert pngs[0] == "000001.png" and len(pngs) == 15
    assert Image.open(out / "frames" / "000002.mp4" / "000004.png").size == (32, 24)
    audio, rate = soundfile.read(out / "binaural_audios" / "000001.wav")
    assert rate == 16000 and audio.shape == (24000, 2)
    with h5py.File(out / "splits" / "split1" / "test.h5") as file:
        assert file["audio"][0].decode() == str(out / "binaural_audios" / "000001.wav")
    assert fairplay.split_ids(str(out), "train", "split3") == ["000001", "000002"]
    assert [c.num_frames for c in fairplay.list_clips(str(out), "test")] == [15, 15]

    # A rerun skips finished clips and redoes one whose frames were never finished.
    before = os.path.getmtime(out / "frames" / "000001.mp4" / "000001.png")
    # (kill -9 left its temporary folder, which the rerun removes)
    (out / "frames" / "000002.mp4").rename(out / "frames" / ".000002.mp4.k2j4h5g6.tmp.mp4")
    report = prepare.prepare_fairplay(str(download), str(out), (32, 24), progress=False)
    assert (report.extracted, report.skipped) == (1, 1)
    assert os.path.getmtime(out / "frames" / "000001.mp4" / "000001.png") == before
    assert sorted(os.listdir(out / "frames")) == ["000001.mp4", "000002.mp4"]


def _run_tool(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", "prepare_fairplay.py"), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_tool_reports_a_corrupt_video_by_name_and_fails(tmp_path):
    _write_download(tmp_path)
    (tmp_path / "videos" / "000002.mp4").write_bytes(b"\x00" * 1000)
    result = _run_tool(f"--root={tmp_path}", "--frame_size=32x24")
    assert result.returncode == 1
    assert "1 clips prepared, 0 already done, 1 failed" in result.stdout
    assert "000002.mp4" in result.stderr
    assert (tmp_path / "frames" / "000001.mp4").is_dir()
    assert not (tmp_path / "frames" / "000002.mp4").exists()


@pytest.mark.parametrize("args, message", [
    (["--frame_size=big"], "--frame_size='big': want WIDTHxHEIGHT"),
    (["--five_splits_dir=/nonexistent"], "--five_splits_dir=/nonexistent: no such folder"),
])
def test_tool_rejects_bad_flags_with_one_line(tmp_path, args, message):
    _write_download(tmp_path)
    result = _run_tool(f"--root={tmp_path}", *args)
    assert result.returncode == 1 and message in result.stderr
    assert not (tmp_path / "frames").exists()
