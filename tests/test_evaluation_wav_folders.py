import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from keras_binaural import metrics
from keras_binaural.audio import load_audio
from keras_binaural.evaluation import EvaluationError, wav_folders
from keras_binaural.evaluation.wav_folders import run_evaluation

REPO = pathlib.Path(__file__).resolve().parents[1]
NUM_SAMPLES = 8000  # 0.5 s at 16 kHz
CLIP_NAMES = ("a.wav", "b.wav", "sub/c.wav")


def _write(path, audio, subtype="PCM_16"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, audio, 16000, subtype=subtype)


@pytest.fixture
def dirs(tmp_path):
    """(pred_dir, gt_dir, out_dir) with three clips, one of them in a subfolder."""
    rng = np.random.default_rng(0)
    pred_dir, gt_dir, out_dir = tmp_path / "pred", tmp_path / "gt", tmp_path / "out"
    for name in CLIP_NAMES:
        gt = rng.uniform(-0.5, 0.5, (NUM_SAMPLES, 2))
        _write(gt_dir / name, gt)
        _write(pred_dir / name, 0.8 * gt + rng.uniform(-0.05, 0.05, gt.shape))
    _write(gt_dir / "only_in_gt.wav", rng.uniform(-0.5, 0.5, (NUM_SAMPLES, 2)))  # ignored
    out_dir.mkdir()
    return pred_dir, gt_dir, out_dir


def test_scores_every_clip_and_the_mono_mono_baseline(dirs):
    pred_dir, gt_dir, out_dir = dirs
    results = run_evaluation(pred_dir, gt_dir, out_dir / "r.json", out_dir / "r.md")
    written = json.loads((out_dir / "r.json").read_text())
    assert written == results
    assert set(written) == {"clips", "mean"}
    assert sorted(written["clips"]) == sorted(CLIP_NAMES)
    for scores in [*written["clips"].values(), written["mean"]]:
        assert set(scores) == {"pred", "mono_mono"}
        for system in scores.values():
            assert list(system) == list(metrics.METRIC_NAMES)
            assert all(isinstance(value, float) for value in system.values())

    gt = load_audio(gt_dir / "sub/c.wav", channels=2)
    pred = load_audio(pred_dir / "sub/c.wav", channels=2)
    assert written["clips"]["sub/c.wav"]["pred"] == pytest.approx(
        metrics.evaluate_clip_numpy(gt, pred)
    )
    mono = (gt[:, :1] + gt[:, 1:]) / 2
    assert written["clips"]["sub/c.wav"]["mono_mono"] == pytest.approx(
        metrics.evaluate_clip_numpy(gt, np.concatenate([mono, mono], axis=1))
    )
    for name in metrics.METRIC_NAMES:
        clip_values = [clip["pred"][name] for clip in written["clips"].values()]
        assert written["mean"]["pred"][name] == pytest.approx(np.mean(clip_values))

    markdown = (out_dir / "r.md").read_text()
    assert "| sub/c.wav | mono_mono |" in markdown and "| **mean** | pred |" in markdown
    assert sorted(os.listdir(out_dir)) == ["r.json", "r.md"]  # no temporary files left


def test_lengths_within_one_percent_are_trimmed(dirs):
    pred_dir, gt_dir, out_dir = dirs
    gt = load_audio(gt_dir / "a.wav", channels=2)
    _write(pred_dir / "a.wav", gt[: NUM_SAMPLES - 80])  # 1% shorter
    results = run_evaluation(pred_dir, gt_dir, out_dir / "r.json")
    assert results["clips"]["a.wav"]["pred"]["wav"] == 0.0


def test_clip_folder_layout_on_the_real_clips(fairplay_demo, tmp_path):
    results = run_evaluation(
        fairplay_demo,
        fairplay_demo,
        tmp_path / "r.json",
        pred_name="predicted_binaural.wav",
        gt_name="input_binaural.wav",
    )
    assert sorted(results["clips"]) == ["AVTsplit1_001353", "demo1", "demo2"]
    assert results["mean"]["pred"]["snr"] > results["mean"]["mono_mono"]["snr"]


def _mangle(case, pred_dir, gt_dir):
    """Breaks the inputs in one way; returns (pred_dir, gt_dir, text the error must contain)."""
    rng = np.random.default_rng(1)
    stereo = rng.uniform(-0.5, 0.5, (NUM_SAMPLES, 2))
    bad = pred_dir / "b.wav"
    if case == "missing pred dir":
        return pred_dir / "nope", gt_dir, str(pred_dir / "nope")
    if case == "missing gt dir":
        return pred_dir, gt_dir / "nope", str(gt_dir / "nope")
    if case == "no ground truth":
        _write(pred_dir / "extra.wav", stereo)
        return pred_dir, gt_dir, str(pred_dir / "extra.wav")
    if case == "no pairs":
        empty = pred_dir.parent / "empty"
        empty.mkdir()
        return empty, gt_dir, str(empty)
    if case == "unreadable":
        bad.write_bytes(b"not a wav file" * 20)
    elif case == "truncated":
        content = bad.read_bytes()
        bad.write_bytes(content[: len(content) // 2])
    elif case == "empty":
        _write(bad, np.zeros((0, 2)))
    elif case == "nan":
        stereo[10, 0] = np.nan
        _write(bad, stereo, subtype="FLOAT")
    elif case == "inf":
        stereo[10, 1] = np.inf
        _write(bad, stereo, subtype="FLOAT")
    elif case == "mono prediction":
        _write(bad, stereo[:, 0])
    elif case == "mono ground truth":
        _write(gt_dir / "b.wav", stereo[:, 0])
        return pred_dir, gt_dir, str(gt_dir / "b.wav")
    elif case == "length mismatch":
        _write(bad, stereo[: NUM_SAMPLES // 2])
        return pred_dir, gt_dir, "clip b.wav"
    return pred_dir, gt_dir, str(bad)


BAD_CASES = [
    "missing pred dir",
    "missing gt dir",
    "no ground truth",
    "no pairs",
    "unreadable",
    "truncated",
    "empty",
    "nan",
    "inf",
    "mono prediction",
    "mono ground truth",
    "length mismatch",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_a_clear_error_and_writes_nothing(dirs, case):
    pred_dir, gt_dir, out_dir = dirs
    pred_dir, gt_dir, must_name = _mangle(case, pred_dir, gt_dir)
    with pytest.raises(EvaluationError) as error:
        run_evaluation(pred_dir, gt_dir, out_dir / "r.json", out_dir / "r.md")
    assert must_name in str(error.value)
    assert os.listdir(out_dir) == []


def test_all_files_are_checked_before_any_scoring(dirs, monkeypatch):
    pred_dir, gt_dir, out_dir = dirs
    _mangle("nan", pred_dir, gt_dir)  # b.wav is bad; a.wav comes before it

    def fail(*args, **kwargs):
        raise AssertionError("scored a clip before all files were checked")

    monkeypatch.setattr(wav_folders.metrics, "evaluate_clip_numpy", fail)
    with pytest.raises(EvaluationError, match="NaN"):
        run_evaluation(pred_dir, gt_dir, out_dir / "r.json")


def _run_tool(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "evaluate_wavs.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_tool_writes_json_and_markdown(dirs):
    pred_dir, gt_dir, out_dir = dirs
    done = _run_tool(
        f"--pred_dir={pred_dir}",
        f"--gt_dir={gt_dir}",
        "--normalize",
        f"--output_json={out_dir / 'r.json'}",
        f"--output_md={out_dir / 'r.md'}",
    )
    assert done.returncode == 0, done.stderr
    written = json.loads((out_dir / "r.json").read_text())
    assert sorted(written["clips"]) == sorted(CLIP_NAMES)
    assert (out_dir / "r.md").read_text().startswith("# Binaural quality")


def test_tool_reports_bad_input_in_one_line(dirs):
    pred_dir, gt_dir, out_dir = dirs
    _mangle("mono prediction", pred_dir, gt_dir)
    done = _run_tool(
        f"--pred_dir={pred_dir}", f"--gt_dir={gt_dir}", f"--output_json={out_dir / 'r.json'}"
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert str(pred_dir / "b.wav") in lines[0] and "mono" in lines[0]
    assert os.listdir(out_dir) == []


def _no_scoring(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("scored a clip before the outputs were checked")

    monkeypatch.setattr(wav_folders.metrics, "evaluate_clip_numpy", fail)


def test_output_paths_are_checked_before_any_scoring(dirs, monkeypatch):
    pred_dir, gt_dir, out_dir = dirs
    _no_scoring(monkeypatch)
    (out_dir / "afile").write_text("")
    with pytest.raises(EvaluationError) as error:
        run_evaluation(pred_dir, gt_dir, out_dir / "afile" / "s.json")
    assert str(error.value) == (f"--output_json={out_dir}/afile/s.json: {out_dir}/afile is a "
                                f"file, so the folder {out_dir}/afile cannot be created; choose "
                                "another path")
    # An unwritable folder, simulated (the test may run as root, who may write anywhere).
    monkeypatch.setattr(os, "access", lambda path, mode: os.fspath(path) != str(out_dir))
    elsewhere = out_dir.parent / "s.json"
    with pytest.raises(EvaluationError, match=r"^--output_md=.*permission denied: cannot write"):
        run_evaluation(pred_dir, gt_dir, elsewhere, out_dir / "s.md")
    assert os.listdir(out_dir) == ["afile"] and not elsewhere.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere (simulated above)")
def test_an_unwritable_output_folder_is_refused_before_scoring(dirs, monkeypatch):
    pred_dir, gt_dir, out_dir = dirs
    _no_scoring(monkeypatch)
    out_dir.chmod(0o500)
    try:
        with pytest.raises(EvaluationError, match=r"^--output_json=.*permission denied"):
            run_evaluation(pred_dir, gt_dir, out_dir / "s.json")
    finally:
        out_dir.chmod(0o700)


def test_a_full_disk_leaves_neither_report(dirs, monkeypatch):
    import builtins
    import errno

    pred_dir, gt_dir, out_dir = dirs
    (out_dir / ".s.json.k3j4h5g6.tmp.json").write_text("{")  # a killed run's leftover
    real_open = builtins.open

    def full_disk_for_markdown(path, mode="r", *args, **kwargs):
        if "w" in mode and os.fspath(path).endswith(".md"):  # the second report
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk_for_markdown)
    with pytest.raises(EvaluationError) as error:
        run_evaluation(pred_dir, gt_dir, out_dir / "s.json", out_dir / "s.md")
    monkeypatch.undo()
    assert str(error.value) == (f"{out_dir}/s.md: cannot write (No space left on device); the "
                                "disk is full: free space or choose another folder; nothing was "
                                "written")
    assert os.listdir(out_dir) == []  # no JSON without its Markdown, no temporaries
