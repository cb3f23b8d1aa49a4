"""configs/clup.py: every variant builds and passes the checks, ablations set their terms,
unknown keys and variants are errors."""

import keras
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags
from training_data import CONFIG_FILE, config_module, tiny_config, tiny_root

from keras_binaural import cli, training

CLUP = config_module()
VARIANTS = [f"{size},{ablation}" for size in CLUP.SIZES for ablation in CLUP.ABLATIONS]


def _parse(*overrides: str, variant: str = "tiny"):
    """Parses --config like tools/train.py does (lock_config=True) and returns the config."""
    argv = ["train", f"--config={CONFIG_FILE}:{variant}", *overrides]
    values = flags.FlagValues()
    # sys_argv: the overrides are defined from the command line being parsed (not sys.argv).
    config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True,
                                    sys_argv=argv)
    values(argv)
    return values.config


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_is_a_valid_config(variant):
    config = CLUP.get_config(variant)
    training.check_config(config)
    size, ablation = variant.split(",")
    assert config.variant == variant
    assert config.name == ablation
    assert CLUP.get_config(size).variant == f"{size},clup"


def _components(config):
    """(kind, λ_sce, λ_obj, λ_cyc, guidance, localizer, λ_ssm) that a config's model trains with:
    a λ the model does not have is 0, CLUP's guidance is "object" from the OSA localizer."""
    kind, model = config.model_kind, config.model
    localizer = model if kind == "localizer" else model.get("localizer_config", {})
    guidance = {"clup": "object", "localizer": None}.get(kind, model.get("guidance"))
    localizer_name = localizer.get("localizer") or {"object": "osa", "baseline": "baseline"}.get(
        guidance)
    return (kind, localizer.get("lambda_sce", 0.0), localizer.get("lambda_obj", 0.0),
            model.get("lambda_cyc", 0.0), guidance, localizer_name,
            localizer.get("lambda_ssm", 0.0))


def test_ablations_set_their_loss_terms_and_components():
    lambdas = {}
    for ablation in CLUP.ABLATIONS:
        components = _components(CLUP.get_config(f"demo,{ablation}"))
        lambdas[ablation] = components[:-1]
        assert components[-1] == (0.0 if ablation == "audio_only" else 1.0)  # λ_ssm
    assert lambdas["clup"] == ("clup", 1.0, 1.0, 1.0, "object", "osa")
    assert lambdas["no_cyc"] == ("clup", 1.0, 1.0, 0.0, "object", "osa")
    assert lambdas["sce_only"] == ("clup", 1.0, 0.0, 0.0, "object", "osa")
    assert lambdas["obj_only"] == ("clup", 0.0, 1.0, 0.0, "object", "osa")
    assert lambdas["baseline"] == ("upmixer", 1.0, 1.0, 0.0, "baseline", "baseline")
    assert lambdas["audio_only"][0] == "upmixer" and lambdas["audio_only"][4] == "none"
    assert lambdas["localizer"][5] == "osa"
    assert lambdas["localizer"][0] == "localizer"
    # The pointing terms and the spatial prior, and the ablations without them.
    pointing = {key: 1.0 for key in ("lambda_background", "lambda_mosaic", "lambda_cue")}
    clup = CLUP.get_config("demo")
    assert clup.model.spatial_prior and clup.eval.sampler == "prior"
    assert {key: clup.model.localizer_config[key] for key in pointing} == pointing
    paper_losses = CLUP.get_config("demo,paper_losses")
    assert not any(paper_losses.model.localizer_config[key] for key in CLUP.POINTING_LAMBDAS)
    assert not paper_losses.model.spatial_prior and paper_losses.eval.sampler == "fast"
    no_prior = CLUP.get_config("demo,no_prior")
    assert not no_prior.model.spatial_prior and no_prior.eval.sampler == "fast"
    assert CLUP.get_config("demo,baseline").model.spatial_prior
    assert not CLUP.get_config("demo,audio_only").model.spatial_prior


def test_paper_variant_has_the_paper_settings():
    config = CLUP.get_config("paper")
    localizer, upmixer = config.model.localizer_config, config.model
    assert (localizer.audio_encoder, localizer.audio_encoder_trainable) == ("vggish", False)
    assert (upmixer.residual_channels, upmixer.num_cycles, upmixer.layers_per_cycle) == (64, 3, 10)
    assert (upmixer.num_train_steps, upmixer.beta_start, upmixer.beta_end) == (200, 1e-4, 0.02)
    assert config.data.crop_hw == (224, 448) and config.eval.sampler == "fast"
    assert config.train.batch_size >= 32 and config.train.epochs * config.train.steps_per_epoch >= (
        50_000)


def test_unknown_variant_names_the_choices():
    with pytest.raises(ValueError, match="unknown variant 'demo,nocyc'.*no_cyc"):
        CLUP.get_config("demo,nocyc")
    with pytest.raises(ValueError, match="SIZE one of demo, paper, tiny"):
        CLUP.get_config("small")


def test_overrides_apply_and_a_misspelt_key_is_an_error():
    config = _parse("--config.train.epochs=7", "--config.data.crop_hw=(32, 48)",
                    variant="tiny,no_cyc")
    assert config.train.epochs == 7 and tuple(config.data.crop_hw) == (32, 48)
    assert config.model.lambda_cyc == 0.0 and config.model.localizer_config.lambda_sce == 1.0
    with pytest.raises((flags.Error, AttributeError, KeyError), match="epoch"):
        _parse("--config.train.epoch=7")
    with pytest.raises(AttributeError):  # the loaded config is locked too
        config.train.epoch = 3


def test_flag_errors_become_one_line():
    with pytest.raises((AttributeError, KeyError)) as caught:
        _parse("--config.train.epoch=7")
    line = cli.explain_flag_error(caught.value, ["train", "--config.train.epoch=7"])
    assert line == "--config.train.epoch: the config has no key 'epoch'; did you mean 'epochs'?"


@pytest.mark.parametrize("variant, key, value, message", [
    ("tiny", "model_kind", "gan", "must be one of clup, upmixer, localizer"),
    ("tiny", "train.batch_size", 1, "at least 2"),
    ("tiny", "data.crop_hw", (80, 80), "must fit inside data.resize_hw"),
    ("tiny,localizer", "model.localizer", "attention", "must be one of osa, baseline"),
    ("tiny,baseline", "model.guidance", "scene", "must be one of object, baseline, none"),
    ("tiny", "model.localizer_config.lambda_obj", -1.0, "must be >= 0"),
    ("tiny", "model_init.resnet_weights", "/nonexistent.weights.h5", "no such file"),
    ("tiny", "model_init.localizer", "/nonexistent", "no such .keras file or tools/train.py"),
    ("tiny", "model_init.responses", "/nonexistent", "no such .keras file or tools/train.py"),
    ("tiny", "eval.sampler", "ddim", "must be one of fast, few, full, prior, refine"),
    ("tiny", "model.update_responses", False, "model_init.responses names none to hold"),
    ("tiny", "model.update_localizer", False, "model_init.localizer names none to hold"),
])
def test_bad_values_name_the_key(variant, key, value, message):
    config = CLUP.get_config(variant)
    *sections, name = key.split(".")
    target = config
    for part in sections:
        target = target[part]
    target[name] = value
    with pytest.raises(training.TrainingError, match=rf"^--config\.{key}=.*{message}"):
        training.check_config(config)


def test_arguments_the_model_refuses_name_the_model_section():
    config = CLUP.get_config("tiny,baseline")
    config.model.localizer_config.localizer = "osa"  # the guidance chooses it
    with pytest.raises(training.TrainingError,
                       match=r"^--config\.model: localizer_config must not set 'localizer'"):
        training.build_model(config)


@pytest.mark.parametrize("ablation", CLUP.ABLATIONS)
def test_tiny_variants_build_their_models(ablation):
    config = CLUP.get_config(f"tiny,{ablation}")
    model = training.build_model(config)
    model.compile(optimizer=training.make_optimizer(config))
    assert model.built and model.count_params() > 0
    expected = {"clup": "CLUP", "upmixer": "Upmixer", "localizer": "LocalizationModel"}
    assert type(model).__name__ == expected[config.model_kind]
    if config.model_kind != "localizer":
        assert model.denoiser.residual_channels == config.model.residual_channels
        assert (model.localizer is None) == (config.model.get("guidance") == "none")
    if config.model_kind == "clup":
        localizer = config.model.localizer_config
        assert (model.localizer.lambda_sce, model.localizer.lambda_obj, model.lambda_cyc) == (
            localizer.lambda_sce, localizer.lambda_obj, config.model.lambda_cyc)
    keras.backend.clear_session()


def test_a_trained_localizer_starts_clup_and_a_mismatched_one_is_refused(tmp_path):
    localizer = training.build_model(CLUP.get_config("tiny,localizer"))
    path = str(tmp_path / "localizer.keras")
    localizer.save(path)
    config = CLUP.get_config("tiny")
    config.model_init.localizer = path
    training.check_config(config)
    clup = training.build_model(config)
    for ours, theirs in zip(clup.localizer.weights, localizer.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    config.model.localizer_config.audio_width_multiplier = 0.125  # another audio encoder
    with pytest.raises(training.TrainingError, match=r"^--config\.model_init\.localizer=.*other "
                       "arguments"):
        training.build_model(config)
    keras.backend.clear_session()


def test_responses_of_another_run_start_the_prior_and_can_be_held(tmp_path, tmp_path_factory):
    config = tiny_config(tiny_root(tmp_path_factory), "tiny")
    source = training.build_model(config)
    responses = source.prior.responses
    rng = np.random.default_rng(0)
    responses.cross.assign(rng.normal(size=responses.cross.shape).astype("float32"))
    responses.power.assign(rng.uniform(1, 2, size=responses.power.shape).astype("float32"))
    path = str(tmp_path / "source.keras")
    source.save(path)
    config.model_init.responses = path
    config.model.update_responses = False
    training.check_config(config)
    model = training.build_model(config)
    for ours, theirs in zip(model.prior.responses.weights, responses.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    # Held: a training batch's losses leave them as loaded (the default would update them).
    clips = training.split_clips(config, "train")
    batch = next(iter(training.training_batches(config, clips, seed=0)))
    model.compute_losses(batch, training=True)
    np.testing.assert_array_equal(model.prior.responses.cross.numpy(), responses.cross.numpy())
    model.update_responses = True
    model.compute_losses(batch, training=True)
    assert not np.allclose(model.prior.responses.cross.numpy(), responses.cross.numpy())
    config.model.prior_columns = 8
    with pytest.raises(training.TrainingError, match=r"^--config\.model_init\.responses=.*16 "
                       "columns, this model's 8"):
        training.build_model(config)
    keras.backend.clear_session()


def test_a_held_localizer_stays_as_loaded_while_the_upmixer_trains(tmp_path, tmp_path_factory):
    config = tiny_config(tiny_root(tmp_path_factory), "tiny,localizer")
    path = str(tmp_path / "localizer.keras")
    training.build_model(config).save(path)
    config = tiny_config(tiny_root(tmp_path_factory), "tiny")
    config.model_init.localizer = path
    config.model.update_localizer = False
    training.check_config(config)
    model = training.build_model(config)
    model.compile(optimizer=training.make_optimizer(config), run_eagerly=True)  # no tracing
    localizer = [w.numpy() for w in model.localizer.weights]  # BatchNorm statistics included
    denoiser = [w.numpy() for w in model.denoiser.weights]
    clips = training.split_clips(config, "train")
    history = model.fit(training.training_batches(config, clips, seed=0).take(2), verbose=0)
    for before, after in zip(localizer, model.localizer.weights, strict=True):
        np.testing.assert_array_equal(after.numpy(), before)
    assert any(not np.array_equal(w.numpy(), b) for w, b in zip(model.denoiser.weights, denoiser))
    # Its losses are left out of training (they could not change it); l_cyc still trains.
    assert "cyc_loss" in history.history and "sce_loss" not in history.history
    model.save(tmp_path / "clup.keras")
    loaded = keras.saving.load_model(tmp_path / "clup.keras")
    assert loaded.update_localizer is False and not loaded.localizer.trainable_weights
    keras.backend.clear_session()


def test_a_localizer_that_trains_keeps_an_audio_encoder_built_frozen():
    config = CLUP.get_config("tiny")
    config.model.localizer_config.audio_encoder_trainable = False  # as the paper's VGGish
    model = training.build_model(config)
    assert model.localizer.trainable_weights and not model.localizer.audio_encoder.trainable_weights
    keras.backend.clear_session()
