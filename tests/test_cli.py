"""Command-line helpers (cli.py): frame-size flags and one-line messages."""

import pytest

from keras_binaural import cli


def test_frame_sizes_parse_and_bad_ones_name_the_flag():
    assert cli.parse_size_wh("128x96") == (128, 96)
    assert cli.parse_size_wh("64") == (64, 64)  # a square
    with pytest.raises(ValueError, match=r"^--frame_size='big': want WIDTHxHEIGHT in pixels"):
        cli.parse_size_wh("big")
    with pytest.raises(KeyError, match=r"--size='16x16': width and height must be >= 32"):
        cli.parse_size_wh("16x16", "--size", KeyError, minimum=32)


def test_one_line_joins_lines_and_cuts_long_text():
    assert cli.one_line("first\n\n  second  \n") == "first; second"
    assert cli.one_line("x" * 50, limit=10) == "xxxxxxx..."


def test_a_missing_config_section_names_the_whole_flag():
    argv = ["train", "--config=configs/clup.py:tiny", "--config.optimizer.learning_rate", "0.5"]
    message = cli.explain_flag_error(KeyError("'optimizer'"), argv)
    assert message == "--config.optimizer.learning_rate: the config has no key 'optimizer'"
    argv = ["train", "--config.train.epoch=3"]
    message = cli.explain_flag_error(AttributeError("'epoch'. Did you mean \"epochs\"?"), argv)
    assert message == "--config.train.epoch: the config has no key 'epoch'; did you mean 'epochs'?"
