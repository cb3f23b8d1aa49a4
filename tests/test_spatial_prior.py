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


def rms(x) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


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
    z = prior.embed_columns(RNG.normal(size=(2, 5, 3, 6)).astype("float32"),
                            np.full((2, 5, 3), 1 / 3, "float32"))
    assert z.shape == (2, 5, 3 * 5)
    np.testing.assert_allclose(prior(mono, z).numpy(), 0.0, atol=1e-7)
    # Sums giving R_k(f) = 0.3 for every column, and no centre share: d_prior = 0.3 m.
    prior.responses.power.assign(np.ones((3, sp.NUM_BINS), "float32"))
    prior.responses.cross.assign(np.tile([0.3 * (1 + sp.RESPONSE_FLOOR), 0.0],
                                        (3, sp.NUM_BINS, 1)).astype("float32"))
    prior.centre_logit.assign(-1e9)
    np.testing.assert_allclose(prior(mono, z).numpy()[:, 400:-400], 0.3 * mono[:, 400:-400],
                               atol=1e-5)
    share = prior.assignment(sp.stft(mono), z).numpy()
    np.testing.assert_allclose(share.sum(-1), 1.0, atol=1e-5)


def test_the_assignment_follows_the_attention_mass_before_any_match():
    prior = sp.SpatialPrior(columns=3, embedding_size=4, channels=4)
    prior.build(column_feature_size=6)
    prior.column_dense.kernel.assign(np.zeros((6, 4), "float32"))  # <u, z> = 0
    mass = np.array([[0.7, 0.2, 0.1]], "float32")
    z = prior.embed_columns(RNG.normal(size=(1, 3, 6)).astype("float32"), mass)
    share = prior.assignment(sp.stft(RNG.normal(size=(1, 1600)).astype("float32")), z).numpy()
    # softmax(log(a + floor), centre 0) = (a + floor) / (1 + 3 floor + 1)
    expected = (mass[0] + sp.MASS_FLOOR) / (2 + 3 * sp.MASS_FLOOR)
    np.testing.assert_allclose(share[0, 3, 10], expected, rtol=1e-5)


@pytest.mark.parametrize("bf16", ["0", "1"])
def test_the_audio_cnn_in_bfloat16_keeps_float32_weights_and_the_assignment(bf16, monkeypatch):
    monkeypatch.setenv("KERAS_BINAURAL_BF16", bf16)  # what "auto" follows (runtime.bfloat16_pays)
    reference = sp.SpatialPrior(columns=3, embedding_size=4, channels=4)
    auto = sp.SpatialPrior(columns=3, embedding_size=4, channels=4, audio_dtype="auto")
    for prior in (reference, auto):
        prior.build(column_feature_size=6)
    auto.set_weights(reference.get_weights())
    expected = "bfloat16" if bf16 == "1" else "float32"
    assert {conv.compute_dtype for conv in auto.audio_convs} == {expected}
    assert {weight.dtype for weight in auto.weights} == {"float32"}
    assert auto.get_config()["audio_dtype"] == "auto"
    spectrum = sp.stft(RNG.normal(size=(2, 3200)).astype("float32"))
    z = reference.embed_columns(RNG.normal(size=(2, 3, 6)).astype("float32"),
                                np.full((2, 3), 1 / 3, "float32"))
    ours, theirs = auto.assignment(spectrum, z), reference.assignment(spectrum, z)
    assert ours.dtype == tf.float32
    # bfloat16 keeps 8 bits of mantissa: the shares agree to about 1e-2, float32 exactly.
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=2e-2 if bf16 == "1" else 1e-6)


def test_one_sounds_embeddings_and_spectra_serve_a_batch_of_pictures():
    """What bench_binaural_pairs relies on: u, M and D of batch 1 against three pictures' columns
    give what the same sound repeated three times gives."""
    prior = sp.SpatialPrior(columns=3, embedding_size=4, channels=4)
    prior.build(column_feature_size=6)
    prior.responses.power.assign(np.ones((3, sp.NUM_BINS), "float32"))
    prior.responses.cross.assign(RNG.normal(size=(3, sp.NUM_BINS, 2)).astype("float32"))
    z = prior.embed_columns(RNG.normal(size=(3, 3, 6)).astype("float32"),
                            RNG.dirichlet(np.ones(3), size=3).astype("float32"))
    spectrum, diff = (sp.stft(RNG.normal(size=(1, 1600)).astype("float32")) for _ in range(2))
    tiled, tiled_diff = (tf.repeat(x, 3, axis=0) for x in (spectrum, diff))
    share = prior.match(prior.bin_embeddings(spectrum), z)
    np.testing.assert_allclose(share.numpy(), prior.assignment(tiled, z).numpy(), atol=1e-6)
    # Eager calls run the audio CNN traced; in a graph it is inlined: the same u.
    np.testing.assert_allclose(tf.function(prior.bin_embeddings)(spectrum).numpy(),
                               prior.bin_embeddings(spectrum).numpy(), atol=1e-6)
    for once, repeated in (
        (prior.responses.estimate(share, spectrum), prior.responses.estimate(share, tiled)),
        (prior.responses.log_likelihood(share, spectrum, diff),
         prior.responses.log_likelihood(share, tiled, tiled_diff)),
    ):
        assert once.shape == repeated.shape
        np.testing.assert_allclose(once.numpy(), repeated.numpy(), rtol=1e-5, atol=1e-5)


def test_column_responses_are_the_least_squares_answer():
    responses = sp.ColumnResponses(columns=2)
    responses.build()
    mono = RNG.normal(size=(3, 3200)).astype("float32")
    spectrum = sp.stft(mono)
    true_response = (RNG.normal(size=sp.NUM_BINS) + 1j * RNG.normal(size=sp.NUM_BINS))
    diff_spectrum = spectrum.numpy() * true_response + 0.1 * RNG.normal(size=spectrum.shape)
    share = np.zeros(spectrum.shape + (2,), "float32")
    share[..., 1] = 1.0  # every bin from column 1
    for _ in range(3):  # the decay cancels in the ratio
        responses.update(share, spectrum, tf.constant(diff_spectrum, tf.complex64))
    m = spectrum.numpy()
    least_squares = ((np.conj(m) * diff_spectrum).sum((0, 1))
                     / ((np.abs(m) ** 2).sum((0, 1)) + sp.RESPONSE_FLOOR
                        * (np.abs(m) ** 2).sum((0, 1)).mean() / 2))
    got = responses.response().numpy()
    np.testing.assert_allclose(got[1, :, 0] + 1j * got[1, :, 1], least_squares, rtol=1e-3,
                               atol=1e-4)
    np.testing.assert_allclose(got[0], 0.0, atol=1e-6)  # never assigned: no response


def two_column_responses():
    """(ColumnResponses with R_0 = 0.5 + 0.2j at every frequency and R_1 = -R_0, [R_0, R_1],
    a mono spectrum M `[2, frames, bins]`, which column explains each bin (2: the centre), and
    the differential D = M R_which)."""
    responses = sp.ColumnResponses(columns=2)
    responses.build()
    left = 0.5 + 0.2j
    cross = np.zeros((2, sp.NUM_BINS, 2), "float32")
    cross[0, :, 0], cross[0, :, 1] = left.real, left.imag
    cross[1] = -cross[0]
    responses.cross.assign(cross)
    responses.power.assign(np.ones((2, sp.NUM_BINS), "float32"))  # R = cross / (1 + floor)
    response = np.array([left, -left]) / (1 + sp.RESPONSE_FLOOR)
    spectrum = sp.stft(RNG.normal(size=(2, 1600)).astype("float32")).numpy()
    which = RNG.integers(0, 3, size=spectrum.shape)
    diff = spectrum * np.where(which == 2, 0.0, response[np.minimum(which, 1)])
    return responses, response, spectrum, which, diff


def fit_logits_numpy(response, spectrum, diff, spread=sp.RESPONSIBILITY_SPREAD):
    errors = np.abs(diff[..., None] - spectrum[..., None] * np.append(response, 0)) ** 2
    power = np.abs(spectrum) ** 2
    return -errors / (spread**2 * (power + sp.RESPONSE_FLOOR * power.mean()))[..., None]


def test_responsibilities_say_which_column_explains_each_bin():
    responses, response, spectrum, which, diff = two_column_responses()
    diff = diff + 0.01 * np.abs(spectrum) * RNG.normal(size=spectrum.shape)
    got = responses.responsibilities(tf.constant(spectrum, tf.complex64),
                                     tf.constant(diff, tf.complex64)).numpy()
    logits = fit_logits_numpy(response, spectrum, diff)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    power = np.abs(spectrum) ** 2
    loud = power > 0.1 * power.mean()  # where M is not ~0, the right class wins
    assert np.mean(got.argmax(-1)[loud] == which[loud]) > 0.99


def test_log_likelihood_is_the_mixtures_and_needs_only_some_column_to_explain_a_bin():
    responses, response, spectrum, _, diff = two_column_responses()
    spectrum_tf, diff_tf = (tf.constant(x, tf.complex64) for x in (spectrum, diff))
    share = RNG.dirichlet(np.ones(3), size=spectrum.shape)[..., :2].astype("float32")
    got = responses.log_likelihood(tf.constant(share), spectrum_tf, diff_tf, spread=0.3).numpy()
    full = np.concatenate([share, 1 - share.sum(-1, keepdims=True)], axis=-1)
    terms = np.log(full + 1e-6) + fit_logits_numpy(response, spectrum, diff, spread=0.3)
    top = terms.max(-1, keepdims=True)
    expected = (top + np.log(np.exp(terms - top).sum(-1, keepdims=True)))[..., 0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)

    # A differential from column 0 alone: an even split between the two columns explains it
    # (log 1/2 per loud bin), all of it on column 1 does not; one share for every bin works too.
    from_left = tf.constant(spectrum * response[0], tf.complex64)
    power = np.abs(spectrum) ** 2
    loud = power > 0.1 * power.mean()

    def mean_log_likelihood(left, right):
        share = tf.constant([[[[left, right]]]] * 2, tf.float32)  # [2, 1, 1, K]
        return responses.log_likelihood(share, spectrum_tf, from_left).numpy()[loud].mean()

    np.testing.assert_allclose(mean_log_likelihood(1.0, 0.0), 0.0, atol=1e-3)
    np.testing.assert_allclose(mean_log_likelihood(0.5, 0.5), np.log(0.5), atol=1e-3)
    assert mean_log_likelihood(0.0, 1.0) < np.log(1e-5)  # only an empty share's 1e-6 floor


def test_assignment_loss_matches_numpy():
    share = RNG.dirichlet(np.ones(4), size=(2, 3, 5))[..., :3].astype("float32")  # centre: rest
    target = RNG.dirichlet(np.ones(4), size=(2, 3, 5)).astype("float32")
    spectrum = (RNG.normal(size=(2, 3, 5)) + 1j * RNG.normal(size=(2, 3, 5))).astype("complex64")
    full = np.concatenate([share, 1 - share.sum(-1, keepdims=True)], axis=-1)
    entropy = -(target * np.log(full + 1e-6)).sum(-1)
    weight = np.abs(spectrum) ** 2
    expected = (weight * entropy).sum() / weight.sum()
    got = float(sp.assignment_loss(share, target, tf.constant(spectrum)))
    assert got == pytest.approx(expected, rel=1e-5)
    # Smallest when p is q: the cross-entropy then is q's entropy.
    assert float(sp.assignment_loss(target[..., :3], target, tf.constant(spectrum))) < got


def test_prior_loss_matches_numpy():
    mono = RNG.normal(size=(2, 3200)).astype("float32")
    diff = 0.5 * mono + 0.1 * RNG.normal(size=(2, 3200)).astype("float32")
    spectrum = sp.stft(mono)
    estimate = spectrum * 0.4
    target = sp.stft(diff).numpy()
    expected = np.mean(np.abs(estimate.numpy() - target) ** 2) / np.mean(
        np.abs(spectrum.numpy()) ** 2)
    assert float(sp.prior_loss(estimate, spectrum, sp.stft(diff))) == pytest.approx(expected,
                                                                                 rel=1e-4)


def test_upmixer_with_the_prior_trains_generates_and_round_trips(upmixer_batch, upmixer_root,
                                                                tmp_path):
    with pytest.raises(ValueError, match="spatial_prior needs a localizer"):
        Upmixer(guidance="none", spatial_prior=True)
    model = tiny_upmixer_model(CLUP, **PRIOR, lambda_assignment=0.5)
    assert model.guidance_width == 8 + 4 * 5
    # One step, eagerly: tracing the whole train step would take most of this test's time
    # (test_clup trains CLUP in graph mode).
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    logs = model.fit(tf.data.Dataset.from_tensors(upmixer_batch), epochs=1, verbose=0).history
    for name in ("prior_loss", "assignment_loss"):
        assert name in logs and np.isfinite(logs[name][-1])
    assert_round_trip(model, denoiser_inputs(upmixer_batch), tmp_path)

    clips = fairplay.list_clips(upmixer_root, "test")
    clip = next(iter(fairplay.evaluation_dataset(clips[:1], resize_hw=(64, 64),
                                                 crop_hw=(64, 64))))
    mono, frames = clip["mono"].numpy()[None, :16_000], clip["frames"].numpy()[None, :10]
    responses = model.prior.responses
    assert np.abs(responses.power.numpy()).max() > 0  # training updated the sums
    rng = np.random.default_rng(0)  # its own: the module's RNG depends on the tests run before
    responses.cross.assign(rng.normal(size=(4, sp.NUM_BINS, 2)).astype("float32")
                           * responses.power[..., None])
    for sampler in ("prior", "fast"):
        binaural = generation.generate(model, mono, frames, sampler=sampler, seed=0,
                                       progress=False)
        np.testing.assert_allclose(binaural.sum(-1), 2 * mono, atol=1e-6)  # Eq. 3
        assert np.abs(binaural[..., 0] - binaural[..., 1]).max() > 1e-4
    # "refine" starts from the prior's estimate: with one step from the cleanest level (noise
    # std 0.01) it stays next to it; more steps from noisier levels move further away (RMS
    # over the differential, relative to the prior's: the peak alone moves from run to run).
    short, first = mono[:, :3200], frames[:, :2]  # 0.2 s: the samplers' cost, not the point
    prior = generation.generate(model, short, first, sampler="prior", progress=False)
    moved = {}
    for steps in (1, 4):
        model.refine_steps = steps  # drops the functions traced with the old number of steps
        refined = generation.generate(model, short, first, sampler="refine", progress=False)
        np.testing.assert_allclose(refined.sum(-1), 2 * short, atol=1e-6)
        moved[steps] = rms(refined - prior) / rms(prior[..., 0] - short)  # 0.01 against 0.26
    assert moved[1] < 0.05 < moved[4]
    with pytest.raises(ValueError, match="refine_steps must be in 1 .. 6"):
        model.refine_steps = 7
    few = generation.generate(model, short, first, sampler="few", progress=False)
    np.testing.assert_allclose(few.sum(-1), 2 * short, atol=1e-6)
    schedule, steps = model.sampler_schedule("few")
    np.testing.assert_allclose(schedule.alpha_bars.numpy(),
                               model.inference_schedule.alpha_bars.numpy()[3:], rtol=1e-12)
    assert steps.shape == (3,)
    again = generation.generate(model, mono, frames, sampler="prior", progress=False)
    np.testing.assert_array_equal(again, generation.generate(model, mono, frames,
                                                             sampler="prior", seed=5,
                                                             progress=False))
    without_prior = tiny_upmixer_model(Upmixer, guidance="object")
    for sampler in ("prior", "refine"):
        with pytest.raises(ValueError, match="has none"):
            generation.generate(without_prior, mono, frames, sampler=sampler)
