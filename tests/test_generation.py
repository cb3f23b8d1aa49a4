"""Whole-clip generation helpers (generation.py): input checks, per-frame patches, windows."""

import numpy as np
import pytest

from keras_binaural import generation
from keras_binaural.audio import frontend
from keras_binaural.generation import GenerationInputError

SIZE = 64


def test_frame_patches_are_centred_on_each_frame():
    rng = np.random.default_rng(0)
    mono = rng.uniform(-0.5, 0.5, (2, 7000)).astype("float32")
    patches = generation.frame_patches(mono, num_frames=5).numpy()
    assert patches.shape == (2, 5, 96, 64)
    # Frame 4 (centre 7200) lies past the audio's end: its patch sees zeros there.
    padded = np.pad(mono, [(0, 0), (0, 8000)])
    for k in (0, 2, 4):
        expected = frontend.centred_patch(padded, int((k + 0.5) * 1600)).numpy()
        np.testing.assert_allclose(patches[:, k], expected, atol=1e-4)


@pytest.mark.parametrize("num_samples", [1, 1600, 8000, 8001, 23_456])
def test_windows_cover_the_clip_and_weights_sum_to_one(num_samples):
    windows = generation.plan_windows(num_samples, window_samples=8000, overlap_samples=1600)
    total = np.zeros(num_samples)
    for (start, stop), weight in zip(windows, generation.crossfade_weights(windows, 1600)):
        assert start % 1600 == 0 and stop - start <= 8000
        total[start:stop] += weight
    np.testing.assert_allclose(total, 1.0, atol=1e-6)
    assert windows[0][0] == 0 and windows[-1][1] == num_samples


def test_bad_window_settings_raise():
    with pytest.raises(ValueError, match="multiple of 1600"):
        generation.plan_windows(10_000, 5000, 0)
    with pytest.raises(ValueError, match="overlap"):
        generation.plan_windows(10_000, 3200, 3200)


def test_bad_inputs_raise_clear_errors():
    mono = np.zeros((1, 16000), "float32")
    frames = np.zeros((1, 10, SIZE, SIZE, 3), "float32")
    check = generation.check_generation_inputs
    with pytest.raises(GenerationInputError, match="mono has 2 channels"):
        check(np.zeros((1, 16000, 2), "float32"), frames)
    with pytest.raises(GenerationInputError, match="empty"):
        check(np.zeros((1, 0), "float32"), frames[:, :1])
    with pytest.raises(GenerationInputError, match="batch axis"):
        check(np.zeros(16000, "float32"), frames)
    nan = mono.copy()
    nan[0, 123] = np.nan
    with pytest.raises(GenerationInputError, match="NaN.*sample 123"):
        check(nan, frames)
    bad_frames = frames.copy()
    bad_frames[0, 3, 5, 5, 1] = np.inf
    with pytest.raises(GenerationInputError, match="frames contain NaN"):
        check(mono, bad_frames)
    with pytest.raises(GenerationInputError, match="inconsistent durations: 13 frames"):
        check(mono, np.zeros((1, 13, SIZE, SIZE, 3), "float32"))
    with pytest.raises(GenerationInputError, match=r"\[0, 1\]"):
        check(mono, frames + 255.0)
    with pytest.raises(GenerationInputError, match="needs frames"):
        check(mono, None)
    with pytest.raises(GenerationInputError, match="batch sizes"):
        check(np.zeros((2, 16000), "float32"), frames)
    # Within one frame of time / 1600 is fine (videos end on a frame boundary or not); one frame
    # stands for the whole clip; uint8 frames are scaled.
    assert check(mono, frames[:, :9])[1].shape[1] == 9
    assert check(mono, np.zeros((1, SIZE, SIZE, 3), "uint8") + 255)[1].max() == 1.0
