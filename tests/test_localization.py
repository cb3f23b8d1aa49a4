"""Localization heads, losses, metrics and LocalizationModel: values, round trips, fit, errors."""

import keras
import numpy as np
import pytest
from localization_data import write_tiny_root
from localization_reference import (
    np_dense,
    np_osa,
    np_pair_loss,
    np_ssm_distance,
    to_numpy,
)
from roundtrip import assert_round_trip

from keras_binaural.data import fairplay
from keras_binaural.models import localization as loc

RNG = np.random.default_rng(0)
SIZE = 64  # frames 64 x 64 -> 2 x 2 visual cells


# === fixtures ===


@pytest.fixture(scope="module")
def osa_model():
    return loc.LocalizationModel(localizer="osa", use_ssm=True, audio_width_multiplier=0.0625)


@pytest.fixture(scope="module")
def baseline_model():
    return loc.LocalizationModel(localizer="baseline", audio_width_multiplier=0.0625)


def _batch(batch=4, size=SIZE, clip_ids=(b"a", b"a", b"b", b"c")):
    return {
        "frame": RNG.uniform(size=(batch, size, size, 3)).astype("float32"),
        "negative_frame": RNG.uniform(size=(batch, size, size, 3)).astype("float32"),
        "mono_patch": RNG.normal(size=(batch, 96, 64)).astype("float32"),
        "binaural_patch": RNG.normal(size=(batch, 2, 96, 64)).astype("float32"),
        "clip_id": np.array(clip_ids[:batch]),
    }


# === model ===


def test_model_round_trip_and_outputs(osa_model, baseline_model, tmp_path):
    data = _batch()
    inputs = {"frame": data["frame"], "mono_patch": data["mono_patch"]}
    for model in (osa_model, baseline_model):
        out = assert_round_trip(model, inputs, tmp_path)
        assert out["map"].shape == (4, SIZE, SIZE) and out["attention"].shape == (4, 2, 2)
        assert out["object_feature"].shape == out["scene_feature"].shape == (4, 512)
    # OSA's map is A upsampled: the largest cell's 32 x 32 square holds the peak.
    maps = to_numpy(osa_model.localize(data["frame"], data["mono_patch"]))
    attention = to_numpy(osa_model(inputs)["attention"])
    np.testing.assert_allclose(attention.sum((1, 2)), 1.0, atol=1e-5)
    for one_map, cells in zip(maps, attention):
        row, column = np.unravel_index(one_map.argmax(), one_map.shape)
        assert (row // 32, column // 32) == np.unravel_index(cells.argmax(), cells.shape)
    config = osa_model.get_config()
    assert config["localizer"] == "osa" and config["use_ssm"] and config["lambda_obj"] == 1.0


def _distance(x, y):
    return np.linalg.norm(x - y, axis=-1)


def _np_osa_terms(model, data):
    """l_sce_loc and l_obj_loc in numpy, for both `negatives` settings, and the metric's D+."""
    visual = to_numpy(model.encode_frames(data["frame"]))
    negative = to_numpy(model.encode_frames(data["negative_frame"]))
    embedding = to_numpy(model.encode_audio(data["mono_patch"]))
    candidates = np.concatenate([visual, negative])  # positives 0..3, own negatives 4..7
    batch = len(visual)
    ids = data["clip_id"]
    d = {"scene": np.zeros([batch, 2 * batch]), "object": np.zeros([batch, 2 * batch])}
    for k in range(2 * batch):
        a, s, o, _ = np_osa(model.head, embedding, np.repeat(candidates[k : k + 1], batch, 0))
        d["scene"][:, k], d["object"][:, k] = _distance(a, s), _distance(a, o)
    terms = {}
    for mode in ("pair", "batch"):
        mask = np.zeros([batch, 2 * batch])
        mask[np.arange(batch), batch + np.arange(batch)] = 1.0
        if mode == "batch":
            mask[:, :batch] = ids[:, None] != ids[None, :]
        for name in ("scene", "object"):
            positive = np.diag(d[name])
            losses = [np.mean([np_pair_loss(positive[i : i + 1], d[name][i, k : k + 1])[0]
                               for k in np.flatnonzero(mask[i])]) for i in range(batch)]
            terms[mode, name] = np.mean(losses)
    d_sum = d["scene"] + d["object"]
    scaled_positive = 1.0 / (1.0 + np.exp(np.diag(d_sum[:, batch:]) - np.diag(d_sum)))
    return terms, scaled_positive, visual, negative


def test_osa_losses_match_numpy(osa_model):
    data = _batch()  # clip ids a, a, b, c
    terms, scaled_positive, visual, negative = _np_osa_terms(osa_model, data)
    results = osa_model.compute_losses(data, training=False)  # negatives="batch" (default)
    assert float(results["sce_loss"]) == pytest.approx(terms["batch", "scene"], abs=1e-4)
    assert float(results["obj_loss"]) == pytest.approx(terms["batch", "object"], abs=1e-4)
    # The metrics score the own negative frame: D+ of ||a - s|| + ||a - o|| (the default).
    np.testing.assert_allclose(to_numpy(results["scaled_positive"]), scaled_positive, atol=1e-4)

    binaural = to_numpy(osa_model.encode_audio(data["binaural_patch"].reshape(-1, 96, 64)))
    binaural = binaural.reshape(4, 256)
    swapped = np.concatenate([binaural[:, 128:], binaural[:, :128]], 1)
    head = osa_model.ssm_head
    d_positive = np_ssm_distance(head, binaural, visual)
    ssm = 0.5 * (np_pair_loss(d_positive, np_ssm_distance(head, binaural, negative))
                 + np_pair_loss(d_positive, np_ssm_distance(head, swapped, visual))).mean()
    assert float(results["ssm_loss"]) == pytest.approx(ssm, abs=1e-4)
    expected = terms["batch", "scene"] + terms["batch", "object"] + ssm
    assert float(results["loss"]) == pytest.approx(expected, abs=1e-4)

    osa_model.negatives = "pair"  # the same model with one negative frame per example
    try:
        results = osa_model.compute_losses(data, training=False)
    finally:
        osa_model.negatives = "batch"
    assert float(results["sce_loss"]) == pytest.approx(terms["pair", "scene"], abs=1e-4)
    assert float(results["obj_loss"]) == pytest.approx(terms["pair", "object"], abs=1e-4)


def test_baseline_loss_matches_numpy(baseline_model):
    data = _batch()  # clip ids a, a, b, c
    visual = to_numpy(baseline_model.visual_encoder(data["frame"], training=True))
    embedding = to_numpy(baseline_model.audio_encoder(data["mono_patch"], training=True))
    head = baseline_model.head
    f_a = np_dense(head.audio_fc2, np_dense(head.audio_fc1, embedding, True))
    f_v = visual.mean((1, 2))
    gated = f_v / (1.0 + np.exp(-(f_v * f_a).sum(-1, keepdims=True)))  # supp. Eq. 1
    d = _distance(gated[:, None], f_a[None, :])  # d[i, j] = ||f'_v,i - f_a,j||
    ids = data["clip_id"]
    batch_loss = np.mean([np.mean(np_pair_loss(np.full(4, d[i, i]), d[i])[ids != ids[i]])
                          for i in range(4)])
    # "pair": the nearest other clip's audio: examples 2, 2, 3, 0.
    pair_loss = np_pair_loss(np.diag(d), d[np.arange(4), [2, 2, 3, 0]]).mean()
    results = baseline_model.compute_losses(data, training=True)
    # float32 features of norm ~100 after an untrained ResNet: compare relatively.
    assert float(results["baseline_loss"]) == pytest.approx(batch_loss, rel=1e-3, abs=1e-4)
    baseline_model.negatives = "pair"
    try:
        results = baseline_model.compute_losses(data, training=True)
    finally:
        baseline_model.negatives = "batch"
    assert float(results["baseline_loss"]) == pytest.approx(pair_loss, rel=1e-3, abs=1e-4)


def test_auto_distance_leaves_out_a_switched_off_term():
    model = loc.LocalizationModel(lambda_sce=0.0, audio_width_multiplier=0.0625)
    visual = RNG.uniform(size=(2, 2, 2, 512)).astype("float32")
    audio = model.audio_feature(RNG.normal(size=(2, 128)).astype("float32"))
    d_scene, d_object = (to_numpy(v) for v in model.head.pair_distances(audio, visual))
    np.testing.assert_allclose(to_numpy(model.pair_distance(visual, audio)), d_object, atol=1e-5)
    summed = loc.LocalizationModel.from_config({**model.get_config(), "distance_feature": "sum"})
    summed.set_weights(model.get_weights())
    np.testing.assert_allclose(to_numpy(summed.pair_distance(visual, audio)), d_scene + d_object,
                               atol=1e-4)


def test_frozen_vggish_encoder_in_the_model():
    model = loc.LocalizationModel(audio_encoder="vggish", audio_encoder_trainable=False)
    assert model.audio_encoder.count_params() == 72_141_184
    assert not model.audio_encoder.trainable_weights
    results = model.compute_losses(_batch(), training=True)
    assert np.isfinite(float(results["loss"]))
    config = model.get_config()  # one VGGish per module: no clone built from it
    assert config["audio_encoder"] == "vggish" and config["audio_encoder_trainable"] is False


def test_bad_inputs_raise_clear_errors(osa_model):
    data = _batch()
    with pytest.raises(ValueError, match=r"\[batch, height, width, 3\]"):
        osa_model({"frame": data["frame"][0], "mono_patch": data["mono_patch"]})
    with pytest.raises(ValueError, match=r"\[batch, height, width, 3\].*uint8"):
        osa_model.localize((data["frame"] * 255).astype("uint8"), data["mono_patch"])
    with pytest.raises(ValueError, match=r"\[batch, 96, 64\]"):
        osa_model.localize(data["frame"], data["mono_patch"][:, :50])
    with pytest.raises(ValueError, match="'frame'"):
        osa_model(data["frame"])
    with pytest.raises(ValueError, match="negative_frame"):
        osa_model.compute_losses({k: v for k, v in data.items() if k != "negative_frame"})
    with pytest.raises(ValueError, match="localizer"):
        loc.LocalizationModel(localizer="attention")


def test_short_fit_on_the_reader_lowers_the_loss(tmp_path):
    write_tiny_root(tmp_path, num_clips=4)
    clips = fairplay.list_clips(str(tmp_path), "train")
    dataset = fairplay.training_dataset(clips, seed=0, chunks_per_clip=2, resize_hw=(SIZE, SIZE),
                                        crop_hw=(SIZE, SIZE), augment=False).batch(8)
    keras.utils.set_random_seed(0)
    model = loc.LocalizationModel(localizer="osa", use_ssm=True, audio_width_multiplier=0.0625)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(dataset, steps_per_epoch=3, epochs=3, verbose=0).history
    assert set(history) >= {"loss", "sce_loss", "obj_loss", "ssm_loss", "distance", "accuracy"}
    print("losses per epoch:", history["loss"])
    assert history["loss"][-1] < 0.8 * history["loss"][0], history["loss"]
    logs = model.evaluate(dataset, steps=1, verbose=0, return_dict=True)
    assert 0.0 <= logs["accuracy"] <= 1.0 and np.isfinite(logs["distance"])
