"""The pointing objectives against numpy on tiny maps, their symmetries, and the compact encoder."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from localization_data import first_training_batch, write_tiny_root
from roundtrip import assert_round_trip

from keras_binaural.models import pointing
from keras_binaural.models.localization import LocalizationModel
from keras_binaural.models.visual_encoders import CompactCNN, make_visual_encoder

RNG = np.random.default_rng(0)


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _similarity(b=3, k=5, h=2, w=3):
    return RNG.uniform(-1, 1, (b, k, h, w)).astype("float32")


def test_cell_similarity_is_the_cosine():
    visual = RNG.normal(size=(4, 2, 3, 8)).astype("float32")
    audio = RNG.normal(size=(3, 8)).astype("float32")
    got = pointing.cell_similarity(visual, audio).numpy()
    expected = np.einsum("khwc,bc->bkhw", visual / np.linalg.norm(visual, axis=-1, keepdims=True),
                         audio / np.linalg.norm(audio, axis=-1, keepdims=True))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_mil_loss_matches_numpy():
    similarity = _similarity()
    other_clip = np.array([[False, True, False], [True, False, True], [False, True, False]])
    valid = pointing.candidate_mask(tf.constant(other_clip), 5).numpy()
    # Own frame and other clips' frames usable; example 2 is the same clip as example 0.
    np.testing.assert_array_equal(valid[0], [True, True, False, True, True])
    tau = 0.1
    scores = similarity.max(axis=(2, 3)) / tau
    masked = np.where(valid, scores, -1e9)
    a2v = -np.array([_log_softmax(masked[b])[b] for b in range(3)])
    square = masked[:, :3].T
    v2a = -np.array([_log_softmax(square[k])[k] for k in range(3)])
    expected = 0.5 * (a2v.mean() + v2a.mean())
    got = float(pointing.mil_loss(similarity, tf.constant(valid), tau))
    assert got == pytest.approx(expected, rel=1e-5)
    # A map whose own best cell is far above every other candidate's costs almost nothing.
    easy = np.full((3, 5, 2, 3), -0.5, "float32")
    for b in range(3):
        easy[b, b, 1, 2] = 1.0
    assert float(pointing.mil_loss(easy, None, 0.03)) < 1e-6


def test_background_loss_matches_numpy():
    similarity = _similarity()
    e1, e2, sigma, tau = 0.3, 0.1, 0.05, 0.07
    sig = lambda x: 1 / (1 + np.exp(-x))
    positive = sig((similarity - e1) / sigma)
    region = (positive * similarity).sum((2, 3)) / positive.sum((2, 3))
    expected = []
    for b in range(3):
        own = similarity[b, b]
        negative = 1 - sig((own - e2) / sigma)
        background = (negative * own).sum() / negative.sum()
        others = [region[b, k] for k in range(5) if k != b]
        logits = np.array([region[b, b], background, *others]) / tau
        expected.append(-_log_softmax(logits)[0])
    got = float(pointing.background_loss(similarity, None, e1, e2, sigma, tau))
    assert got == pytest.approx(np.mean(expected), rel=1e-4)


def test_a_map_on_the_background_costs_more_than_one_on_the_object():
    # Audio 0's own frame: the object cell (0, 0) vs the background cells.
    on_object = np.full((2, 2, 2, 2), -0.2, "float32")
    on_object[0, 0, 0, 0] = on_object[1, 1, 0, 0] = 0.9
    flat = np.full((2, 2, 2, 2), -0.2, "float32")
    flat[0, 0] = flat[1, 1] = 0.5  # the whole frame matches: no region stands out
    assert float(pointing.background_loss(on_object)) < float(pointing.background_loss(flat))


def test_mosaic_places_the_own_frame_and_targets_its_clip():
    frames = np.stack([np.full((8, 8, 3), v, "float32") for v in (0.0, 0.25, 0.5, 0.75, 1.0)])
    same_clip = np.eye(5, dtype=bool)
    same_clip[0, 2] = same_clip[2, 0] = True  # examples 0 and 2 come from one clip
    mosaics, target = pointing.make_mosaic(tf.constant(frames), tf.constant(same_clip),
                                           tf.constant([0, 3, 1, 2, 0]))
    mosaics, target = mosaics.numpy(), target.numpy()
    assert mosaics.shape == (5, 8, 8, 3)
    # Example 1 sits bottom-right (tile 3); tiles 0, 1, 2 show examples 2, 3, 4.
    tiles = {q: mosaics[1, (q // 2) * 4, (q % 2) * 4, 0] for q in range(4)}
    assert tiles == {0: 0.5, 1: 0.75, 2: 1.0, 3: 0.25}
    np.testing.assert_array_equal(target[1], [0, 0, 0, 1])
    # Example 0 at tile 0; tile 2 shows example 2, the same clip: both are targets.
    np.testing.assert_array_equal(target[0], [1, 0, 1, 0])
    # Odd sizes: a zero row and column keep the frame size.
    odd, _ = pointing.make_mosaic(tf.constant(frames[:, :7, :7]), tf.constant(same_clip),
                                  tf.zeros([5], tf.int32))
    assert odd.shape == (5, 7, 7, 3) and float(tf.reduce_max(odd[:, 6])) == 0.0


def test_tile_of_cells_and_mosaic_loss():
    tiles = pointing.tile_of_cells((4, 4), (128, 128), 32)
    np.testing.assert_array_equal(tiles, [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    # A 160-px frame at stride 32: the cell centred on pixel 79.5 is in the first half.
    np.testing.assert_array_equal(pointing.tile_of_cells((1, 5), (32, 160), 32)[0],
                                  [0, 0, 0, 1, 1])
    attention = RNG.uniform(size=(2, 4, 4)).astype("float32")
    attention /= attention.sum((1, 2), keepdims=True)
    target = np.array([[0, 1, 0, 0], [1, 0, 0, 1]], "float32")
    expected = np.mean([-np.log(attention[b][target[b][tiles] > 0].sum()) for b in range(2)])
    got = float(pointing.mosaic_loss(attention, target, tiles))
    assert got == pytest.approx(expected, rel=1e-5)


def test_band_ild_matches_numpy_and_the_side():
    t = np.arange(10080) / 16000
    tone = np.sin(2 * np.pi * 1000 * t) + 0.5 * np.sin(2 * np.pi * 3000 * t)
    left_louder = np.stack([tone, 0.25 * tone], -1).astype("float32")  # +12 dB on the left
    ild, loud = pointing.band_ild(left_louder[None], num_bands=8)
    ild = ild.numpy()[0]
    # Numpy reference: the same STFT (periodic Hann 512, hop 256, no padding) and bands.
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    starts = range(0, 10080 - 512 + 1, 256)
    power = np.array([[np.abs(np.fft.rfft(window * left_louder[s:s + 512, c])) ** 2
                       for s in starts] for c in range(2)]).sum(1)
    edges = pointing.band_edges_hz(8)
    frequencies = np.arange(257) * 16000 / 512
    for k in range(8):
        band = (frequencies >= edges[k]) & (frequencies < edges[k + 1])
        if power[:, band].sum() < 1e-3:  # an empty band: float32 leakage only
            continue
        expected = 10 * np.log10((power[0, band].sum() + 1e-8) / (power[1, band].sum() + 1e-8))
        assert ild[k] == pytest.approx(np.clip(expected, -20, 20) / 10, abs=1e-3)
    band_1k = np.searchsorted(edges, 1000) - 1
    assert ild[band_1k] == pytest.approx(20 * np.log10(4) / 10, abs=0.01)
    assert float(loud[0]) == 1.0
    swapped, _ = pointing.band_ild(left_louder[None, :, ::-1].copy())
    np.testing.assert_allclose(swapped.numpy()[0], -ild, atol=1e-5)
    assert float(pointing.band_ild(np.zeros([1, 10080, 2], "float32"))[1][0]) == 0.0


def test_column_profile_and_odd_part():
    cells = RNG.uniform(size=(2, 3, 4)).astype("float32")
    np.testing.assert_allclose(pointing.column_profile(cells, 4).numpy(), cells.sum(1), rtol=1e-5)
    two = pointing.column_profile(cells, 2).numpy()
    np.testing.assert_allclose(two, np.stack([cells.sum(1)[:, :2].sum(1),
                                              cells.sum(1)[:, 2:].sum(1)], 1), rtol=1e-5)
    odd = pointing.odd_part(tf.constant(cells.sum(1))).numpy()
    np.testing.assert_allclose(odd, cells.sum(1) - cells.sum(1)[:, ::-1], rtol=1e-5)


def test_cue_objective_is_flip_equivariant():
    """Mirrored frame and swapped ears: the mirrored profile, the opposite ILD, the same loss."""
    objective = pointing.BinauralCueObjective(cue_bins=4, cue_bands=8)
    objective.build(None)
    objective.kernel.assign(RNG.normal(size=(4, 8)).astype("float32"))
    cell_map = RNG.uniform(size=(2, 3, 8)).astype("float32")
    mirrored_map = cell_map[:, :, ::-1].copy()
    predicted = objective.predict_ild(cell_map).numpy()
    np.testing.assert_allclose(objective.predict_ild(mirrored_map).numpy(), -predicted,
                               atol=1e-5)
    symmetric = (cell_map + mirrored_map) / 2
    np.testing.assert_allclose(objective.predict_ild(symmetric).numpy(), 0.0, atol=1e-5)

    binaural = RNG.normal(size=(2, 10080, 2)).astype("float32") * [1.0, 0.3]
    ild, _ = pointing.band_ild(binaural)
    swapped_ild, _ = pointing.band_ild(binaural[:, :, ::-1].copy())
    loss = np.mean((predicted - ild.numpy()) ** 2)
    mirrored_loss = np.mean((objective.predict_ild(mirrored_map).numpy()
                             - swapped_ild.numpy()) ** 2)
    assert mirrored_loss == pytest.approx(loss, rel=1e-4)


def test_response_objective_learns_each_columns_response_and_scores_the_map():
    """A source on the left: D = 0.5 M; mirrored (ears swapped): D = -0.5 M. After a few
    training batches R_0 = 0.5 and R_3 = -0.5, a map on the right column explains D exactly,
    and one on the wrong side costs (2 x 0.5)^2 / 0.25 = 4 times mono-mono's 0.25."""
    objective = pointing.ResponseObjective(response_columns=4)
    objective.build(None)
    mono = RNG.normal(size=(2, 4000)).astype("float32")
    left = np.stack([mono * 1.5, mono * 0.5], -1)  # m = mono, d = 0.5 mono
    binaural = np.concatenate([left, left[..., ::-1]])
    mass = np.zeros((4, 4), "float32")
    mass[:2, 0] = mass[2:, 3] = 1.0
    for _ in range(3):
        objective.response_loss(mass, binaural, training=True)
    response = objective.responses.response().numpy()
    np.testing.assert_allclose(response[0, 20:, 0], 0.5, atol=2e-3)  # the floor shrinks it a bit
    np.testing.assert_allclose(response[3, 20:, 0], -0.5, atol=2e-3)
    np.testing.assert_allclose(response[[1, 2]], 0.0, atol=1e-6)
    assert float(objective.response_loss(mass, binaural)) == pytest.approx(0.0, abs=1e-4)
    flat = np.full((4, 4), 0.25, "float32")
    assert float(objective.response_loss(flat, binaural)) == pytest.approx(0.25, rel=1e-2)
    wrong = mass[:, ::-1].copy()
    assert float(objective.response_loss(wrong, binaural)) == pytest.approx(4 * 0.25, rel=1e-2)
    # Chunk by chunk: the right map explains its chunk, the flat one a quarter, the wrong side 4 x.
    errors = objective.response_errors(np.stack([mass[0], flat[1], wrong[2], mass[3]]), binaural)
    np.testing.assert_allclose(errors, [0.0, 0.25, 1.0, 0.0], atol=1e-2)


def test_flip_loss_matches_numpy():
    cell_map = RNG.uniform(size=(2, 2, 4)).astype("float32")
    assert float(pointing.flip_loss(cell_map, cell_map[:, :, ::-1].copy())) == pytest.approx(0.0)
    other = RNG.uniform(size=(2, 2, 4)).astype("float32")
    expected = np.mean(np.abs(other.sum(1) - cell_map.sum(1)[:, ::-1]).sum(1))
    assert float(pointing.flip_loss(cell_map, other)) == pytest.approx(expected, rel=1e-5)


def test_erase_attended_matches_numpy():
    frames = RNG.uniform(size=(2, 6, 5, 3)).astype("float32")  # 3 x 3 cells of stride 2, cropped
    attention = RNG.uniform(size=(2, 3, 3)).astype("float32")
    attention /= attention.sum(axis=(1, 2), keepdims=True)
    got = pointing.erase_attended(frames, attention, 4.0, 2).numpy()
    mask = np.minimum(1.0, 4.0 * attention).repeat(2, axis=1).repeat(2, axis=2)[:, :6, :5, None]
    median = np.stack([np.sort(f.reshape(-1, 3), axis=0)[15] for f in frames])  # 30 pixels
    expected = frames * (1 - mask) + median[:, None, None, :] * mask
    np.testing.assert_allclose(got, expected, atol=1e-6)
    # A map on one cell erases that cell's pixels with the background colour, and nothing else.
    scene = np.full((1, 8, 8, 3), 0.5, "float32")
    scene[0, 2:4, 4:6] = [1.0, 0.0, 0.0]
    one_cell = np.zeros((1, 4, 4), "float32")
    one_cell[0, 1, 2] = 1.0
    np.testing.assert_allclose(pointing.erase_attended(scene, one_cell, 4.0, 2).numpy(), 0.5)
    # A spread map erases a quarter of each of its 16 cells: 4 cells' worth, as `cells` bounds it.
    spread = np.full((1, 4, 4), 1 / 16, "float32")
    np.testing.assert_allclose(pointing.erase_attended(scene, spread, 4.0, 2).numpy()[0, 2, 4],
                               0.75 * scene[0, 2, 4] + 0.25 * 0.5)


def test_erasure_loss_matches_numpy_and_rewards_erasing_the_match():
    tau = 0.1
    similarity = RNG.uniform(-1, 1, (3, 2, 4)).astype("float32")
    erased = RNG.uniform(-1, 1, (3, 2, 4)).astype("float32")

    def best(s):
        top = s.max(axis=(1, 2), keepdims=True)
        return tau * (np.log(np.exp((s - top) / tau).sum(axis=(1, 2))) + top[:, 0, 0] / tau)

    expected = np.mean(np.log1p(np.exp((best(erased) - best(similarity)) / tau)))
    got = float(pointing.erasure_loss(similarity, erased, tau))
    assert got == pytest.approx(expected, rel=1e-5)
    # Erasing the cell that matched (the match gone) costs less than erasing a cell beside it.
    kept = np.full((1, 2, 4), -0.2, "float32")
    kept[0, 1, 2] = 0.9
    gone = np.full((1, 2, 4), -0.2, "float32")
    assert float(pointing.erasure_loss(kept, gone, tau)) < 1e-3
    assert float(pointing.erasure_loss(kept, kept, tau)) == pytest.approx(np.log(2), rel=1e-5)


def test_compact_encoder_shapes_stride_and_round_trip(tmp_path):
    encoder = CompactCNN(width=8, stride=8)
    frames = RNG.uniform(size=(2, 64, 40, 3)).astype("float32")
    out = assert_round_trip(encoder, frames, tmp_path)
    assert out.shape == (2, 8, 5, 512) and encoder.output_stride == 8
    assert make_visual_encoder("resnet18").output_stride == 32
    with pytest.raises(ValueError, match="power-of-two stride"):
        CompactCNN(stride=6)
    with pytest.raises(ValueError, match="visual encoder"):
        make_visual_encoder("vgg")


def test_erasure_compares_frames_normalised_alike(tmp_path):
    # Normalised by statistics of their own batch, erased frames could be told apart by those
    # statistics alone. Erasing nothing (erase_cells = 0) must leave the term at softplus(0) in
    # training as at test time: the erased and the kept frames go through BatchNorm alike.
    write_tiny_root(tmp_path, num_clips=4)
    batch = first_training_batch(tmp_path, 64)
    model = LocalizationModel(visual_encoder="compact", visual_width=8,
                              audio_width_multiplier=0.0625, lambda_erase=1.0, lambda_flip=1.0,
                              erase_cells=0.0, seed=0)
    for training in (True, False):
        loss = float(model.compute_losses(batch, training=training)["erasure_loss"])
        assert loss == pytest.approx(np.log(2.0), abs=1e-5)


def test_localizer_with_every_pointing_objective_trains_and_round_trips(tmp_path):
    root = tmp_path / "root"
    write_tiny_root(root, num_clips=4)
    batch = first_training_batch(root, 64)
    keras.utils.set_random_seed(0)
    model = LocalizationModel(
        visual_encoder="compact", visual_width=8, audio_width_multiplier=0.0625, lambda_mil=1.0,
        lambda_background=1.0, lambda_mosaic=1.0, lambda_cue=1.0, lambda_response=1.0,
        lambda_flip=1.0, lambda_erase=1.0, seed=0)
    results = model.compute_losses(batch, training=True)
    for term in ("mil_loss", "background_loss", "mosaic_loss", "cue_loss", "response_loss",
                 "flip_loss", "erasure_loss"):
        assert np.isfinite(float(results[term])) and term in model.term_trackers
    expected = sum(float(results[name]) for name in (
        "sce_loss", "obj_loss", "mil_loss", "background_loss", "mosaic_loss", "cue_loss",
        "response_loss", "flip_loss", "erasure_loss"))
    assert float(results["loss"]) == pytest.approx(expected, rel=1e-5)
    # Eagerly: two steps do not repay tracing the step (test_training trains in graph mode).
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=2, verbose=0)
    outputs = assert_round_trip(model, {"frame": batch["frame"],
                                        "mono_patch": batch["mono_patch"]}, tmp_path)
    assert outputs["attention"].shape == (4, 8, 8) and outputs["map"].shape == (4, 64, 64)
    # The paper's loss set: no pointing term, no extra weights.
    plain = LocalizationModel(visual_encoder="compact", visual_width=8)
    assert not any(name in plain.term_trackers for name in ("mil_loss", "cue_loss"))
