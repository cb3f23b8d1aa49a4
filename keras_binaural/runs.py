"""What a training run leaves on disk, read back by the other tools: the one place models load.

`tools/train.py` writes `model.keras` and the run's `config.json` into its workdir;
`tools/evaluate.py`, `tools/binauralize.py` and `tools/export.py` find the model
(`resolve_model_path`), load it (`load_model`) and take the frame preparation
(`frame_geometry`, `FrameGeometry`) and the dataset from the config beside it (`run_config`).
Each tool raises its own error type (the `error` argument), with a one-line message naming the
flag or file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile

import ml_collections
import numpy as np

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
# Frame preparation of a model without a config.json: the demo config's.
DEFAULT_RESIZE_HW = (136, 136)
DEFAULT_CROP_HW = (128, 128)


def run_config(model_path: str | os.PathLike,
               error: type[Exception] = ValueError) -> ml_collections.ConfigDict | None:
    """The `config.json` beside a model file (its training run's config), or None if there is none.

    Raises:
      error: the file exists but cannot be read as JSON.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(model_path)), CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as stream:
            return ml_collections.ConfigDict(json.load(stream))
    except (OSError, ValueError) as cause:
        raise error(f"{path}: unreadable run config ({cause})") from None


def run_sampler(model_path: str | os.PathLike, error: type[Exception] = ValueError) -> str:
    """The sampler the model's training run evaluates with (`eval.sampler` of its config.json),
    or "fast" without one."""
    config = run_config(model_path, error)
    return str(config.get("eval", {}).get("sampler", "fast")) if config else "fast"


def resolve_model_path(path: str | os.PathLike, flag: str = "--model",
                       error: type[Exception] = ValueError) -> str:
    """A `.keras` file, or the `model.keras` of a workdir.

    Raises:
      error: naming `flag`, when neither exists.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        candidate = os.path.join(path, MODEL_FILE)
        if not os.path.isfile(candidate):
            raise error(f"{flag}={path}: the folder holds no {MODEL_FILE} (train one with "
                        "tools/train.py, or give a .keras file)")
        return candidate
    if not os.path.isfile(path):
        raise error(f"{flag}={path}: no such file (a .keras model or a tools/train.py workdir)")
    if not path.endswith(".keras"):
        raise error(f"{flag}={path}: not a .keras file (a .keras model or a workdir)")
    return path


def load_model(path: str | os.PathLike, flag: str = "--model",
               error: type[Exception] = ValueError, generates: bool = False):
    """Loads a `.keras` model of this package (importing `keras_binaural.models` registers them).

    Args:
      path: the .keras file.
      flag: the flag named in error messages.
      error: the error type raised.
      generates: the model must generate binaural audio (a `CLUP` or an `Upmixer`).

    Raises:
      error: naming `flag=path`: no such file, not a .keras file, not loadable, or (with
        `generates`) a model that cannot generate.
    """
    import keras

    import keras_binaural.models  # noqa: F401 (registers every model and layer class)

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise error(f"{flag}={path}: no such file (want a trained model, a .keras file such as "
                    f"runs/demo/{MODEL_FILE})")
    if not path.endswith(".keras"):
        raise error(f"{flag}={path}: not a .keras file (want a model saved with "
                    "model.save('name.keras'))")
    if not zipfile.is_zipfile(path):
        raise error(f"{flag}={path}: not a Keras model file (a .keras file is a zip archive; this "
                    "one is damaged or truncated): save or copy the model again")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as cause:  # noqa: BLE001 - Keras raises many types for a bad file
        message = " ".join(str(cause).split())[:300] or type(cause).__name__
        raise error(f"{flag}={path}: cannot be loaded as a Keras model ({message})") from None
    if generates and (not callable(getattr(model, "generate", None))
                      or not hasattr(model, "localizer")):
        raise error(
            f"{flag}={path}: a {type(model).__name__} cannot generate binaural audio (want a "
            "CLUP model or an upmixer, e.g. trained with configs/clup.py)")
    return model


# === Frames as the model saw them in training ===


@dataclasses.dataclass(frozen=True)
class FrameGeometry:
    """How frames are prepared for a model, as in its training and evaluation: resized to
    `resize_hw` (height, width; the aspect ratio is not kept), then cropped to `crop_hw` at the
    centre (`keras_binaural.data.fairplay.prepare_frame` without augmentation)."""

    resize_hw: tuple[int, int] = DEFAULT_RESIZE_HW
    crop_hw: tuple[int, int] = DEFAULT_CROP_HW

    @property
    def frame_size_wh(self) -> tuple[int, int]:
        """The model's frame size as (width, height)."""
        return self.crop_hw[1], self.crop_hw[0]

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """`[h, w, 3]` uint8 RGB of any size -> `[crop_h, crop_w, 3]` float32 in [0, 1]."""
        import tensorflow as tf

        from keras_binaural.data.fairplay import prepare_frame

        image = tf.convert_to_tensor(frame, tf.float32) / 255.0
        return prepare_frame(image, None, self.resize_hw, self.crop_hw, augment=False).numpy()

    def uncrop(self, heat: np.ndarray) -> np.ndarray:
        """A map over the crop -> a map over the whole resized frame, which stretched to a
        picture's size lies over that picture. Outside the crop (unseen by the model) it holds
        the map's minimum, so that a drawing of it shows nothing there."""
        top = (self.resize_hw[0] - self.crop_hw[0]) // 2
        left = (self.resize_hw[1] - self.crop_hw[1]) // 2
        canvas = np.full(self.resize_hw, np.min(heat), np.float32)
        canvas[top : top + self.crop_hw[0], left : left + self.crop_hw[1]] = heat
        return canvas


def frame_geometry(model_path: str | os.PathLike,
                   frame_size_wh: tuple[int, int] | None = None,
                   error: type[Exception] = ValueError) -> FrameGeometry:
    """The frame preparation of a model.

    `frame_size_wh` (resize to it, no crop) if given; else its training run's `config.json`
    beside the model file (`data.resize_hw`, `data.crop_hw`); else the demo config's (resize to
    136 x 136, crop 128 x 128).

    Raises:
      error: the run config is unreadable or holds no usable frame sizes.
    """
    if frame_size_wh is not None:
        width, height = frame_size_wh
        return FrameGeometry((height, width), (height, width))
    config = run_config(model_path, error)
    if config is None:
        return FrameGeometry()
    try:
        geometry = FrameGeometry(tuple(int(v) for v in config.data.resize_hw),
                                 tuple(int(v) for v in config.data.crop_hw))
    except (AttributeError, KeyError, TypeError, ValueError) as cause:
        raise error(f"{model_path}: its run config has no usable data.resize_hw / "
                    f"data.crop_hw ({cause!r}); give --frame_size WxH instead") from None
    if any(c > r for c, r in zip(geometry.crop_hw, geometry.resize_hw)):
        raise error(f"{model_path}: data.crop_hw {geometry.crop_hw} is larger than "
                    f"data.resize_hw {geometry.resize_hw}; give --frame_size WxH")
    return geometry
