import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
FAIRPLAY_DEMO = REPO.parent / "shared" / "data" / "fairplay_demo"


# The files whose tests take longest run first, so that `make test`'s two workers (one file
# each at a time) do not end on one long file (`pytest --durations`).
SLOW_FILES = ("test_training.py", "test_serving.py", "test_clup.py", "test_spatial_prior.py",
              "test_localization.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name not in SLOW_FILES)  # stable: otherwise as found


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
