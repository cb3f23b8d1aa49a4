import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
FAIRPLAY_DEMO = REPO.parent / "shared" / "data" / "fairplay_demo"


@pytest.fixture(scope="session")
def fairplay_demo() -> pathlib.Path:
    """The three real FAIR-Play clips of ../shared/data/fairplay_demo (read in place, never copied)."""
    if not (FAIRPLAY_DEMO / "demo1" / "input_binaural.wav").is_file():
        pytest.skip(f"real FAIR-Play clips not found at {FAIRPLAY_DEMO} (they live in ../shared)")
    return FAIRPLAY_DEMO


@pytest.fixture(scope="session")
def upmixer_root(tmp_path_factory) -> str:
    """4 tiny clips of 2 s with 64 x 64 frames (`localization_data.write_tiny_root`), shared by
    the upmixer and CLUP tests."""
    from localization_data import UPMIXER_FRAME_SIZE, write_tiny_root

    root = tmp_path_factory.mktemp("upmixer_root")
    write_tiny_root(root, num_clips=4, seconds=2.0, size=UPMIXER_FRAME_SIZE)
    return str(root)


@pytest.fixture(scope="session")
def upmixer_batch(upmixer_root) -> dict:
    """One batch of 4 training chunks of `upmixer_root` (seed 0)."""
    from localization_data import UPMIXER_FRAME_SIZE, first_training_batch

    return first_training_batch(upmixer_root, UPMIXER_FRAME_SIZE)
