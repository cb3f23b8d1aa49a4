"""The audio encoders of the localizer (models/audio_encoders.py)."""

import numpy as np
import pytest
from roundtrip import assert_round_trip

from keras_binaural.models.audio_encoders import LogMelCNN, make_audio_encoder

RNG = np.random.default_rng(0)


def test_compact_audio_encoder_round_trips(tmp_path):
    encoder = LogMelCNN(width_multiplier=0.0625)
    out = assert_round_trip(encoder, RNG.normal(size=(2, 96, 64)).astype("float32"), tmp_path)
    assert out.shape == (2, 128)
    with pytest.raises(ValueError, match=r"\[batch, 96, 64\]"):
        encoder(np.zeros([2, 64, 96], "float32"))
    with pytest.raises(ValueError, match="Unknown audio encoder"):
        make_audio_encoder("wav2vec")
