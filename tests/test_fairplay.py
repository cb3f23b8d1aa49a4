"""The FAIR-Play-layout reader on a tiny root that the test writes itself."""

import os

import h5py
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_binaural.audio import frontend, io, write_wav
from keras_binaural.data import fairplay

SECONDS = 2.0
NUM_CLIPS = 3


def _write_root(root, num_clips=NUM_CLIPS):
    """Clip c: noise at 16 kHz; frame k of clip c is a flat image of red k*20, green c*60."""
    rng = np.random.default_rng(0)
    ids = [f"{c + 1:06d}" for c in range(num_clips)]
    for c, clip_id in enumerate(ids):
        audio = rng.uniform(-0.5, 0.5, size=(int(SECONDS * 16000), 2)).astype(np.float32)
        write_wav(root / "binaural_audios" / f"{clip_id}.wav", audio, subtype="FLOAT")
        frames = root / "frames" / f"{clip_id}.mp4"
        frames.mkdir(parents=True)
        for k in range(1, int(SECONDS * 10) + 1):
            pixels = np.zeros((24, 32, 3), np.uint8)
            pixels[..., 0], pixels[..., 1] = k * 10, c * 60
            Image.fromarray(pixels).save(frames / f"{k:06d}.png")
    (root / "splits" / "split1").mkdir(parents=True)
    (root / "splits" / "split1" / "train.txt").write_text("\n".join(ids) + "\n")
    with h5py.File(root / "splits" / "split1" / "test.h5", "w") as file:
        file["audio"] = [f"/home/authors/FAIR-Play/binaural_audios/{i}.wav".encode() for i in ids]
    return ids


@pytest.fixture
def root(tmp_path):
    _write_root(tmp_path)
    return tmp_path


def _read_wav(path):
    import soundfile

    return soundfile.read(path, dtype="float32")[0]


def test_split_ids_from_text_and_from_fairplay_h5(root):
    assert fairplay.split_ids(str(root), "train") == ["000001", "000002", "000003"]
    assert fairplay.split_ids(str(root), "test") == ["000001", "000002", "000003"]
    clips = fairplay.list_clips(str(root), "test")
    assert [c.num_frames for c in clips] == [20, 20, 20]


def test_frame_index_follows_the_spec_formula():
    # Chunk [0, 0.63): centre 0.315 s -> round(3.65) = 4; clamped to the clip at both ends.
    assert int(fairplay.frame_index(0.0, 0.63, 100)) == 4
    assert int(fairplay.frame_index(9.5, 10.13, 100)) == 99
    assert int(fairplay.frame_index(9.9, 10.53, 100)) == 100
    assert int(fairplay.frame_index(0.0, 0.0, 100)) == 1


def test_training_examples_are_consistent_with_the_files(root):
    clips = fairplay.list_clips(str(root), "train")
    dataset = fairplay.training_dataset(clips, seed=3, resize_hw=(24, 32), crop_hw=(24, 32),
                                        augment=False)
    for example in dataset.take(12):
        clip = int(example["clip_id"].numpy()) - 1
        start = int(example["start_sample"])
        audio = _read_wav(clips[clip].audio_path)
        chunk = audio[start : start + 10080]
        assert example["binaural"].shape == (10080, 2)
        np.testing.assert_allclose(example["binaural"], chunk, atol=1e-6)
        np.testing.assert_allclose(example["mono"], chunk.mean(1), atol=1e-6)
        np.testing.assert_allclose(example["diff"], (chunk[:, 0] - chunk[:, 1]) / 2, atol=1e-6)

        t_centre = (start + 5040) / 16000
        k = min(max(int(np.round((t_centre + 0.05) * 10)), 1), 20)
        frame = example["frame"].numpy() * 255
        assert frame.shape == (24, 32, 3)
        np.testing.assert_allclose(frame[..., 0], k * 10, atol=1)
        np.testing.assert_allclose(frame[..., 1], clip * 60, atol=1)
        negative_clip = round(float(example["negative_frame"][0, 0, 1]) * 255 / 60)
        assert negative_clip != clip

        patch = frontend.centred_patch(audio.mean(1), start + 5040).numpy()
        np.testing.assert_allclose(example["mono_patch"], patch, atol=1e-4)
        left = frontend.centred_patch(audio[:, 0], start + 5040).numpy()
        np.testing.assert_allclose(example["binaural_patch"][0], left, atol=1e-4)
        offset = frontend.context_offset(10080)
        context = example["binaural_context"].numpy()
        assert context.shape == (15600, 2)
        np.testing.assert_allclose(context[offset : offset + 10080], chunk, atol=1e-6)


def _first(dataset, n=6):
    return [(e["clip_id"].numpy(), int(e["start_sample"]), e["frame"].numpy().sum())
            for e in dataset.take(n)]


def test_training_is_deterministic_given_a_seed_and_augments(root):
    clips = fairplay.list_clips(str(root), "train")
    make = lambda seed: fairplay.training_dataset(clips, seed=seed, resize_hw=(24, 32),
                                                  crop_hw=(16, 16))
    assert _first(make(1)) == _first(make(1))
    assert _first(make(1)) != _first(make(2))
    example = next(iter(make(1)))
    assert example["frame"].shape == (16, 16, 3)
    assert 0.0 <= float(tf.reduce_min(example["frame"])) <= float(tf.reduce_max(example["frame"])) <= 1


def test_mirrored_examples_swap_the_ears_and_flip_the_frame(root):
    clips = fairplay.list_clips(str(root), "train")
    make = lambda mirror: fairplay.training_dataset(clips, seed=5, resize_hw=(24, 32),
                                                    crop_hw=(24, 32), augment=False, mirror=mirror)
    mirrored_count = 0
    for plain, example in zip(make(False).take(16), make(True).take(16)):
        assert plain["clip_id"] == example["clip_id"]
        assert int(plain["start_sample"]) == int(example["start_sample"])
        np.testing.assert_allclose(example["mono"], plain["mono"], atol=1e-6)
        mirrored = not np.allclose(example["binaural"], plain["binaural"])
        if mirrored:
            mirrored_count += 1
            np.testing.assert_allclose(example["binaural"], plain["binaural"][:, ::-1], atol=1e-6)
            np.testing.assert_allclose(example["diff"], -plain["diff"], atol=1e-6)
            np.testing.assert_allclose(example["binaural_patch"], plain["binaural_patch"][::-1],
                                       atol=1e-4)
            np.testing.assert_allclose(example["binaural_context"],
                                       plain["binaural_context"][:, ::-1], atol=1e-6)
            np.testing.assert_allclose(example["frame"], plain["frame"][:, ::-1], atol=1e-6)
        else:
            np.testing.assert_allclose(example["frame"], plain["frame"], atol=1e-6)
    assert 0 < mirrored_count < 16


def test_evaluation_examples_are_whole_clips(root):
    clips = fairplay.list_clips(str(root), "test")
    examples = list(fairplay.evaluation_dataset(clips, resize_hw=(24, 32), crop_hw=(24, 32)))
    assert len(examples) == 3
    assert examples[1]["binaural"].shape == (32000, 2)
    assert examples[1]["frames"].shape == (20, 24, 32, 3)
    np.testing.assert_allclose(examples[1]["frames"][4, ..., 0] * 255, 50, atol=1)


def test_missing_clip_files_are_named(root):
    os.remove(root / "binaural_audios" / "000002.wav")
    for png in (root / "frames" / "000003.mp4").iterdir():
        png.unlink()
    with pytest.raises(fairplay.DatasetError, match="000002: missing .*000002.wav") as error:
        fairplay.list_clips(str(root), "train")
    assert "000003: no frames" in str(error.value)
    assert [c.clip_id for c in fairplay.list_clips(str(root), "train", skip_missing=True)] == [
        "000001"
    ]
    with pytest.raises(fairplay.DatasetError, match="no test.txt or test.h5"):
        fairplay.split_ids(str(root), "test", split="split9")


def test_parallel_reading_never_mixes_clips_up(root):
    """Every clip read many times over a parallel map: its own audio and frames each time.

    tensorflow-io's resource-based reader failed this (a few percent of reads returned another
    file's audio); `io.decode_wav` is stateless.
    """
    clips = fairplay.list_clips(str(root), "train") * 20
    expected = {c.clip_id: _read_wav(c.audio_path) for c in clips}
    for example in fairplay.evaluation_dataset(clips, resize_hw=(24, 32), crop_hw=(24, 32)):
        clip_id = example["clip_id"].numpy().decode()
        np.testing.assert_array_equal(example["binaural"].numpy(), expected[clip_id])
        np.testing.assert_allclose(example["frames"][0, 0, 0, 1] * 255, (int(clip_id) - 1) * 60,
                                   atol=1)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT", "PCM_24"])
def test_wav_subtypes(root, subtype):
    clip = fairplay.list_clips(str(root), "train")[0]
    audio = np.random.default_rng(1).uniform(-0.9, 0.9, (4000, 2)).astype(np.float32)
    write_wav(clip.audio_path, audio, sample_rate_hz=8000, subtype=subtype)
    read = lambda: fairplay.read_binaural(clip.audio_path).numpy()
    if subtype == "PCM_24":
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=f"(?s)not a 16-bit PCM or 32-bit float WAV.*{clip.clip_id}.wav"):
            read()
        return
    expected = io.resample(_read_wav(clip.audio_path), 8000, 16000).numpy()
    np.testing.assert_array_equal(read(), expected)


@pytest.mark.parametrize("broken", ["png", "wav"])
def test_corrupt_files_stop_the_pipeline_naming_the_file(root, broken):
    if broken == "png":
        for png in (root / "frames" / "000001.mp4").iterdir():
            png.write_bytes(png.read_bytes()[:40])
        victim = "000001.mp4/0000"
    else:
        wav = root / "binaural_audios" / "000001.wav"
        wav.write_bytes(wav.read_bytes()[:5000])
        victim = "000001.wav"
    clips = fairplay.list_clips(str(root), "test")
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"corrupt or truncated.*{victim}"):
        for _ in fairplay.evaluation_dataset(clips, resize_hw=(24, 32), crop_hw=(24, 32)):
            pass


def test_check_files_names_a_truncated_or_corrupt_file_before_any_decoding(root):
    clips = fairplay.list_clips(str(root), "train")
    fairplay.check_files(clips)  # a sound dataset passes
    wav = root / "binaural_audios" / "000002.wav"
    wav.write_bytes(wav.read_bytes()[:-16000 * 8])  # 1 s of the 2 s its header promises
    png = root / "frames" / "000003.mp4" / "000007.png"
    png.write_bytes(png.read_bytes()[:-12])  # without its IEND chunk
    with pytest.raises(fairplay.DatasetError) as error:
        fairplay.check_files(clips)
    assert str(error.value) == (f"{wav}: truncated WAV: its header says 2.00 s of audio, the file "
                                "holds 1.00 s (128000 of 256000 bytes); copy or export it again "
                                "(and 1 more bad clip(s))")  # 32-bit float, stereo: 8 bytes a sample
    assert fairplay.file_problem(clips[2]) == (f"{png}: truncated PNG (no IEND chunk at its end); "
                                               "extract the frame again")
    png.write_bytes(b"GIF89a" + b"\0" * 20)
    assert "000007.png: not a PNG file" in fairplay.file_problem(clips[2])
    write_wav(wav, np.zeros((1600, 2), np.float32), subtype="PCM_24")
    assert fairplay.file_problem(clips[1]).endswith(
        "a WAV of format 1 with 24-bit samples; the reader takes 16-bit PCM or 32-bit float "
        "(convert it, e.g. with keras_binaural.audio.write_wav)")


def test_reader_on_a_synthetic_dataset_agrees_with_its_metadata(tmp_path):
    """make_dataset -> reader: the frame shows the sounding object where the metadata puts it,
    and the louder ear is on that side."""
    import json

    from keras_binaural.data import scenes, synthetic

    settings = scenes.SceneSettings(clip_seconds=2.0, frame_size=(96, 64), max_sources=1,
                                       distractors=0, moving=0.0)
    synthetic.make_dataset(tmp_path, settings, 10, seed=3)
    clips = fairplay.list_clips(str(tmp_path), "train")
    dataset = fairplay.training_dataset(clips, seed=0, resize_hw=(64, 96), crop_hw=(64, 96),
                                        augment=False, chunks_per_clip=1)
    for example in dataset.take(6):
        clip_id = example["clip_id"].numpy().decode()
        metadata = json.loads((tmp_path / "metadata" / f"{clip_id}.json").read_text())
        (item,) = metadata["objects"]
        start = int(example["start_sample"])
        k = int(fairplay.frame_index(start / 16000, (start + 10080) / 16000, 20))
        x0, y0, x1, y1 = item["boxes_xyxy"][k - 1]
        colour = np.array(item["look"]["color"]) / 255
        frame = example["frame"].numpy()
        inside = np.abs(frame[y0:y1, x0:x1] - colour).sum(-1) < 0.1
        assert inside.mean() > 0.1, clip_id  # the object's colour fills part of its box
        energy = np.square(example["binaural"].numpy()).sum(0)
        if abs(item["azimuth_deg"]) > 15:  # +azimuth = left: the left ear is louder
            assert (energy[0] > energy[1]) == (item["azimuth_deg"] > 0), clip_id
