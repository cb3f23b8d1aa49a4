"""tools/evaluate.py and keras_binaural.evaluation.trained_runs: the tables, the JSON layout, the PNGs and
checked inputs, on a tiny synthetic split with tiny untrained CLUP and audio-only models."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from training_data import EVALUATE_TOOL, tiny_config, tiny_root

from keras_binaural import evaluation, files, metrics, training
from keras_binaural import workdir as workdir_lib
from keras_binaural.data import fairplay
from keras_binaural.evaluation import trained_runs

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _save_run(config, workdir) -> None:
    """What tools/train.py leaves in a workdir, without the training: config.json, model.keras."""
    model = training.build_model(config)
    files.write_json(workdir / "config.json", workdir_lib.config_to_dict(config))
    files.save_keras(model, str(workdir / "model.keras"))
    keras.backend.clear_session()


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tiny_root(tmp_path_factory)


@pytest.fixture(scope="module")
def runs(root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    for name, variant in (("clup", "tiny"), ("audio_only", "tiny,audio_only")):
        (folder / name).mkdir()
        _save_run(tiny_config(root, variant), folder / name)
    return folder


@pytest.fixture(scope="module")
def evaluated(runs, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("eval") / "out"
    results = trained_runs.run(str(runs / "clup"), output_dir=str(output_dir),
                               baselines=[f"audio_only={runs / 'audio_only' / 'model.keras'}"],
                               plots=True, progress=False)
    return results, output_dir


def test_results_json_holds_both_tables(evaluated, root):
    results, output_dir = evaluated
    assert json.loads((output_dir / "results.json").read_text()) == results
    assert list(results) == ["model", "baselines", "dataset", "settings", "table1", "table2",
                             "plots"]
    test_ids = [clip.clip_id for clip in fairplay.list_clips(str(root), "test")]
    assert results["dataset"] == {"root": str(root), "split": "split1", "subset": "test",
                                  "clips": test_ids}
    # The run config's sampler: CLUP's spatial prior; the audio-only model, which has no prior,
    # is scored with the fast sampler.
    assert results["settings"] == {"sampler": "prior", "seed": 0, "normalize": False}
    assert "sampler prior (fast for models without one)" in (output_dir / "results.md").read_text()
    assert results["model"]["name"] == "clup" and results["model"]["class"] == "CLUP"
    assert results["baselines"]["audio_only"]["localizes"] is False

    # Table 1: only models with a localizer; every 0.1 s window of the 1 s clips (4 each).
    assert list(results["table1"]) == ["clup"]
    row = results["table1"]["clup"]
    assert 0.0 <= row["distance"] <= np.sqrt(2.0) and 0.0 <= row["accuracy"] <= 1.0
    for key in ("distance", "accuracy"):
        low, high = row[f"{key}_interval"]
        assert low <= row[key] + 1e-6 and row[key] <= high + 1e-6
    assert row["num_windows"] == 4 * len(test_ids) and row["num_clips"] == len(test_ids)

    # Table 2: mono-mono first, then the baselines, then the model; six metrics each.
    table2 = results["table2"]
    assert table2["systems"] == ["mono_mono", "audio_only", "clup"]
    assert list(table2["clips"]) == test_ids
    for system in table2["systems"]:
        for name in metrics.METRIC_NAMES:
            values = [table2["clips"][clip][system][name] for clip in test_ids]
            assert table2["mean"][system][name] == pytest.approx(np.mean(values))
    # The scene groups of the synthetic split, each with its own means.
    groups = trained_runs.scene_groups(fairplay.list_clips(str(root), "test"))
    assert table2.get("groups", {}).get("clips", {}) == groups


def test_mono_mono_row_matches_the_metrics(evaluated, root):
    results, _ = evaluated
    clip = fairplay.list_clips(str(root), "test")[0]
    binaural = next(iter(fairplay.evaluation_dataset([clip], (72, 72), (64, 64))))["binaural"]
    binaural = binaural.numpy()
    expected = metrics.evaluate_clip_numpy(binaural, evaluation.mono_mono(binaural))
    assert results["table2"]["clips"][clip.clip_id]["mono_mono"] == pytest.approx(
        {**expected, "d_corr": 0.0})
    # Every system's differential is correlated with the truth, per clip, within [-1, 1].
    for scores in results["table2"]["clips"].values():
        assert all(-1.0 <= system["d_corr"] <= 1.0 for system in scores.values())


def test_markdown_and_plots(evaluated):
    results, output_dir = evaluated
    markdown = (output_dir / "results.md").read_text()
    assert "## Table 1: sounding-object localization" in markdown
    assert "| model | distance ↓ | accuracy (%) ↑ |" in markdown
    assert "In brackets: 95 % intervals with whole clips drawn again" in markdown
    assert ("| system | STFT ↓ | ENV ↓ | WAV ↓ | AMP ↓ | PHA ↓ | SNR (dB) ↑ | d corr. ↑ |"
            in markdown)
    for system in ("mono_mono", "audio_only", "clup"):
        assert f"\n| {system} | " in markdown
    groups = results["table2"].get("groups", {"clips": {}})["clips"]
    assert ("### Table 2 by scene" in markdown) == bool(groups)
    for group, ids in groups.items():
        assert f"\n| {group} | {len(ids)} | clup | " in markdown
    assert results["plots"] == ["plots/correlation_clup.png", "plots/maps_clup.png",
                                "plots/spectrograms.png", "plots/envelopes.png"]
    for path in results["plots"]:
        assert (output_dir / path).read_bytes()[:8] == PNG_SIGNATURE
        assert f"]({path})" in markdown
    assert not [n for n in os.listdir(output_dir / "plots") if n.startswith(".")]


def test_bad_inputs_name_the_flag(runs, tmp_path):
    with pytest.raises(evaluation.EvaluationError, match=r"^--model=.*no such file"):
        trained_runs.run(str(tmp_path / "missing.keras"))
    with pytest.raises(evaluation.EvaluationError, match=r"^--model=.*holds no model.keras"):
        trained_runs.run(str(tmp_path))
    with pytest.raises(evaluation.EvaluationError, match=r"^--baseline=audio_only: expected"):
        trained_runs.run(str(runs / "clup"), baselines=["audio_only"])
    with pytest.raises(evaluation.EvaluationError, match=r"^--baseline=mono_mono=.*reserved"):
        trained_runs.run(str(runs / "clup"), baselines=[f"mono_mono={runs / 'audio_only'}"])
    with pytest.raises(evaluation.EvaluationError, match=r"^--root=.*no such directory"):
        trained_runs.run(str(runs / "clup"), root=str(tmp_path / "nowhere"))
    assert not (runs / "clup" / "eval_test").exists()  # nothing written


def test_tool_reports_a_bad_flag_in_one_line(runs, tmp_path):
    command = [sys.executable, str(EVALUATE_TOOL), f"--model={runs / 'clup'}",
               "--baseline=audio_only"]
    result = subprocess.run(command, check=False, env=ENV, capture_output=True, text=True)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    expected = ("evaluate: error: --baseline=audio_only: expected NAME=PATH, e.g. "
                "audio_only=runs/demo_audio_only/model.keras")
    assert lines == [expected], result.stderr


def test_bad_data_and_output_folders_are_refused_before_any_model_is_loaded(runs, root, tmp_path,
                                                                             monkeypatch):
    import shutil

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the inputs were checked")

    monkeypatch.setattr(trained_runs, "make_system", no_loading)
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    victim = copy / "frames" / f"{fairplay.split_ids(str(copy), 'test')[0]}.mp4" / "000002.png"
    victim.write_bytes(victim.read_bytes()[:30])
    with pytest.raises(evaluation.EvaluationError) as error:
        trained_runs.run(str(runs / "clup"), root=str(copy), output_dir=str(tmp_path / "out"))
    assert str(error.value) == (f"split1/test: {victim}: truncated PNG (no IEND chunk at its end); "
                                "extract the frame again")
    (tmp_path / "afile").write_text("")
    with pytest.raises(evaluation.EvaluationError,
                       match=r"^--output_dir=.*afile/out: .*afile is a file, so the folder"):
        trained_runs.run(str(runs / "clup"), output_dir=str(tmp_path / "afile" / "out"))
    assert sorted(os.listdir(tmp_path)) == ["afile", "root"]


def test_a_full_disk_leaves_no_results_and_a_rerun_clears_leftovers(runs, tmp_path, monkeypatch):
    import builtins
    import errno

    out = tmp_path / "out"
    out.mkdir()
    (out / ".results.json.k2j4h5g6.tmp.json").write_text("{")  # a killed run's leftover
    real_open = builtins.open

    def full_disk_for_markdown(path, mode="r", *args, **kwargs):
        if "w" in mode and os.fspath(path).endswith(".md"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk_for_markdown)
    with pytest.raises(files.OutputError) as error:
        trained_runs.run(str(runs / "audio_only"), output_dir=str(out), max_clips=1,
                         progress=False)
    assert str(error.value) == (f"{out}/results.md: cannot write (No space left on device); the "
                                "disk is full: free space or choose another folder; nothing was "
                                "written")
    assert os.listdir(out) == []  # no results.json without its results.md, no temporaries


def test_scenes_are_grouped_by_their_sounding_objects_and_motion(tmp_path):
    (tmp_path / "metadata").mkdir()
    scenes = {"000001": [(True, False)], "000002": [(True, True), (False, True)],
              "000003": [(True, False), (True, False), (False, False)]}
    clips = []
    for clip_id, objects in scenes.items():
        files.write_json(tmp_path / "metadata" / f"{clip_id}.json", {"objects": [
            {"sounding": sounding, "moving": moving} for sounding, moving in objects]})
        clips.append(fairplay.Clip(clip_id, str(tmp_path / "binaural_audios" / f"{clip_id}.wav"),
                                   "", 1))
    groups = trained_runs.scene_groups(clips)
    # A moving silent object does not make a moving scene.
    assert groups == {"1 sounding object": ["000001", "000002"],
                      "2 sounding objects": ["000003"],
                      "sources static": ["000001", "000003"], "sources moving": ["000002"]}
    table = {"systems": ["mono_mono"], "clips": {
        clip_id: {"mono_mono": {name: float(i) for name in trained_runs.SCORE_NAMES}}
        for i, clip_id in enumerate(scenes)}}
    means = trained_runs.group_means(table, groups)
    assert means["1 sounding object"]["mono_mono"]["snr"] == 0.5
    assert means["sources static"]["mono_mono"]["stft"] == 1.0
    # One kind of scene only, or a clip without metadata: no groups.
    assert trained_runs.scene_groups(clips[:1]) == {}
    elsewhere = fairplay.Clip("000009", str(tmp_path / "x" / "a" / "000009.wav"), "", 1)
    assert trained_runs.scene_groups([*clips, elsewhere]) == {}
