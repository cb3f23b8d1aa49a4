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
