"""Audio I/O and the VGGish log-mel frontend."""

from keras_binaural.audio.io import (
    SAMPLE_RATE_HZ,
    AudioError,
    decode_wav,
    from_mono_diff,
    load_audio,
    read_audio,
    resample,
    to_mono_diff,
    write_wav,
)

__all__ = [
    "SAMPLE_RATE_HZ",
    "AudioError",
    "decode_wav",
    "from_mono_diff",
    "load_audio",
    "read_audio",
    "resample",
    "to_mono_diff",
    "write_wav",
]
