"""The localization evaluation: windows, Table 1 protocol, pointing game, correlation, plots."""

import numpy as np
import pytest
import tensorflow as tf
from localization_data import COLOURS, TONES_HZ, write_tiny_root
from PIL import Image

from keras_binaural.audio import frontend
from keras_binaural.data import fairplay
from keras_binaural.evaluation import localization as le
from keras_binaural.evaluation import plots
from keras_binaural.models.localization import LocalizationModel

SIZE = 64


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_root")
    write_tiny_root(path, num_clips=4, test_ids=0)
    return path


class OracleModel:
    """Knows the tiny root's rule: tone k <-> colour k. Features are one-hot class vectors.

    encode_frames: per 32 x 32 cell, which of the 4 class colours it shows -> `[n, 2, 2, 4]`;
    audio: the class whose tone is loudest. pair_distance = ||presence(frame) - onehot(audio)||.
    `point_at_other_side` moves the map's peak to the mirrored cell (a wrong localizer).
    """

    output_stride = 32  # its "cells" are 32 x 32 pixels

    def __init__(self, point_at_other_side=False):
        self.point_at_other_side = point_at_other_side
        self.bands = [int(np.argmax(frontend.log_mel_spectrogram(
            0.3 * np.sin(2 * np.pi * f * np.arange(16000) / 16000).astype("float32"))
            .numpy().mean(0))) for f in TONES_HZ]

    def encode_frames(self, frames, training=False):
        frames = np.asarray(frames)
        n, h, w = frames.shape[:3]
        cells = frames.reshape(n, h // 32, 32, w // 32, 32, 3)
        colours = np.array(COLOURS, np.float32) / 255.0
        match = np.abs(cells[..., None, :] - colours).max(-1) < 0.02  # [n, 2, 32, 2, 32, 4]
        return tf.constant(match.any((2, 4)).astype("float32"))

    def encode_audio(self, patches, training=False):
        return tf.convert_to_tensor(patches)

    def audio_feature(self, embedding):
        band = np.asarray(embedding).mean(1).argmax(-1)
        return tf.one_hot([self.bands.index(int(b)) for b in band], 4)

    def pair_distance(self, visual, audio):
        presence = tf.reduce_max(visual, axis=(1, 2))
        return tf.norm(presence - audio, axis=-1)

    def cell_map(self, visual, audio):
        cells = tf.einsum("bhwc,bc->bhw", visual, audio)
        return cells[:, :, ::-1] if self.point_at_other_side else cells


def test_windows_follow_the_protocol():
    starts = le.window_starts(160000)
    assert len(starts) == 94 and starts[1] == 1600 and starts[-1] + 10080 <= 160000
    np.testing.assert_array_equal(le.window_starts(5000), [0])
    frames = le.window_frames(starts[:3], 100)
    np.testing.assert_array_equal(frames, [int(fairplay.frame_index(s / 16000, s / 16000 + 0.63,
                                                                    100)) for s in starts[:3]])
    mono = np.random.default_rng(0).uniform(-0.5, 0.5, 32000).astype("float32")
    starts = le.window_starts(len(mono))
    patches = le.window_patches(mono, starts)
    for index in (0, len(starts) - 1):
        expected = frontend.centred_patch(mono, int(starts[index]) + 5040).numpy()
        np.testing.assert_allclose(patches[index], expected, atol=1e-5)


def test_crop_to_original_and_point_outcomes():
    # Original 64 x 64 -> resized to 80 x 80 -> central 64 x 64 crop (offset 8).
    xy = le.crop_to_original([[0, 0], [63, 10]], (64, 64), (80, 80), (64, 64))
    np.testing.assert_allclose(xy, [[8.5 * 0.8, 8.5 * 0.8], [18.5 * 0.8, 71.5 * 0.8]])
    metadata = {"objects": [
        {"sounding": True, "boxes_xyxy": [[0, 0, 10, 10], [20, 20, 30, 30]]},
        {"sounding": False, "boxes_xyxy": [[5, 5, 15, 15], [5, 5, 15, 15]]}]}
    points, frames = [[7, 7], [12, 12], [40, 40], [25, 25], [8, 40]], [1, 1, 1, 2, 1]
    outcomes = le.point_outcomes(points, frames, metadata)
    assert outcomes.tolist() == ["hit", "silent", "background", "hit", "background"]
    assert le.column_hits(points, frames, metadata).tolist() == [True, False, False, True, True]


def test_map_peaks_at_cell_centres_and_refined():
    cells = np.zeros([2, 2, 3])
    cells[0, 1, 0] = 1.0  # an edge cell: its centre, not the frame's edge
    cells[1, 0, 1], cells[1, 0, 2] = 0.5, 0.5  # split between two cells (first one wins)
    np.testing.assert_allclose(le.map_peaks(cells, (64, 96)), [[47.5, 15.5], [15.5, 47.5]])
    np.testing.assert_allclose(le.map_peaks(cells, (64, 96), refine=True)[1], [15.5, 63.5])
    np.testing.assert_allclose(le.map_peaks(cells, (40, 80))[0], [39.0, 15.5])  # clipped


def test_clip_interval_against_redrawing_clips_and_its_coverage():
    rng = np.random.default_rng(1)
    counts = rng.integers(20, 40, 30)
    totals = rng.binomial(counts, rng.uniform(0.6, 1.0, 30)).astype(float)
    # Against redrawing whole clips and pooling their windows, by a plain loop (other draws).
    means = []
    for _ in range(4000):
        pick = rng.integers(0, 30, 30)
        means.append(totals[pick].sum() / counts[pick].sum())
    np.testing.assert_allclose(le.clip_interval(totals, counts, draws=4000),
                               np.percentile(means, [2.5, 97.5]), atol=0.006)
    assert le.clip_interval(np.full(5, 3.0), np.full(5, 4)) == (0.75, 0.75)
    # Windows of a clip share its rate (clustered): the interval covers the true mean about 95 %
    # of the time, where one that took the windows as independent would cover far less often.
    covered = naive_covered = 0
    for trial in range(200):
        counts = np.full(40, 34)
        totals = rng.binomial(counts, rng.uniform(0.7, 1.0, 40))  # the true mean: 0.85
        low, high = le.clip_interval(totals, counts, draws=500, seed=trial)
        covered += low <= 0.85 <= high
        mean = totals.sum() / counts.sum()
        naive_covered += abs(mean - 0.85) <= 1.96 * np.sqrt(mean * (1 - mean) / counts.sum())
    assert 0.88 <= covered / 200 <= 0.99 and naive_covered / 200 < 0.85
    with pytest.raises(ValueError, match="equal vectors"):
        le.clip_interval([1.0, 2.0], [3])


def test_protocol_with_an_oracle(root):
    clips = fairplay.list_clips(str(root), "test")
    result = le.evaluate_localization(OracleModel(), clips, (SIZE, SIZE), (SIZE, SIZE),
                                      negative_pool_size=16)
    windows = 4 * len(le.window_starts(32000))
    assert result["num_windows"] == windows == 56 and result["num_clips"] == 4
    # d+ = 0 and d- = sqrt(2) for every window: D+ = 1 / (1 + e^sqrt(2)), distance sqrt(2) D+.
    scaled_positive = 1.0 / (1.0 + np.exp(np.sqrt(2.0)))
    assert result["accuracy"] == 1.0 and result["accuracy_interval"] == [1.0, 1.0]
    assert result["distance"] == pytest.approx(np.sqrt(2.0) * scaled_positive, abs=1e-5)
    np.testing.assert_allclose(result["distance_interval"], result["distance"], atol=1e-5)
    assert result["counts"]["true_negatives"] == windows
    assert result["ambiguous_fraction"] == 0.0
    assert result["pointing_window_hit_rate"] == 1.0 and result["pointing_clip_hit_rate"] == 1.0
    assert result["pointing_column_hit_rate"] == 1.0

    # The same with the frame's own audio against another clip's audio.
    swapped = le.evaluate_localization(OracleModel(), clips, (SIZE, SIZE), (SIZE, SIZE),
                                       negative_pool_size=16, negatives="audio",
                                       pointing_game=False)
    assert swapped["negatives"] == "audio" and swapped["num_windows"] == windows
    assert swapped["accuracy"] == 1.0
    assert swapped["distance"] == pytest.approx(np.sqrt(2.0) * scaled_positive, abs=1e-5)
    assert "pointing_window_hit_rate" not in swapped
    with pytest.raises(ValueError, match="negatives"):
        le.evaluate_localization(OracleModel(), clips, (SIZE, SIZE), (SIZE, SIZE),
                                 negatives="both")

    wrong = le.evaluate_localization(OracleModel(point_at_other_side=True), clips, (SIZE, SIZE),
                                     (SIZE, SIZE), negative_pool_size=16)
    # Odd clips have a silent distractor where the wrong peak lands; even clips have nothing.
    assert wrong["pointing_window_hit_rate"] == 0.0
    assert wrong["pointing_silent_rate"] == pytest.approx(0.5)
    assert wrong["pointing_background_rate"] == pytest.approx(0.5)
    assert wrong["pointing_column_hit_rate"] == 0.0


def test_correlation_matrix_values_and_plot(root, tmp_path):
    clips = fairplay.list_clips(str(root), "test")
    inputs = le.centre_windows(clips, (SIZE, SIZE), (SIZE, SIZE), num_clips=4)
    assert inputs["mono_patch"].shape == (4, 96, 64) and inputs["frame"].shape == (4, 64, 64, 3)
    matrix = le.correlation_matrix(OracleModel(), inputs["mono_patch"], inputs["frame"])
    np.testing.assert_allclose(matrix["distance"], np.sqrt(2.0) * (1 - np.eye(4)), atol=1e-6)
    scaled_positive = 1.0 / (1.0 + np.exp(np.sqrt(2.0)))
    expected = np.where(np.eye(4, dtype=bool), 1 - scaled_positive, scaled_positive)
    np.testing.assert_allclose(matrix["correlation"], expected, atol=1e-6)
    path = tmp_path / "correlation.png"
    plots.plot_correlation_matrix(matrix["correlation"], path, title="oracle",
                                  labels=inputs["clip_id"])
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_real_model_end_to_end(root, tmp_path):
    model = LocalizationModel(localizer="osa", audio_width_multiplier=0.0625)
    clips = fairplay.list_clips(str(root), "test")
    result = le.evaluate_localization(model, clips, (SIZE, SIZE), (SIZE, SIZE),
                                      negative_pool_size=8)
    assert result["num_windows"] == 56
    assert 0.0 <= result["accuracy"] <= 1.0 and 0.0 <= result["distance"] <= np.sqrt(2.0)
    rates = [result[f"pointing_{k}_rate"] for k in ("window_hit", "silent", "background")]
    assert sum(rates) == pytest.approx(1.0)
    panels = le.localization_panels(model, clips, (SIZE, SIZE), (SIZE, SIZE), num_clips=2,
                                    times_s=(0.5, 1.5))
    assert panels["maps"].shape == (4, SIZE, SIZE) and len(panels["boxes"]) == 4
    path = tmp_path / "maps.png"
    plots.plot_localization_maps(panels["frames"], panels["maps"], path, titles=panels["titles"],
                                 boxes=panels["boxes"], peaks=panels["peaks"], columns=2)
    with Image.open(path) as image:
        assert image.format == "PNG"
    with pytest.raises(ValueError, match="at least two clips"):
        le.evaluate_localization(model, clips[:1], (SIZE, SIZE), (SIZE, SIZE))
