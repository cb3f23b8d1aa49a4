"""tools/train.py and keras_binaural.training: checkpoints, TensorBoard, resume after SIGKILL
(on two logical CPUs with MirroredStrategy), workdir and flag checks."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import pytest
import tensorflow as tf
from training_data import CONFIG_FILE, TRAIN_TOOL, tiny_config, tiny_root

from keras_binaural import training
from keras_binaural import workdir as workdir_lib

EPOCHS = 4
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _command(workdir, root, *extra):
    return [sys.executable, str(TRAIN_TOOL), f"--config={CONFIG_FILE}:tiny,localizer",
            f"--workdir={workdir}", f"--config.data.root={root}",
            f"--config.train.epochs={EPOCHS}", "--config.train.steps_per_epoch=3", "--verbose=2",
            *extra]


def _history(workdir) -> list[dict]:
    with open(workdir / "history.csv") as stream:
        return list(csv.DictReader(stream))


def _event_steps(folder, tag: str = "epoch_loss") -> list[int]:
    steps = []
    for name in sorted(os.listdir(folder)):
        for record in tf.data.TFRecordDataset(str(folder / name)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return steps


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tiny_root(tmp_path_factory)


@pytest.fixture(scope="module")
def resumed_run(root, tmp_path_factory):
    """A run killed (SIGKILL) after its first checkpoint, then rerun with the same command plus
    `--strategy=mirrored --cpu_devices=2` (a resumed run may change its devices)."""
    workdir = tmp_path_factory.mktemp("resume") / "run"
    state_path = workdir / "checkpoints" / "state.json"
    first = subprocess.Popen(_command(workdir, root), env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not state_path.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    first.kill()  # SIGKILL: no chance to clean up
    first_stderr = first.communicate()[1]
    assert first.returncode == -signal.SIGKILL, first_stderr[-2000:]
    with open(state_path) as stream:
        killed_state = json.load(stream)
    assert 1 <= killed_state["epoch"] < EPOCHS, "the run finished before it could be killed"
    second = subprocess.run(_command(workdir, root, "--strategy=mirrored", "--cpu_devices=2"),
                            check=False, env=ENV, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-3000:]
    return workdir, killed_state, second


def test_resume_after_sigkill_loses_and_repeats_no_epoch(resumed_run):
    workdir, killed_state, second = resumed_run
    done = killed_state["epoch"]
    assert f"resuming after epoch {done} from" in second.stderr
    history = _history(workdir)
    assert [int(row["epoch"]) for row in history] == list(range(1, EPOCHS + 1))
    # The epochs finished before the kill are not trained again: their rows are kept as logged.
    for before, after in zip(killed_state["history"], history[:done]):
        assert float(after["loss"]) == pytest.approx(before["loss"], rel=1e-6)
    assert f"trained {EPOCHS} epochs" in second.stdout
    # TensorBoard saw every epoch once (the killed epoch may have been logged before the kill).
    assert set(_event_steps(workdir / "logs" / "train")) == set(range(EPOCHS))


def test_run_writes_checkpoints_history_events_and_model(resumed_run):
    workdir, _, _ = resumed_run
    config = json.loads((workdir / "config.json").read_text())
    assert config["variant"] == "tiny,localizer" and config["train"]["epochs"] == EPOCHS
    keep = config["train"]["keep_checkpoints"]
    names = sorted(os.listdir(workdir / "checkpoints"))
    assert names == [f"epoch_{e:04d}.weights.h5" for e in range(EPOCHS - keep + 1, EPOCHS + 1)] + [
        "state.json"]
    state = json.loads((workdir / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == EPOCHS
    assert [c["epoch"] for c in state["checkpoints"]] == list(range(EPOCHS - keep + 1, EPOCHS + 1))
    history = _history(workdir)
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "val_distance"} <= set(history[0])
    assert set(_event_steps(workdir / "logs" / "validation")) == set(range(EPOCHS))
    model = keras.saving.load_model(workdir / "model.keras", compile=False)
    assert type(model).__name__ == "LocalizationModel"
    assert not [name for name in os.listdir(workdir) if name.startswith(".")]  # no temporaries


def test_rerun_of_a_finished_run_does_nothing(resumed_run, root):
    workdir, _, _ = resumed_run
    config = tiny_config(root)
    config.train.epochs, config.train.steps_per_epoch = EPOCHS, 3
    before = os.path.getmtime(workdir / "model.keras")
    summary = training.train(config, str(workdir))
    assert summary["seconds"] == 0.0 and summary["epochs"] == EPOCHS
    assert os.path.getmtime(workdir / "model.keras") == before


def test_rerun_with_another_config_is_refused(resumed_run, root):
    workdir, _, _ = resumed_run
    config = tiny_config(root)
    config.train.epochs, config.train.steps_per_epoch = EPOCHS, 3
    config.model.lambda_obj = 0.5
    with pytest.raises(training.TrainingError,
                       match=r"^--workdir=.*another config \(differs in model.lambda_obj \(1.0"):
        training.train(config, str(workdir))
    config.model.lambda_obj = 1.0
    config.train.epochs = EPOCHS + 2  # training longer is allowed
    assert workdir_lib.check_workdir(str(workdir), config)["train"]["epochs"] == EPOCHS


def test_the_resumed_run_trained_on_two_logical_cpus(resumed_run):
    workdir, _, second = resumed_run
    assert "batch 4 on 2 replica(s)" in second.stderr
    assert (workdir / "model.keras").is_file()


def test_inputs_are_checked_before_training(root, tmp_path):
    config = tiny_config(root)
    config.data.root = str(tmp_path / "missing")
    with pytest.raises(training.TrainingError, match=r"^--config.data.root=.*no such directory"):
        training.train(config, str(tmp_path / "run"))
    config.data.root, config.data.split = str(root), "split9"
    with pytest.raises(training.TrainingError, match=r"split 'split9' has no train.txt"):
        training.train(config, str(tmp_path / "run"))
    config.data.split, config.train.batch_size = "split1", 3
    with pytest.raises(training.TrainingError, match=r"multiple of the 2 replicas"):
        training.train(config, str(tmp_path / "run"), strategy=FakeStrategy())
    (tmp_path / "file").write_text("x")
    config.train.batch_size = 4
    with pytest.raises(training.TrainingError, match=r"^--workdir=.*is a file"):
        training.train(config, str(tmp_path / "file"))
    assert not (tmp_path / "run").exists()  # nothing written


class FakeStrategy:
    num_replicas_in_sync = 2


def test_tool_reports_a_bad_flag_in_one_line(root, tmp_path):
    # Other bad inputs take the same path (TrainingError -> one line), tested in-process above.
    expected = ("train: error: --config.train.epoch: the config has no key 'epoch'; did you mean "
                "'epochs'?")
    command = [sys.executable, str(TRAIN_TOOL), f"--config={CONFIG_FILE}:tiny",
               f"--workdir={tmp_path / 'run'}", f"--config.data.root={root}",
               "--config.train.epoch=3"]
    result = subprocess.run(command, check=False, env=ENV, capture_output=True, text=True)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [expected], result.stderr
    assert not (tmp_path / "run").exists()


def _copy_with_a_truncated_wav(root, tmp_path):
    import shutil

    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    victim = copy / "binaural_audios" / f"{training_ids(copy)[3]}.wav"
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    return copy, victim


def training_ids(root):
    return (root / "splits" / "split1" / "train.txt").read_text().split()


def test_a_truncated_wav_is_named_in_one_line_before_training_and_nothing_is_written(
        root, tmp_path):
    copy, victim = _copy_with_a_truncated_wav(root, tmp_path)
    workdir = tmp_path / "run"
    start = time.monotonic()
    result = subprocess.run(_command(workdir, copy), check=False, env=ENV, capture_output=True,
                            text=True)
    seconds = time.monotonic() - start
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    expected = (f"train: error: split1/train: {victim}: truncated WAV: its header says 1.00 s of "
                "audio, the file holds 0.50 s (31978 of 64000 bytes); copy or export it again")
    assert lines == [expected], result.stderr
    assert seconds < 60  # TensorFlow's import, then a header pass (was: 134 s of graph building)
    assert not workdir.exists()


def test_a_run_that_fails_before_its_first_epoch_leaves_nothing(root, tmp_path, monkeypatch):
    config = tiny_config(root)
    workdir = tmp_path / "run"

    def fail(*args, **kwargs):
        assert (workdir / "config.json").is_file()  # written before fit, as before
        (workdir / "logs").mkdir()
        raise tf.errors.InvalidArgumentError(
            None, None, "Graph execution error:\n\nDetected at node Assert defined at (most "
            "recent call last):\n<stack traces unavailable>\nassertion failed: [corrupt or "
            "truncated PNG:] [/data/frames/000007.mp4/000003.png]\n\t [[{{node Assert}}]] "
            "[Op:__inference_train_function_123]")

    monkeypatch.setattr(training, "_fit", fail)
    with pytest.raises(training.TrainingError) as error:
        training.train(config, str(workdir))
    assert str(error.value) == (
        "training stopped: corrupt or truncated PNG: /data/frames/000007.mp4/000003.png; fix it "
        "and rerun the same command (training resumes after the last finished epoch)")
    assert not workdir.exists()


def test_too_little_space_for_the_checkpoints_is_refused_before_training(root, tmp_path,
                                                                          monkeypatch):
    import shutil

    config = tiny_config(root)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=10**8))
    with pytest.raises(training.TrainingError,
                       match=r"^--workdir=.*run: not enough space: this needs about [0-9.]+ MB, "):
        training.train(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_step_progress_prints_rate_and_eta_within_an_epoch(monkeypatch):
    clock = iter([0.0, 30.0, 31.0, 52.0, 53.0, 54.0])  # epoch start, then after steps 1..5
    monkeypatch.setattr(training.time, "monotonic", lambda: next(clock))
    lines = []
    progress = training.StepProgress(steps_per_epoch=6, epochs=8, every_seconds=20.0,
                                     write=lines.append)
    progress.on_epoch_begin(2)  # e.g. a resumed run: the first step builds the graph
    for step in range(5):
        progress.on_train_batch_end(step, {"loss": 0.5 + step})
    assert lines == ["epoch 3/8: step 1/6 took 30.0 s (with building the graph), loss 0.5000",
                     "epoch 3/8: step 3/6, 11.00 s/step, ETA 33 s, loss 2.5000"]
    clock = iter([100.0, 101.5, 102.0])  # the next epoch: its first step is an ordinary one
    progress.on_epoch_begin(3)
    progress.on_train_batch_end(0, {"loss": 0.25})
    assert lines[-1] == "epoch 4/8: step 1/6, 1.50 s/step, ETA 8 s, loss 0.2500"
