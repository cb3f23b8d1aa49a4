"""The spatial prior: STFT conventions, column features, the estimate's algebra, the upmixer with it."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from localization_data import denoiser_inputs, tiny_upmixer_model
from roundtrip import assert_round_trip

from keras_binaural import generation, metrics
from keras_binaural.data import fairplay
from keras_binaural.models import spatial_prior as sp
from keras_binaural.models.clup import CLUP
from keras_binaural.models.upmixer import Upmixer

RNG = np.random.default_rng(0)
PRIOR = {"spatial_prior": True, "prior_columns": 4, "prior_embedding_size": 4,
         "prior_channels": 4}


def test_stft_is_the_metrics_stft_and_inverts():
    signal = RNG.normal(size=(2, 8000)).astype("float32")
    ours = sp.stft(signal).numpy()
    # SPEC's metric STFT (n_fft 512, hop 160, periodic Hann 400, centred, reflect).
    np.testing.assert_allclose(ours[0], metrics.stft_numpy(signal[0]), atol=2e-3)
    back = sp.istft(sp.stft(signal), 8000).numpy()
    np.testing.assert_allclose(back[:, 400:-400], signal[:, 400:-400], atol=1e-5)


def test_column_features_match_numpy():
    visual = RNG.normal(size=(2, 3, 8, 5)).astype("float32")
    attention = RNG.uniform(size=(2, 3, 8)).astype("float32")
    attention /= attention.sum((1, 2), keepdims=True)
    got = sp.column_features(visual, attention, 4).numpy()
    weighted = (visual * attention[..., None] * 24).mean(1)  # [2, 8, 5]
    plain = visual.mean(1)
    rows = np.concatenate([weighted, plain], -1)
    expected = rows.reshape(2, 4, 2, 10).mean(2)  # two cells per column bin
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_untrained_prior_is_mono_mono_and_a_flat_response_scales_the_mono():
    prior = sp.SpatialPrior(columns=3, embedding_size=4, channels=4)
    prior.build(column_feature_size=6)
    mono = RNG.normal(size=(2, 4000)).astype("float32")
    z = prior.embed_columns(RNG.normal(size=(2, 5, 3, 6)).astype("float32"))
    assert z.shape == (2, 5, 12)
    np.testing.assert_allclose(prior(mono, z).numpy(), 0.0, atol=1e-7)
    # R_k(f) = 0.3 for every column and no centre share: D^ = 0.3 M, so d_prior = 0.3 m.
    prior.response.assign(np.tile([0.3 / sp.RESPONSE_GAIN, 0.0], (3, sp.NUM_BINS, 1))
                          .astype("float32"))
    prior.centre_logit.assign(-1e9)
    np.testing.assert_allclose(prior(mono, z).numpy()[:, 400:-400], 0.3 * mono[:, 400:-400],
                               atol=1e-5)
    share = prior.assignment(sp.stft(mono), z).numpy()
    np.testing.assert_allclose(share.sum(-1), 1.0, atol=1e-5)


def test_prior_loss_matches_numpy():
    mono = RNG.normal(size=(2, 3200)).astype("float32")
    diff = 0.5 * mono + 0.1 * RNG.normal(size=(2, 3200)).astype("float32")
    spectrum = sp.stft(mono)
    estimate = spectrum * 0.4
    target = sp.stft(diff).numpy()
    expected = np.mean(np.abs(estimate.numpy() - target) ** 2) / np.mean(
        np.abs(spectrum.numpy()) ** 2)
    assert float(sp.prior_loss(estimate, spectrum, diff)) == pytest.approx(expected, rel=1e-4)


def test_upmixer_with_the_prior_trains_generates_and_round_trips(upmixer_batch, upmixer_root,
                                                                tmp_path):
    with pytest.raises(ValueError, match="spatial_prior needs a localizer"):
        Upmixer(guidance="none", spatial_prior=True)
    model = tiny_upmixer_model(CLUP, **PRIOR)
    assert model.guidance_width == 8 + 16
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    logs = model.fit(tf.data.Dataset.from_tensors(upmixer_batch), epochs=1, verbose=0).history
    assert "prior_loss" in logs and np.isfinite(logs["prior_loss"][-1])
    assert_round_trip(model, denoiser_inputs(upmixer_batch), tmp_path)

    clips = fairplay.list_clips(upmixer_root, "test")
    clip = next(iter(fairplay.evaluation_dataset(clips[:1], resize_hw=(64, 64),
                                                 crop_hw=(64, 64))))
    mono, frames = clip["mono"].numpy()[None, :16_000], clip["frames"].numpy()[None, :10]
    model.prior.response.assign(RNG.normal(size=(4, sp.NUM_BINS, 2)).astype("float32") * 0.1)
    for sampler in ("prior", "fast"):
        binaural = generation.generate(model, mono, frames, sampler=sampler, seed=0,
                                       progress=False)
        np.testing.assert_allclose(binaural.sum(-1), 2 * mono, atol=1e-6)  # Eq. 3
        assert np.abs(binaural[..., 0] - binaural[..., 1]).max() > 1e-4
    again = generation.generate(model, mono, frames, sampler="prior", progress=False)
    np.testing.assert_array_equal(again, generation.generate(model, mono, frames,
                                                             sampler="prior", seed=5,
                                                             progress=False))
    with pytest.raises(ValueError, match="has none"):
        generation.generate(tiny_upmixer_model(Upmixer, guidance="object"), mono, frames,
                            sampler="prior")
