"""What a training run leaves on disk, read back by the other tools.

`tools/train.py` writes `model.keras` and the run's `config.json` into its workdir;
`tools/evaluate.py`, `tools/binauralize.py` and `tools/export.py` load the model and take the
frame preparation (and the dataset) from the config beside it. Each tool raises its own error
type (the `error` argument), with a one-line message naming the flag or file.
"""

from __future__ import annotations

import json
import os

import ml_collections

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


def load_model(path: str | os.PathLike, flag: str = "--model",
               error: type[Exception] = ValueError):
    """Loads a `.keras` model of this package (importing `keras_binaural.models` registers them).

    Raises:
      error: naming `flag=path`: no such file, not a .keras file, or not loadable.
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
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as cause:  # noqa: BLE001 - Keras raises many types for a bad file
        message = " ".join(str(cause).split())[:300] or type(cause).__name__
        raise error(f"{flag}={path}: cannot be loaded as a Keras model ({message})") from None
