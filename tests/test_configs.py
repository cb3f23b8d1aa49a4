"""configs/clup.py: every variant builds and passes the checks, ablations set their terms,
unknown keys and variants are errors."""

import keras
import pytest
from absl import flags
from ml_collections import config_flags
from training_data import CONFIG_FILE, config_module

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


def test_ablations_set_their_loss_terms_and_components():
    lambdas = {}
    for ablation in CLUP.ABLATIONS:
        model = CLUP.get_config(f"demo,{ablation}").model
        lambdas[ablation] = (model.kind, model.lambda_sce, model.lambda_obj, model.lambda_cyc,
                             model.upmixer.guidance, model.localizer.localizer)
        assert model.lambda_ssm == (0.0 if ablation == "audio_only" else 1.0)
    assert lambdas["clup"] == ("clup", 1.0, 1.0, 1.0, "object", "osa")
    assert lambdas["no_cyc"] == ("clup", 1.0, 1.0, 0.0, "object", "osa")
    assert lambdas["sce_only"] == ("clup", 1.0, 0.0, 0.0, "object", "osa")
    assert lambdas["obj_only"] == ("clup", 0.0, 1.0, 0.0, "object", "osa")
    assert lambdas["baseline"] == ("upmixer", 1.0, 1.0, 0.0, "baseline", "baseline")
    assert lambdas["audio_only"][0] == "upmixer" and lambdas["audio_only"][4] == "none"
    assert lambdas["localizer"][0] == "localizer"


def test_paper_variant_has_the_paper_settings():
    config = CLUP.get_config("paper")
    localizer, upmixer = config.model.localizer, config.model.upmixer
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
    assert config.model.lambda_cyc == 0.0
    with pytest.raises((flags.Error, AttributeError, KeyError), match="epoch"):
        _parse("--config.train.epoch=7")
    with pytest.raises(AttributeError):  # the loaded config is locked too
        config.train.epoch = 3


def test_flag_errors_become_one_line():
    with pytest.raises((AttributeError, KeyError)) as caught:
        _parse("--config.train.epoch=7")
    line = cli.explain_flag_error(caught.value, ["train", "--config.train.epoch=7"])
    assert line == "--config.train.epoch: the config has no key 'epoch'; did you mean 'epochs'?"


@pytest.mark.parametrize("key, value, message", [
    ("model.kind", "gan", "must be one of clup, upmixer, localizer"),
    ("train.batch_size", 1, "at least 2"),
    ("data.crop_hw", (80, 80), "must fit inside data.resize_hw"),
    ("model.localizer.localizer", "baseline", "set model.localizer.localizer='osa'"),
    ("model.upmixer.guidance", "none", "model.kind 'clup' is guided by its OSA localizer"),
    ("model.resnet_weights", "/nonexistent.weights.h5", "no such file"),
    ("eval.sampler", "ddim", "must be one of fast, full"),
])
def test_bad_values_name_the_key(key, value, message):
    config = CLUP.get_config("tiny")
    section, name = key.rsplit(".", 1)
    target = config
    for part in section.split("."):
        target = target[part]
    target[name] = value
    with pytest.raises(training.TrainingError, match=rf"^--config\.{key}=.*{message}"):
        training.check_config(config)


@pytest.mark.parametrize("ablation", CLUP.ABLATIONS)
def test_tiny_variants_build_their_models(ablation):
    config = CLUP.get_config(f"tiny,{ablation}")
    model = training.build_model(config)
    model.compile(optimizer=training.make_optimizer(config))
    assert model.built and model.count_params() > 0
    expected = {"clup": "CLUP", "upmixer": "Upmixer", "localizer": "LocalizationModel"}
    assert type(model).__name__ == expected[config.model.kind]
    if config.model.kind != "localizer":
        assert model.denoiser.residual_channels == config.model.upmixer.residual_channels
        assert (model.localizer is None) == (config.model.upmixer.guidance == "none")
    if config.model.kind == "clup":
        assert (model.lambda_sce, model.lambda_obj, model.lambda_cyc) == (
            config.model.lambda_sce, config.model.lambda_obj, config.model.lambda_cyc)
    keras.backend.clear_session()
