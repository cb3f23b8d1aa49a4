"""A training run's folder: its config check, per-epoch checkpoints, history and resume.

Workdir layout:

    WORKDIR/config.json                  the run's config (written at the first start)
    WORKDIR/checkpoints/epoch_NNNN.weights.h5   model + optimizer state after epoch N (newest
                                         `config.train.keep_checkpoints` kept)
    WORKDIR/checkpoints/state.json       the commit point: last finished epoch, its checkpoint,
                                         the per-epoch metrics
    WORKDIR/history.csv                  one row per finished epoch (epoch, loss, val_loss, ...)
    WORKDIR/logs/{train,validation}/     TensorBoard event files (`tensorboard --logdir WORKDIR`)
    WORKDIR/model.keras                  the trained model, written when training ends

Resume: `EpochCheckpoints` is a `keras.callbacks.BackupAndRestore` whose backup is the per-epoch
checkpoint above, written atomically (weights to a temporary file renamed into place, then
`state.json` rewritten atomically: an interrupted save leaves the previous epoch's state intact).
Killing the process at any moment and rerunning the same command restores the last finished epoch
(weights, optimizer moments and step count, so the learning-rate schedule continues) and trains
the remaining epochs: no epoch is lost or repeated. Only the epoch that was running when the
process died is redone. The data stream of a resumed run is reseeded with the epoch it starts
at (`config.seed + 1000 * epoch`): deterministic, and not a replay of the first epochs' chunks.
A checkpoint that cannot be read falls back to the one before it. The temporary files a killed
run leaves (`.epoch_0003.weights.h5.<8 characters>.tmp.weights.h5`, ...) are removed by the rerun
(`remove_temporaries`); a run that fails before its first epoch finishes removes what it wrote
(`discard_unstarted`), so a failed start leaves no config.json to refuse the next config.

Reruns of a workdir (decided here; the tool's docstring repeats it):
- the same config: resume (or, when every epoch is done and model.keras exists, do nothing);
- a config that differs only in `train.epochs`, `data.root` or `eval.*`: allowed (train longer or
  shorter, a moved dataset, other evaluation settings); config.json is updated;
- any other difference: refused, naming the keys that differ.

Errors name the flag or file; each function raises the caller's error type (the `error`
argument, `keras_binaural.training.TrainingError` for `training.train`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
from collections.abc import Sequence
from typing import Any

import keras
import ml_collections
from absl import logging

from keras_binaural import cli, files
from keras_binaural.runs import CONFIG_FILE, MODEL_FILE

# Config keys a rerun of a workdir may change (see the module docstring).
RESUMABLE_CHANGES = ("train.epochs", "data.root", "eval.")
CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"
HISTORY_FILE = "history.csv"
LOG_DIR = "logs"


# === The run's config ===


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: list(value) if isinstance(value, tuple) else value}


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
    """A JSON-ready dict of the config (tuples become lists)."""
    return json.loads(config.to_json_best_effort())


def config_differences(saved: dict, config: ml_collections.ConfigDict) -> list[str]:
    """Keys whose values differ between a saved config dict and `config`, sorted."""
    old, new = _flatten(saved), _flatten(config_to_dict(config))
    return sorted(key for key in set(old) | set(new) if old.get(key, "<missing>") != new.get(
        key, "<missing>"))


def check_workdir(workdir: str, config: ml_collections.ConfigDict,
                  error: type[Exception] = ValueError) -> dict | None:
    """Checks that `workdir` is new, or a run of the same config; returns its config.json or None.

    Raises:
      error: `workdir` is a file, holds a run of another config (the differing keys are named),
        or holds checkpoints or a model without config.json.
    """
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise error(f"--workdir={workdir!r}: is a file; give a directory (new or a run)")
    config_path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.isfile(config_path):
        for name in (CHECKPOINT_DIR, MODEL_FILE):
            if os.path.exists(os.path.join(workdir, name)):
                raise error(
                    f"--workdir={workdir!r}: holds {name} but no {CONFIG_FILE}, so it is not a run "
                    "of tools/train.py; use a new --workdir")
        return None
    try:
        with open(config_path) as stream:
            saved = json.load(stream)
    except (OSError, ValueError) as cause:
        raise error(f"{config_path}: unreadable ({cause}); use a new --workdir") from cause
    changed = [key for key in config_differences(saved, config)
               if not key.startswith(RESUMABLE_CHANGES)]
    if changed:
        shown = ", ".join(f"{key} ({_flatten(saved).get(key, '<missing>')!r} there)"
                          for key in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise error(
            f"--workdir={workdir!r}: holds a run of another config (differs in {shown}{more}); "
            "use a new --workdir, or the same --config and overrides as that run")
    return saved


def remove_temporaries(run_dir: str) -> int:
    """Removes what an interrupted run left half-written in `run_dir` and its checkpoints folder
    (`files.remove_temporaries`); returns the count."""
    return sum(files.remove_temporaries(folder)
               for folder in (run_dir, os.path.join(run_dir, CHECKPOINT_DIR)))


def needed_bytes(model: keras.Model, epochs_left: int, keep: int, existing: int) -> int:
    """About how many bytes a run writes beyond what its workdir holds: each checkpoint is the
    model's variables and the optimizer's two Adam moments (3 x 4 bytes a parameter); at most
    `keep` are kept, the next is written before the oldest is deleted, and model.keras (as large)
    comes at the end."""
    parameters = sum(int(math.prod(variable.shape)) for variable in model.weights)
    checkpoint = 12 * parameters
    return (min(epochs_left, max(keep - existing, 0)) + 1) * checkpoint


def discard_unstarted(workdir: str, remove_folder: bool) -> None:
    """Removes what a run wrote before its first epoch finished (config.json, logs/, an empty
    checkpoints/), so that a run that failed at the start leaves nothing behind; with
    `remove_folder`, the workdir too if it is then empty."""
    if read_state(os.path.join(workdir, CHECKPOINT_DIR)) is not None:
        return  # an epoch finished: that is work to resume, not debris
    for name in (CONFIG_FILE, HISTORY_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(workdir, name))
    shutil.rmtree(os.path.join(workdir, LOG_DIR), ignore_errors=True)
    remove_temporaries(workdir)
    for folder in (os.path.join(workdir, CHECKPOINT_DIR), *([workdir] if remove_folder else [])):
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # only if empty


# === Checkpoints and resume ===


def read_state(directory: str, error: type[Exception] = ValueError) -> dict | None:
    """The checkpoint state (`state.json`) in `directory`, or None before the first epoch.

    Raises:
      error: the file exists but cannot be read.
    """
    path = os.path.join(directory, STATE_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as stream:
            return json.load(stream)
    except (OSError, ValueError) as cause:
        raise error(f"{path}: unreadable ({cause}); delete it to restart training from "
                    "scratch") from cause


def history_csv(history: Sequence[dict]) -> str:
    """One CSV row per epoch: `epoch` first, then every metric name (sorted)."""
    names = sorted({key for row in history for key in row} - {"epoch"})
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["epoch", *names])
    for row in history:
        writer.writerow([row["epoch"], *(row.get(name, "") for name in names)])
    return text.getvalue()


class EpochCheckpoints(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` with one atomic checkpoint per epoch and the epoch history.

    After epoch N (1-based): `epoch_NNNN.weights.h5` (model and optimizer variables) is written to
    a temporary name and renamed into place; then `state.json` (the commit point) is rewritten
    atomically with {"epoch": N, "checkpoints": [{"epoch", "weights"}...], "history": [...]}; then
    `history_path` (CSV) is rewritten from the state; then checkpoints beyond the newest `keep` are
    deleted. At `on_train_begin` the newest readable checkpoint is restored and fit continues at
    the epoch after it. The checkpoints are kept when training ends (a rerun after the last epoch
    trains nothing).

    Args:
      directory: where the checkpoints and state.json live (created when needed).
      keep: how many of the newest checkpoints to keep (>= 1).
      history_path: optional CSV path rewritten after each epoch.
      error: the error type raised for an unreadable state or when no checkpoint is readable.
    """

    def __init__(self, directory: str, keep: int = 3, history_path: str | None = None,
                 error: type[Exception] = ValueError):
        super().__init__(backup_dir=directory, save_freq="epoch", delete_checkpoint=False)
        self.directory = directory
        self.keep = max(1, keep)
        self.history_path = history_path
        self.error = error
        state = read_state(directory, error) or {}
        self.checkpoints = list(state.get("checkpoints", []))
        self.history = list(state.get("history", []))
        self.restored_epoch = 0

    # --- restore (called by BackupAndRestore.on_train_begin) ---

    def _load_model(self):
        if not self.checkpoints:
            return
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)  # its slots must exist
        for entry in reversed(list(self.checkpoints)):
            path = os.path.join(self.directory, entry["weights"])
            try:
                self.model.load_weights(path)
            except (OSError, ValueError, KeyError) as error:
                logging.warning("checkpoint %s unreadable (%s); trying the one before", path,
                                cli.one_line(error, 200))
                continue
            epoch = int(entry["epoch"])
            self.checkpoints = [c for c in self.checkpoints if c["epoch"] <= epoch]
            self.history = [row for row in self.history if row["epoch"] <= epoch]
            self.model._initial_epoch = epoch  # what BackupAndRestore sets to resume fit
            self.restored_epoch = epoch
            logging.info("resuming after epoch %d from %s", epoch, path)
            return
        raise self.error(f"{self.directory}: no readable checkpoint; delete it to restart "
                         "training from scratch")

    # --- save (called by BackupAndRestore.on_epoch_end) ---

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1}
        for key, value in (logs or {}).items():
            try:
                row[key] = float(value)
            except (TypeError, ValueError):
                pass  # not a scalar metric
        self.history = [r for r in self.history if r["epoch"] < epoch + 1] + [row]
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        epoch = self._current_epoch
        os.makedirs(self.directory, exist_ok=True)
        name = f"epoch_{epoch:04d}.weights.h5"
        files.save_keras(self.model, os.path.join(self.directory, name))
        self.checkpoints = [c for c in self.checkpoints if c["epoch"] < epoch]
        self.checkpoints.append({"epoch": epoch, "weights": name})
        dropped, self.checkpoints = self.checkpoints[: -self.keep], self.checkpoints[-self.keep:]
        files.write_json(os.path.join(self.directory, STATE_FILE), {
            "epoch": epoch, "checkpoints": self.checkpoints, "history": self.history})
        if self.history_path:
            files.write_text(self.history_path, history_csv(self.history))
        for entry in dropped:
            path = os.path.join(self.directory, entry["weights"])
            if os.path.exists(path):
                os.remove(path)
