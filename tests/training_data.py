"""A tiny synthetic dataset and tiny configs for the training and evaluation tool tests.

`tiny_root` writes (once per test session, under pytest's base temporary folder) 20 synthetic
clips of 1 s with 64 x 64 frames in the FAIR-Play layout with `keras_binaural.data.synthetic`:
splits/split1 has 16 train, 2 val and 2 test clips. `tiny_config` is `configs/clup.py:tiny,...`
pointed at it.
"""

import importlib.util
import pathlib

import ml_collections

from keras_binaural.data import scenes, synthetic

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILE = REPO / "configs" / "clup.py"
TRAIN_TOOL = REPO / "tools" / "train.py"
EVALUATE_TOOL = REPO / "tools" / "evaluate.py"


def config_module():
    """configs/clup.py as a module (configs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("clup_config", CONFIG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_root(tmp_path_factory) -> pathlib.Path:
    """The shared tiny dataset (made on first use; `make_dataset` skips finished clips)."""
    root = tmp_path_factory.getbasetemp() / "tiny_synthetic"
    if not (root / "splits" / "split1" / "test.txt").is_file():
        settings = scenes.SceneSettings(clip_seconds=1.0, frame_size=(64, 64),
                                           max_sources=2, distractors=1)
        synthetic.make_dataset(root, settings, num_clips=20, seed=0)
    return root


def tiny_config(root, variant: str = "tiny,localizer") -> ml_collections.ConfigDict:
    """`configs/clup.py:<variant>` reading `root`."""
    config = config_module().get_config(variant)
    config.data.root = str(root)
    return config
