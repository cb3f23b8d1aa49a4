"""Synthetic scenes (data/scenes.py): the camera models and the settings' checks."""

import numpy as np
import pytest

from keras_binaural.data import scenes


def test_camera_models_map_left_azimuths_left_of_centre():
    pinhole = scenes.parse_camera("pinhole:90", 224, 112)
    assert pinhole.x_from_azimuth(0.0) == pytest.approx(112.0)
    assert pinhole.x_from_azimuth(45.0) == pytest.approx(0.0)  # the left edge at +FOV/2
    assert pinhole.x_from_azimuth(-45.0) == pytest.approx(224.0)
    x = np.array([3.0, 50.0, 112.0, 200.0])
    np.testing.assert_allclose(pinhole.x_from_azimuth(pinhole.azimuth_from_x(x)), x)
    pano = scenes.parse_camera("equirect", 360, 180)
    np.testing.assert_allclose(
        pano.x_from_azimuth([0.0, 90.0, -90.0, 179.0]), [180.0, 90.0, 270.0, 1.0]
    )
    assert pano.to_json()["model"] == "equirect" and pano.fov_deg == 360.0
    assert scenes.Camera.from_json(pinhole.to_json()) == pinhole


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: scenes.SceneSettings(frame_size=(63, 64)), "even"),
        (lambda: scenes.SceneSettings(camera="fisheye"), "camera 'fisheye' not understood"),
        (
            lambda: scenes.SceneSettings(camera="pinhole:200"),
            r"field of view must be in \[1, 170\]",
        ),
        (lambda: scenes.SceneSettings(moving=2.0), "moving is a probability"),
        (lambda: scenes.SceneSettings(max_sources=0), "max_sources must be at least 1"),
        (lambda: scenes.SceneSettings(frame_size=(16, 16)), "even and >= 32"),
        (lambda: scenes.SceneSettings(distractor_classes="same"), "'other' or 'any'"),
    ],
)
def test_bad_settings(make, message):
    with pytest.raises(scenes.SceneError, match=message):
        make()


@pytest.mark.parametrize("distractor_classes", ["other", "any"])
def test_silent_objects_share_a_class_with_a_sounding_one_only_when_asked(distractor_classes):
    settings = scenes.SceneSettings(frame_size=(448, 224), max_sources=3, distractors=3,
                                    distractor_classes=distractor_classes)
    classes = ["guitar", "violin", "trumpet", "clarinet"]
    shared = silent = 0
    for seed in range(60):
        objects = scenes.sample_scene(np.random.default_rng(seed), settings, classes)
        sounding = {o.class_name for o in objects if o.sounding}
        quiet = [o.class_name for o in objects if not o.sounding]
        silent += len(quiet)
        shared += sum(name in sounding for name in quiet)
    assert silent > 50
    if distractor_classes == "other":
        assert shared == 0
    else:  # about half of them: 1-3 of the 4 classes sound
        assert 0.25 * silent < shared < 0.75 * silent


def test_a_scene_whose_classes_all_sound_has_no_other_class_to_show():
    settings = scenes.SceneSettings(max_sources=2, distractors=3)
    silent_counts = {1: [], 2: []}
    for seed in range(20):
        objects = scenes.sample_scene(np.random.default_rng(seed), settings, ["guitar", "bell"])
        sounding = {o.class_name for o in objects if o.sounding}
        silent = [o.class_name for o in objects if not o.sounding]
        assert not set(silent) & sounding
        silent_counts[len(sounding)].append(len(silent))
    assert set(silent_counts[2]) == {0}  # both classes sound: no silent object is drawn
    assert max(silent_counts[1]) > 0  # one sounds: the other class may stand silent
