"""Rendering synthetic scenes (data/rendering.py): spatialized sound with measured HRIRs."""

import importlib.util

import numpy as np
import pytest
from binaural_cues import ild_db, lag_samples

from keras_binaural.data import rendering
from keras_binaural.data.hrtf import load_hrirs

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("slab") is None,
    reason="the synthetic scenes use MIT KEMAR, from the PyPI package slab (pip install slab)",
)

RATE_HZ = 16000


def test_moving_rendering_crossfades_and_reduces_to_static():
    hrirs = load_hrirs("kemar")
    noise = np.random.default_rng(0).standard_normal(RATE_HZ)
    blocks = int(np.ceil(RATE_HZ / 256)) + 1
    static = rendering.spatialize(noise, 30.0, hrirs)
    constant = rendering.spatialize(noise, np.full(blocks, 30.0), hrirs)
    np.testing.assert_allclose(constant, static, atol=1e-5)  # the Hann windows sum to one
    moving = rendering.spatialize(noise, np.linspace(60.0, -60.0, blocks), hrirs)
    quarter = RATE_HZ // 4
    assert ild_db(moving[:quarter]) > 6 and ild_db(moving[-quarter:]) < -6
    assert lag_samples(moving[:quarter]) > 0 > lag_samples(moving[-quarter:])


def test_ild_and_itd_grow_from_front_to_side():
    hrirs = load_hrirs("kemar")
    noise = np.random.default_rng(1).standard_normal(RATE_HZ)
    rendered = [
        rendering.spatialize(noise, azimuth, hrirs) for azimuth in (0.0, 15.0, 30.0, 45.0, 60.0)
    ]
    ilds = [ild_db(b) for b in rendered]
    lags = [lag_samples(b) for b in rendered]
    assert abs(ilds[0]) < 0.2 and lags[0] == 0
    assert np.all(np.diff(ilds) > 0), ilds
    assert np.all(np.diff(lags) >= 0) and lags[-1] >= 6, lags
    mirrored = rendering.spatialize(noise, -60.0, hrirs)
    assert ild_db(mirrored) == pytest.approx(-ilds[-1], abs=0.5)
