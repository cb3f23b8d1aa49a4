"""Synthetic datasets (data/synthetic.py): clips in the FAIR-Play layout, their metadata, frames,
videos and splits, determinism, reruns and the command-line tool."""

import filecmp
import functools
import importlib.util
import json
import operator
import os
import pathlib
import subprocess
import sys

import av
import h5py
import numpy as np
import pytest
import soundfile
from binaural_cues import ild_db, lag_samples
from PIL import Image

from keras_binaural.audio.io import load_audio
from keras_binaural.data import rendering, scenes, sources, synthetic
from keras_binaural.data.hrtf import HrtfError, load_hrirs

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("slab") is None,
    reason="the synthetic scenes use MIT KEMAR, from the PyPI package slab (pip install slab)",
)

REPO = pathlib.Path(__file__).resolve().parents[1]
RATE_HZ = 16000
SETTINGS = scenes.SceneSettings(
    clip_seconds=1.5, frame_size=(64, 64), max_sources=2, distractors=2, moving=0.5
)
NUM_CLIPS = 4
SEED = 7


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two datasets with the same seed, one made by two worker processes, one by one."""
    root = tmp_path_factory.mktemp("synthetic")
    summary = synthetic.make_dataset(root / "a", SETTINGS, NUM_CLIPS, seed=SEED, workers=2)
    assert summary["made"] == NUM_CLIPS and summary["skipped"] == 0
    synthetic.make_dataset(root / "b", SETTINGS, NUM_CLIPS, seed=SEED, workers=1)
    return root


def files_under(folder: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# --- sources left of centre ---------------------------------------------------------------------


def test_single_sources_left_of_centre_are_louder_and_earlier_on_the_left():
    settings = scenes.SceneSettings(
        clip_seconds=1.0, frame_size=(64, 64), max_sources=1, distractors=0, moving=0.0
    )
    checked = 0
    for index in range(1, 11):
        clip = synthetic.make_clip(index, settings, seed=3)
        (item,) = clip.metadata["objects"]
        x0, _, x1, _ = item["boxes_xyxy"][0]
        if abs(item["azimuth_deg"]) < 5.0:
            continue
        left_of_centre = (x0 + x1) / 2 < 32
        assert left_of_centre == (item["azimuth_deg"] > 0)
        assert (ild_db(clip.binaural) > 0) == left_of_centre, item
        assert (lag_samples(clip.binaural) > 0) == left_of_centre, item
        checked += 1
    assert checked >= 6


# --- the written dataset ------------------------------------------------------------------------


def test_layout_and_metadata(dataset):
    root = dataset / "a"
    ids = [f"{i:06d}" for i in range(1, NUM_CLIPS + 1)]
    for identifier in ids:
        metadata = json.loads((root / "metadata" / f"{identifier}.json").read_text())
        assert metadata["id"] == identifier and metadata["sample_rate_hz"] == RATE_HZ
        assert metadata["num_frames"] == 15 and metadata["frame_size"] == [64, 64]
        np.testing.assert_allclose(metadata["frame_times_s"], (np.arange(15) + 0.5) / 10)
        assert metadata["camera"]["model"] == "pinhole" and metadata["camera"]["fov_deg"] == 90.0
        objects = metadata["objects"]
        sounding = [o for o in objects if o["sounding"]]
        assert 1 <= len(sounding) <= 2 and len(objects) - len(sounding) <= 2
        assert len({o["class"] for o in sounding}) == len(sounding)
        for item in objects:
            assert len(item["boxes_xyxy"]) == 15
            assert isinstance(item["azimuth_deg"], list if item["moving"] else float)
        audio, rate = soundfile.read(
            root / "binaural_audios" / f"{identifier}.wav", dtype="float32"
        )
        assert rate == RATE_HZ and audio.shape == (24000, 2)
        assert np.max(np.abs(audio)) == pytest.approx(0.9, abs=1e-4)
        frames = sorted(os.listdir(root / "frames" / f"{identifier}.mp4"))
        assert frames == [f"{k:06d}.png" for k in range(1, 16)]
    assert any(
        o["moving"]
        for i in ids
        for o in json.loads((root / "metadata" / f"{i}.json").read_text())["objects"]
    )
    splits = {
        name: (root / "splits" / f"{name}.txt").read_text().split()
        for name in ("train", "val", "test")
    }
    assert (
        sorted(functools.reduce(operator.iadd, splits.values(), [])) == ids
        and len(splits["val"]) == len(splits["test"]) == 1
    )
    for name, members in splits.items():
        with h5py.File(root / "splits" / "split1" / f"{name}.h5", "r") as handle:
            paths = [p.decode() for p in handle["audio"][:]]
        assert paths == [str(root / "binaural_audios" / f"{i}.wav") for i in members]
    description = json.loads((root / "dataset.json").read_text())
    assert description["seed"] == SEED and description["settings"]["max_sources"] == 2


def test_mono_is_the_mean_of_the_two_channels(dataset):
    root = dataset / "a"
    clip = synthetic.make_clip(1, SETTINGS, seed=SEED)
    audio, _ = soundfile.read(root / "binaural_audios" / "000001.wav", dtype="float32")
    np.testing.assert_array_equal(audio, clip.binaural)  # the WAV holds exactly what was rendered
    mono = (audio[:, 0].astype(np.float64) + audio[:, 1]) / 2
    np.testing.assert_allclose(clip.mono, mono, atol=1e-7)
    np.testing.assert_allclose(
        load_audio(root / "binaural_audios" / "000001.wav", channels=1)[:, 0], mono, atol=1e-6
    )
    for identifier in ("000001", "000002", "000003", "000004"):
        audio, _ = soundfile.read(root / "binaural_audios" / f"{identifier}.wav", dtype="float32")
        mono = audio.mean(axis=1)
        with av.open(str(root / "videos" / f"{identifier}.mp4")) as container:
            assert container.streams.audio[0].codec_context.layout.name == "mono"
            assert container.streams.audio[0].rate == RATE_HZ
            track = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])[
                : len(mono)
            ]
        error = track - mono[: len(track)]
        snr_db = 10 * np.log10(np.sum(mono**2) / np.sum(error**2))
        assert len(track) == len(mono) and snr_db > 25, snr_db  # AAC is lossy, but aligned


def test_video_frames_match_the_png_frames(dataset):
    root = dataset / "a"
    with av.open(str(root / "videos" / "000002.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 10 and (stream.width, stream.height) == (64, 64)
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 15
    for k in (0, 7, 14):
        png = np.asarray(Image.open(root / "frames" / "000002.mp4" / f"{k + 1:06d}.png"))
        assert np.mean(np.abs(decoded[k].astype(int) - png)) < 6


def test_frames_and_metadata_agree_on_every_object(dataset):
    root = dataset / "a"
    camera = SETTINGS.camera_model()
    for identifier in ("000001", "000002", "000003", "000004"):
        metadata = json.loads((root / "metadata" / f"{identifier}.json").read_text())
        objects = metadata["objects"]
        for frame in range(metadata["num_frames"]):
            picture = np.asarray(
                Image.open(root / "frames" / f"{identifier}.mp4" / f"{frame + 1:06d}.png")
            )
            boxes = [o["boxes_xyxy"][frame] for o in objects]
            for index, item in enumerate(objects):
                azimuth = item["azimuth_deg"][frame] if item["moving"] else item["azimuth_deg"]
                x0, y0, x1, y1 = boxes[index]
                assert (x0 + x1) / 2 == pytest.approx(
                    float(camera.x_from_azimuth(azimuth)), abs=0.51
                )
                color = np.all(picture == item["look"]["color"], axis=-1)
                # Every pixel of this colour lies in a box of an object of this class ...
                inside = np.zeros_like(color)
                for other, (a0, b0, a1, b1) in zip(objects, boxes):
                    if other["class"] == item["class"]:
                        inside[b0:b1, a0:a1] = True
                assert not np.any(color & ~inside), (identifier, frame, item["class"])
                # ... and an object that nothing overlaps shows its colour filling its box.
                overlapped = any(
                    j != index and a0 < x1 and x0 < a1 and b0 < y1 and y0 < b1
                    for j, (a0, b0, a1, b1) in enumerate(boxes)
                )
                if not overlapped:
                    _ys, xs = np.nonzero(color[y0:y1, x0:x1])
                    assert len(xs) > 0.3 * (x1 - x0) * (y1 - y0)
                    assert xs.min() <= 1 and xs.max() >= x1 - x0 - 2  # spans its box's width


def test_same_seed_same_bytes_and_reruns_skip_finished_clips(dataset):
    a, b = dataset / "a", dataset / "b"
    names = files_under(a)
    assert names == files_under(b)
    for name in names:
        if name.endswith(".h5"):  # they hold absolute paths, which differ between a and b
            continue
        assert filecmp.cmp(a / name, b / name, shallow=False), name
    assert any(n.endswith(".mp4") and n.startswith("videos") for n in names)

    h5_before = {n: (a / n).read_bytes() for n in names if n.endswith(".h5")}
    times_before = {n: (a / n).stat().st_mtime_ns for n in names if not n.startswith("splits")}
    summary = synthetic.make_dataset(a, SETTINGS, NUM_CLIPS, seed=SEED)
    assert summary["made"] == 0 and summary["skipped"] == NUM_CLIPS
    assert {n: (a / n).stat().st_mtime_ns for n in times_before} == times_before
    assert {n: (a / n).read_bytes() for n in h5_before} == h5_before  # h5 without timestamps

    wav = (a / "binaural_audios" / "000003.wav").read_bytes()
    (a / "metadata" / "000003.json").unlink()  # as if interrupted before the clip finished
    # ... by kill -9, which leaves the temporaries of the clip being written:
    (a / "frames" / ".000003.mp4.k2j4h5g6.tmp").mkdir()
    (a / "frames" / ".000003.mp4.k2j4h5g6.tmp" / "000001.png").write_bytes(b"\x89PNG")
    (a / "videos" / ".000003.mp4.a1b2c3d4.tmp.mp4").write_bytes(b"half")
    (a / "splits" / "split1" / ".train.h5.a1b2c3d4.tmp.h5").write_bytes(b"half")
    summary = synthetic.make_dataset(a, SETTINGS, NUM_CLIPS, seed=SEED)
    assert summary["made"] == 1 and (a / "binaural_audios" / "000003.wav").read_bytes() == wav
    assert not [n for n in files_under(a) if ".tmp" in n]  # no temporary files left behind
    assert not [n for n in os.listdir(a / "frames") if n.startswith(".")]


def test_a_full_disk_stops_with_one_line_and_no_partial_clip(tmp_path, monkeypatch):
    import errno

    from keras_binaural import files

    settings = scenes.SceneSettings(clip_seconds=0.3, frame_size=(32, 32), max_sources=1,
                                    distractors=0)
    real_write_video = synthetic.write_video
    made = []

    def full_after_one_clip(path, *args, **kwargs):
        if made:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        made.append(path)
        return real_write_video(path, *args, **kwargs)

    monkeypatch.setattr(synthetic, "write_video", full_after_one_clip)
    with pytest.raises(files.OutputError, match=r"/videos/\.?000002\.mp4.*: cannot write \(No "
                       r"space left on device\); the disk is full"):
        synthetic.make_dataset(tmp_path, settings, 3, seed=0)
    # Clip 1 is whole (finished work is kept); nothing of clip 2 is.
    assert synthetic.clip_finished(tmp_path, "000001")
    assert [n for n in files_under(tmp_path)
            if (n + "/").split("/")[1].lstrip(".").startswith("000002") or ".tmp" in n] == []


def test_other_settings_in_the_same_folder_are_refused(dataset):
    changed = scenes.SceneSettings(clip_seconds=1.5, frame_size=(64, 64), max_sources=3)
    with pytest.raises(scenes.SceneError, match="other settings .*max_sources"):
        synthetic.make_dataset(dataset / "a", changed, NUM_CLIPS, seed=SEED)
    with pytest.raises(scenes.SceneError, match="seed"):
        synthetic.make_dataset(dataset / "a", SETTINGS, NUM_CLIPS, seed=SEED + 1)


def test_equirect_scenes_use_the_whole_circle():
    settings = scenes.SceneSettings(
        clip_seconds=0.5,
        frame_size=(128, 64),
        camera="equirect",
        max_sources=3,
        distractors=2,
        moving=0.0,
    )
    azimuths = [
        o["azimuth_deg"]
        for i in range(1, 9)
        for o in synthetic.make_clip(i, settings, seed=0).metadata["objects"]
    ]
    assert max(azimuths) > 90 and min(azimuths) < -90


def test_bad_dataset_requests(tmp_path):
    with pytest.raises(HrtfError, match="nope: unknown HRTF"):
        synthetic.make_dataset(tmp_path, scenes.SceneSettings(hrtf="nope"), 1)
    with pytest.raises(scenes.SceneError, match="max_sources=9 but only 7 classes"):
        synthetic.make_dataset(tmp_path, scenes.SceneSettings(max_sources=9), 1)
    assert not (tmp_path / "dataset.json").exists()


def test_command_line_tool(tmp_path):
    command = [
        sys.executable,
        str(REPO / "tools" / "make_dataset.py"),
        f"--output_dir={tmp_path}",
        "--num_clips=2",
        "--clip_seconds=0.5",
        "--frame_size=32x32",
        "--camera=equirect",
        "--seed=5",
    ]
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "2 clips made" in result.stdout
    assert (tmp_path / "metadata" / "000002.json").is_file()
    bad = subprocess.run(
        command[:2] + [f"--output_dir={tmp_path}/x", "--camera=fisheye"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "camera 'fisheye' not understood" in bad.stderr


def test_recorded_classes_join_the_scenes_with_their_own_look(tmp_path):
    (tmp_path / "whistle").mkdir()
    tone = 0.3 * np.sin(2 * np.pi * 1200 * np.arange(22050) / 22050)
    soundfile.write(tmp_path / "whistle" / "take.wav", tone, 22050)
    look = scenes.class_look("whistle")
    fixed = np.array([v.color for v in scenes.CLASS_LOOKS.values()])
    assert np.min(np.linalg.norm(fixed - look.color, axis=1)) >= 90
    assert np.ptp(look.color) > 100  # saturated: never confused with the grey background
    settings = scenes.SceneSettings(
        clip_seconds=0.5,
        frame_size=(64, 64),
        max_sources=8,
        distractors=0,
        moving=0.0,
        sources_dir=str(tmp_path),
    )
    clip = synthetic.make_clip(1, settings, seed=0)
    classes = {o["class"]: o for o in clip.metadata["objects"]}
    assert "whistle" in classes and classes["whistle"]["look"]["color"] == list(look.color)


def test_distractors_are_seen_but_not_heard():
    settings = scenes.SceneSettings(clip_seconds=0.5, frame_size=(64, 64), noise_db=-200.0)
    hrirs = load_hrirs("kemar")
    bank = sources.SourceBank()

    def obj(class_name, sounding, azimuth):
        return scenes.SceneObject(class_name, sounding, azimuth, azimuth, 32.0, 12, 12)

    def render(objects):
        audio, _ = rendering.render_audio(objects, settings, np.random.default_rng(0), hrirs, bank)
        return audio

    with_distractor = render([obj("violin", True, 20.0), obj("drums", False, -30.0)])
    moved_distractor = render([obj("violin", True, 20.0), obj("piano", False, 40.0)])
    np.testing.assert_array_equal(with_distractor, moved_distractor)
    assert ild_db(with_distractor) > 3  # only the violin, 20 deg to the left, is heard


def test_a_clip_can_hold_its_separated_sources():
    settings = scenes.SceneSettings(clip_seconds=0.5, frame_size=(64, 64), max_sources=3,
                                    moving=0.0)
    index = next(i for i in range(1, 40)
                 if sum(o["sounding"] for o in synthetic.make_clip(i, settings, seed=1)
                        .metadata["objects"]) >= 2)
    plain = synthetic.make_clip(index, settings, seed=1)
    clip = synthetic.make_clip(index, settings, seed=1, sources=True)
    assert plain.sources is None
    np.testing.assert_array_equal(clip.binaural, plain.binaural)  # the same draws
    sounding = [o for o in clip.metadata["objects"] if o["sounding"]]
    assert clip.sources.shape == (len(sounding), len(clip.binaural), 2)
    # The mix is their sum, plus a noise floor 45 dB under a source and the 16-bit rounding.
    residual = clip.binaural - clip.sources.sum(axis=0)
    assert np.sqrt(np.mean(residual**2)) < 0.01 * np.sqrt(np.mean(clip.binaural**2))
    for part, obj in zip(clip.sources, sounding):  # each part sounds from its own side
        if abs(obj["azimuth_deg"]) > 10:
            assert np.sign(ild_db(part)) == np.sign(obj["azimuth_deg"])


def test_video_holds_the_frames(tmp_path):
    import av

    frames = np.zeros((5, 32, 48, 3), np.uint8)
    frames[:, :, :16], frames[:, :, 16:32], frames[:, :, 32:] = [220, 30, 30], [30, 200, 40], [40, 60, 210]
    mono = (0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32)
    synthetic.write_video(tmp_path / "v.mp4", frames, mono)
    with av.open(str(tmp_path / "v.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 5
    np.testing.assert_allclose(decoded[2][4:-4, 4:12], frames[2][4:-4, 4:12], atol=6)
    np.testing.assert_allclose(decoded[2][4:-4, 36:44], frames[2][4:-4, 36:44], atol=6)
