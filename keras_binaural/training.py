"""Training from a config: the model and the datasets by name, the optimizer, `model.fit`.

The library behind `tools/train.py` (configs in `configs/clup.py`). `train(config, workdir)` checks
everything first (config values, the dataset's splits, the workdir), then builds the model named by
`config.model_kind` from `config.model` (its constructor's keyword arguments, as they are) inside
the distribution strategy's scope and runs `model.fit` on random 0.63 s chunks of the train split,
with validation on the val split after each epoch.

The workdir (layout, checkpoints, resume, which reruns are allowed): `keras_binaural.workdir`.

Strategies: `keras_binaural.distribute` ("default", "mirrored", "multi_worker"). With several
workers, only the chief writes WORKDIR; the others keep their checkpoints and logs in
WORKDIR/workers/<task>_<id>/ (each restores from its own on a rerun).

Every problem found before training is a `TrainingError` with a one-line message naming the flag,
config key or file, what is wrong and what would be right.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import keras
import ml_collections
import tensorflow as tf
from absl import logging

from keras_binaural import cli, distribute, files
from keras_binaural import workdir as workdir_lib
from keras_binaural.conventions import GUIDANCES, SAMPLERS
from keras_binaural.data import fairplay
from keras_binaural.models.audio_encoders import AUDIO_ENCODERS
from keras_binaural.models.clup import CLUP
from keras_binaural.models.localization import LOCALIZERS, LocalizationModel
from keras_binaural.models.resnet import ResNet18
from keras_binaural.models.upmixer import Upmixer
from keras_binaural.models.vggish import VGGish
from keras_binaural.runs import CONFIG_FILE, MODEL_FILE

KINDS = ("clup", "upmixer", "localizer")
OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULES = ("constant", "cosine")


class TrainingError(ValueError):
    """A config, flag, dataset or workdir that cannot be trained; the message says which and why."""


# === Checks ===


def _fail(key: str, value: Any, problem: str) -> TrainingError:
    return TrainingError(f"--config.{key}={value!r}: {problem}")


def _check_choice(config: ml_collections.ConfigDict, key: str, choices: Sequence[str]) -> None:
    value = _get(config, key)
    if value not in choices:
        raise _fail(key, value, f"must be one of {', '.join(choices)}")


def _get(config: ml_collections.ConfigDict, key: str) -> Any:
    value = config
    for part in key.split("."):
        value = value[part]
    return value


def _lambda_keys(section: ml_collections.ConfigDict, prefix: str) -> list[str]:
    """The keys of every loss weight (`lambda_*`) in a model section, at any depth."""
    keys = []
    for name, value in section.items():
        if isinstance(value, ml_collections.ConfigDict):
            keys += _lambda_keys(value, f"{prefix}.{name}")
        elif name.startswith("lambda_"):
            keys.append(f"{prefix}.{name}")
    return keys


def check_config(config: ml_collections.ConfigDict) -> None:
    """Checks the values of a config (its keys are fixed by `lock_config`).

    `config.model` holds the arguments of the class `config.model_kind` names (configs/clup.py);
    the constructors check the rest when `build_model` calls them.

    Raises:
      TrainingError: naming the first bad key, its value and what would be right.
    """
    _check_choice(config, "model_kind", KINDS)
    localizer = "model" if config.model_kind == "localizer" else "model.localizer_config"
    if config.model_kind == "localizer":
        _check_choice(config, "model.localizer", LOCALIZERS)
    elif config.model_kind == "upmixer":
        _check_choice(config, "model.guidance", GUIDANCES)
    if localizer == "model" or "localizer_config" in config.model:
        _check_choice(config, f"{localizer}.audio_encoder", AUDIO_ENCODERS)
    _check_choice(config, "train.optimizer", OPTIMIZERS)
    _check_choice(config, "train.lr_schedule", LR_SCHEDULES)
    _check_choice(config, "eval.sampler", SAMPLERS)
    for key in (*_lambda_keys(config.model, "model"), "train.weight_decay", "train.clipnorm"):
        if _get(config, key) < 0:
            raise _fail(key, _get(config, key), "must be >= 0")
    for key, least in (("train.batch_size", 2), ("train.epochs", 1), ("train.steps_per_epoch", 1),
                       ("train.validation_steps", 0), ("train.warmup_steps", 0),
                       ("train.keep_checkpoints", 1), ("data.chunks_per_clip", 1)):
        if _get(config, key) < least:
            why = " (in-batch negatives need another example)" if key == "train.batch_size" else ""
            raise _fail(key, _get(config, key), f"must be at least {least}{why}")
    if not config.train.learning_rate > 0:
        raise _fail("train.learning_rate", config.train.learning_rate, "must be > 0")
    resize_hw, crop_hw = tuple(config.data.resize_hw), tuple(config.data.crop_hw)
    for key, size in (("data.resize_hw", resize_hw), ("data.crop_hw", crop_hw)):
        if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
            raise _fail(key, size, "must be (height, width), two positive integers")
    if crop_hw[0] > resize_hw[0] or crop_hw[1] > resize_hw[1]:
        raise _fail("data.crop_hw", crop_hw, f"must fit inside data.resize_hw={resize_hw}")
    for key in ("model_init.resnet_weights", "model_init.vggish_weights"):
        path = _get(config, key)
        if path and not os.path.isfile(path):
            raise _fail(key, path, "no such file (a .weights.h5 written by "
                        f"tools/convert_{'resnet18_weights' if 'resnet' in key else 'vggish_checkpoint'}"
                        ".py, or '' for random initialisation)")
        if path and not path.endswith(".weights.h5"):
            raise _fail(key, path, "must be a .weights.h5 file")
    for key, run in (("localizer", "configs/clup.py:SIZE,localizer"),
                     ("responses", "an upmixer or CLUP with the spatial prior")):
        path = config.model_init.get(key, "")
        if path and not os.path.isfile(run_model_file(path)):
            raise _fail(f"model_init.{key}", path, "no such .keras file or tools/train.py "
                        f"workdir with a model.keras (a run of {run})")
    if (config.model.get("spatial_prior") and config.model.get("update_responses") is False
            and not config.model_init.get("responses", "")):
        raise _fail("model.update_responses", False, "holds the spatial prior's column responses, "
                    "but model_init.responses names none to hold: they would stay 0 (mono-mono)")
    if config.model.get("update_localizer") is False and not config.model_init.get("localizer", ""):
        raise _fail("model.update_localizer", False, "holds the localizer, but "
                    "model_init.localizer names none to hold: its map would stay random")


def run_model_file(path: str) -> str:
    """A .keras file, or the model.keras of a tools/train.py workdir."""
    return os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path


def split_clips(config: ml_collections.ConfigDict, subset: str,
                least: int = 1) -> list[fairplay.Clip]:
    """The clips of `subset` ("train", "val", "test") of `config.data.split`, checked.

    Raises:
      TrainingError: a root that is not a FAIR-Play-layout folder, a missing split file,
        incomplete clips, fewer than `least` clips, or a truncated or corrupt WAV or PNG
        (`fairplay.check_files`: headers and signatures, in seconds).
    """
    root = config.data.root
    if not os.path.isdir(root):
        raise TrainingError(
            f"--config.data.root={root!r}: no such directory (make one with tools/make_dataset.py "
            "or tools/prepare_fairplay.py, or point --config.data.root at one)")
    try:
        clips = fairplay.list_clips(root, subset, config.data.split)
    except fairplay.DatasetError as error:
        raise TrainingError(f"--config.data.root={root!r}: {cli.one_line(error)}") from error
    if len(clips) < least:
        hint = (" or --config.train.validation_steps=0 to train without validation"
                if subset == config.data.val_subset else "")
        raise TrainingError(
            f"--config.data.root={root!r}: {config.data.split}/{subset} has {len(clips)} clip(s), "
            f"at least {least} are needed (negatives come from other clips); use a larger "
            f"dataset{hint}")
    try:
        fairplay.check_files(clips)
    except fairplay.DatasetError as error:
        raise TrainingError(f"{config.data.split}/{subset}: {error}") from None
    return clips


# === Models by name ===


def build_model(config: ml_collections.ConfigDict) -> keras.Model:
    """The model `config.model_kind` names, built from `config.model`, its constructor's keyword
    arguments as they are, with the pre-trained weights of `config.model_init` loaded.

    - "localizer": `LocalizationModel` (OSA or baseline; lambda_sce, lambda_obj, lambda_ssm).
    - "upmixer": `Upmixer` (audio-only with guidance "none"; else guided by a localizer trained
      with its own loss, no cyclic term).
    - "clup": `CLUP`, OSA + SSM localizer and the upmixer trained together (lambda_cyc; the
      localizer's λs in its `localizer_config`).

    Call inside `strategy.scope()` to place the variables.

    Raises:
      TrainingError: an unknown kind, or arguments the constructor refuses.
    """
    classes = {"clup": CLUP, "upmixer": Upmixer, "localizer": LocalizationModel}
    kind = config.model_kind
    if kind not in classes:
        raise _fail("model_kind", kind, f"must be one of {', '.join(KINDS)}")
    try:
        model = classes[kind](**config.model.to_dict(), name=kind)
    except (TypeError, ValueError) as error:
        raise TrainingError(
            f"--config.model: {cli.one_line(error)} (model_kind {kind!r})") from error
    load_pretrained(model, config)
    return model


def _layers_of_type(model: keras.Model, cls: type) -> list[keras.layers.Layer]:
    found, stack = [], [model]
    seen = set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, cls) and layer is not model:
            found.append(layer)
            continue
        stack.extend(getattr(layer, "_layers", []))
    return found


def load_pretrained(model: keras.Model, config: ml_collections.ConfigDict) -> None:
    """Loads `model_init.resnet_weights` into every ResNet-18 and `model_init.vggish_weights`
    into every VGGish inside `model`, and `model_init.localizer` (a trained localizer) into its
    localizer, and the spatial prior's column responses of `model_init.responses` (no-op for
    empty paths)."""
    path = config.model_init.get("localizer", "")
    if path:
        load_localizer(model, run_model_file(path))
    path = config.model_init.get("responses", "")
    if path:
        load_responses(model, run_model_file(path))
    for key, cls in (("resnet_weights", ResNet18), ("vggish_weights", VGGish)):
        path = config.model_init[key]
        if not path:
            continue
        targets = _layers_of_type(model, cls)
        if not targets:
            raise _fail(f"model_init.{key}", path,
                        f"the model has no {cls.__name__} to load it into")
        for layer in targets:
            layer.load_weights(path)
        logging.info("loaded %s into %d %s layer(s)", path, len(targets), cls.__name__)


def load_localizer(model: keras.Model, path: str) -> None:
    """Sets the weights of `model`'s localizer (or of `model`, a localizer) to those of the
    `LocalizationModel` saved in `path`, which must have been built with the same arguments."""
    target = model if isinstance(model, LocalizationModel) else getattr(model, "localizer", None)
    if target is None:
        raise _fail("model_init.localizer", path, "the model has no localizer to load it into")
    source = keras.saving.load_model(path, compile=False)
    if not isinstance(source, LocalizationModel):
        raise _fail("model_init.localizer", path,
                    f"holds a {type(source).__name__}, not a LocalizationModel")
    shapes = [tuple(v.shape) for v in source.weights]
    if shapes != [tuple(v.shape) for v in target.weights]:
        raise _fail("model_init.localizer", path, "its localizer was built with other arguments "
                    "than this model's localizer_config (the weights' shapes differ)")
    target.set_weights(source.get_weights())
    logging.info("loaded the localizer of %s (%d weights)", path, len(shapes))


def load_responses(model: keras.Model, path: str) -> None:
    """Sets the spatial prior's column responses (`ColumnResponses`' sums) of `model` to those
    of the upmixer or CLUP saved in `path`, which must have as many prior columns."""
    target = getattr(model, "prior", None)
    if target is None:
        raise _fail("model_init.responses", path,
                    "the model has no spatial prior to load them into")
    source = getattr(keras.saving.load_model(path, compile=False), "prior", None)
    if source is None:
        raise _fail("model_init.responses", path, "holds no model with a spatial prior")
    if source.responses.columns != target.responses.columns:
        raise _fail("model_init.responses", path,
                    f"its prior has {source.responses.columns} columns, this model's "
                    f"{target.responses.columns} (model.prior_columns)")
    target.responses.set_weights(source.responses.get_weights())
    logging.info("loaded the column responses of %s", path)


def make_optimizer(config: ml_collections.ConfigDict) -> keras.optimizers.Optimizer:
    """Adam/AdamW with the config's learning rate, schedule (over all steps) and clipping."""
    train = config.train
    rate: Any = train.learning_rate
    if train.lr_schedule == "cosine":
        total = train.epochs * train.steps_per_epoch
        warmup = min(train.warmup_steps, max(total - 1, 0))
        rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup else train.learning_rate,
            decay_steps=max(total - warmup, 1),
            warmup_target=train.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    # Per variable, not global: CLUP's localization losses give its localizer gradients ~80
    # times the denoiser's (7.1 vs 0.09 at the start of the demo's training), so one global norm
    # would scale the denoiser's and the spatial prior's steps down as much.
    clip = {"clipnorm": train.clipnorm} if train.clipnorm > 0 else {}
    if train.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=train.weight_decay, **clip)
    return keras.optimizers.Adam(rate, **clip)


# === Datasets ===


def with_clip_indices(dataset: tf.data.Dataset,
                      clips: Sequence[fairplay.Clip]) -> tf.data.Dataset:
    """Replaces each example's string `clip_id` by the clip's int32 index in `clips`.

    The models only compare clip ids (in-batch negatives), and `tf.distribute` cannot handle
    string tensors (Keras reduces a first batch across replicas to build the model).
    """
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant([clip.clip_id for clip in clips]),
            tf.range(len(clips), dtype=tf.int32)),
        default_value=-1)
    return dataset.map(lambda example: {**example, "clip_id": table.lookup(example["clip_id"])},
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def training_batches(config: ml_collections.ConfigDict, clips: Sequence[fairplay.Clip],
                     seed: int) -> tf.data.Dataset:
    """Endless batches of random training chunks (`fairplay.training_dataset`), global batch.

    Each is a dict of `fairplay.training_dataset`'s tensors with a leading batch axis; `clip_id`
    is the clip's int32 index (`with_clip_indices`).
    """
    dataset = fairplay.training_dataset(
        list(clips), seed=seed, chunks_per_clip=config.data.chunks_per_clip,
        resize_hw=tuple(config.data.resize_hw), crop_hw=tuple(config.data.crop_hw),
        augment=config.data.augment, mirror=config.data.mirror)
    dataset = with_clip_indices(dataset, clips)
    return dataset.batch(config.train.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def validation_batches(config: ml_collections.ConfigDict,
                       clips: Sequence[fairplay.Clip]) -> tf.data.Dataset:
    """`config.train.validation_steps` batches of val chunks, the same ones every epoch.

    Central crops, no jitter; cached in memory after the first epoch (the reader reshuffles on
    every pass, so the cache is what keeps the validation set fixed).
    """
    dataset = fairplay.training_dataset(
        list(clips), seed=config.seed + 7919, chunks_per_clip=config.data.chunks_per_clip,
        resize_hw=tuple(config.data.resize_hw), crop_hw=tuple(config.data.crop_hw),
        augment=False)
    return with_clip_indices(dataset, clips).batch(config.train.batch_size, drop_remainder=True
                                                   ).take(config.train.validation_steps).cache()


# === Training ===


def train(
    config: ml_collections.ConfigDict,
    workdir: str,
    strategy: str | tf.distribute.Strategy = "default",
    verbose: int | str = 1,
) -> dict:
    """Trains `config` in `workdir`, resuming a previous run there (module docstring).

    Args:
      config: a config of `configs/clup.py` (`get_config(...)`, with any overrides).
      workdir: the run's folder (created if missing).
      strategy: a name of `distribute.STRATEGIES` or a `tf.distribute.Strategy`.
      verbose: Keras's fit verbosity (1: progress bar, 2: one line per epoch, 0: silent).

    Returns:
      {"workdir", "model_path", "initial_epoch" (epochs done before this call), "epochs" (done
      now), "history" (one dict of metrics per finished epoch), "seconds" (of fit)}.

    Raises:
      TrainingError: a bad config value, dataset, workdir or strategy (checked before training).
    """
    check_config(config)
    workdir = os.fspath(workdir)
    files.check_output(workdir, "--workdir", folder=True, error=TrainingError)
    saved = workdir_lib.check_workdir(workdir, config, TrainingError)
    train_clips = split_clips(config, config.data.train_subset, least=2)
    val_clips = split_clips(config, config.data.val_subset, least=2) if (
        config.train.validation_steps > 0) else []
    if isinstance(strategy, str):
        strategy = distribute.make_strategy(strategy, TrainingError)
    replicas = strategy.num_replicas_in_sync
    if config.train.batch_size % replicas:
        raise _fail("train.batch_size", config.train.batch_size,
                    f"must be a multiple of the {replicas} replicas of the strategy")

    is_chief, worker = distribute.worker_role(strategy)
    run_dir = workdir if is_chief else os.path.join(workdir, "workers", worker)
    checkpoint_dir = os.path.join(run_dir, workdir_lib.CHECKPOINT_DIR)
    model_path = os.path.join(workdir, MODEL_FILE)
    state = workdir_lib.read_state(checkpoint_dir, TrainingError)
    done = int(state["epoch"]) if state else 0
    finished = done >= config.train.epochs and os.path.isfile(model_path)
    if not finished:  # built before anything is written: the constructor checks its arguments
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            model = build_model(config)
            model.compile(optimizer=make_optimizer(config), jit_compile=config.train.jit_compile)
        existing = len(state["checkpoints"]) if state else 0
        files.check_output(run_dir, "--workdir", folder=True, error=TrainingError,
                           needed_bytes=workdir_lib.needed_bytes(
                               model, config.train.epochs - done, config.train.keep_checkpoints,
                               existing))
    created = not os.path.exists(run_dir)
    try:
        os.makedirs(run_dir, exist_ok=True)
        workdir_lib.remove_temporaries(run_dir)
        if is_chief and saved != workdir_lib.config_to_dict(config):
            files.write_json(os.path.join(workdir, CONFIG_FILE), workdir_lib.config_to_dict(config))
        if finished:
            logging.info("%s: all %d epochs done and %s written; nothing to do", workdir, done,
                         MODEL_FILE)
            return {"workdir": workdir, "model_path": model_path, "initial_epoch": done,
                    "epochs": done, "history": state["history"], "seconds": 0.0}
        return _fit(model, config, run_dir, model_path, train_clips, val_clips, done, is_chief,
                    replicas, verbose)
    except BaseException as error:
        if saved is None:  # this call started the run: leave no config.json or logs/ behind
            workdir_lib.discard_unstarted(run_dir, remove_folder=created)
        if isinstance(error, tf.errors.OpError):
            raise TrainingError(_stopped(error)) from None
        raise


def _fit(model, config, run_dir, model_path, train_clips, val_clips, done, is_chief, replicas,
         verbose) -> dict:
    workdir = os.path.dirname(model_path)
    checkpoint_dir = os.path.join(run_dir, workdir_lib.CHECKPOINT_DIR)
    backup = workdir_lib.EpochCheckpoints(
        checkpoint_dir, keep=config.train.keep_checkpoints,
        history_path=os.path.join(run_dir, workdir_lib.HISTORY_FILE), error=TrainingError)
    callbacks = [
        keras.callbacks.TensorBoard(log_dir=os.path.join(run_dir, workdir_lib.LOG_DIR),
                                    write_graph=False, update_freq="epoch"),
        backup,
    ]
    if int(verbose) == 2 and is_chief:  # Keras prints one line per epoch: add lines within it
        callbacks.append(StepProgress(config.train.steps_per_epoch, config.train.epochs))
    # The stream of a resumed run is reseeded with its first epoch (see the module docstring).
    train_data = training_batches(config, train_clips, seed=config.seed + 1000 * done)
    val_data = validation_batches(config, val_clips) if val_clips else None
    logging.info("training %s (%s) in %s: epochs %d..%d of %d steps, batch %d on %d replica(s)",
                 config.model_kind, config.variant, workdir, done + 1, config.train.epochs,
                 config.train.steps_per_epoch, config.train.batch_size, replicas)
    start = time.monotonic()
    model.fit(train_data, epochs=config.train.epochs, steps_per_epoch=config.train.steps_per_epoch,
              validation_data=val_data, callbacks=callbacks, verbose=verbose, shuffle=False)
    seconds = time.monotonic() - start
    if is_chief:
        files.save_keras(model, model_path)
    return {"workdir": workdir, "model_path": model_path, "initial_epoch": backup.restored_epoch,
            "epochs": len(backup.history), "history": backup.history, "seconds": seconds}


def _stopped(error: tf.errors.OpError) -> str:
    """One line for an error TensorFlow raised while training (e.g. a file the in-graph checks
    of the reader refused): the assertion's own words, without the graph's node names."""
    lines = [line.strip() for line in error.message.splitlines() if line.strip()
             and not line.strip().startswith(("[[", "Detected at node", "<stack", "Graph execution"))]
    assertion = next((line for line in lines if "assertion failed:" in line), None)
    if assertion is not None:
        text = assertion.split("assertion failed:", 1)[1]
        text = re.sub(r"\]\s*\[", " ", text).strip(" []")
    else:
        text = lines[-1] if lines else type(error).__name__
    text = re.sub(r"\s*\[Op:[^\]]*\]", "", text)
    return (f"training stopped: {cli.one_line(text, 300)}; fix it and rerun the same command "
            "(training resumes after the last finished epoch)")


class StepProgress(keras.callbacks.Callback):
    """A line within each epoch every `every_seconds`: the step, the time per step, the epoch's
    ETA and the loss, so that a slow epoch can be told from a hung one (`verbose=2` prints only
    at the end of an epoch). The first step of a run includes building the graph: its line gives
    its time alone, and the rate is taken over the steps after it.

    Args:
      steps_per_epoch, epochs: for "step 5/25" and "epoch 2/8".
      every_seconds: the least time between two lines (the first step always gets one).
      write: where the lines go (default: stdout, flushed).
    """

    def __init__(self, steps_per_epoch: int, epochs: int, every_seconds: float = 20.0,
                 write: Callable[[str], None] | None = None):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.every_seconds = every_seconds
        self.write = write or (lambda line: print(line, flush=True))
        self._epoch = 0
        self._started = False
        self._first_step_end = self._last_line = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = self._last_line = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        now, done = time.monotonic(), batch + 1
        if done == 1:
            self._first_step_end = now
        if done >= self.steps_per_epoch or (done > 1 and now - self._last_line < self.every_seconds):
            return
        self._last_line = now
        loss = (logs or {}).get("loss")
        loss_text = f", loss {float(loss):.4f}" if loss is not None else ""
        where = f"epoch {self._epoch + 1}/{self.epochs}: step {done}/{self.steps_per_epoch}"
        if done == 1 and not self._started:  # its time says nothing about the steps after it
            self._started = True
            self.write(f"{where} took {now - self._epoch_start:.1f} s (with building the graph)"
                       f"{loss_text}")
            return
        rate = now - self._epoch_start if done == 1 else (now - self._first_step_end) / (done - 1)
        self.write(f"{where}, {rate:.2f} s/step, ETA {rate * (self.steps_per_epoch - done):.0f} s"
                   f"{loss_text}")
