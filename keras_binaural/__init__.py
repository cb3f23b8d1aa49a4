"""keras-binaural: mono audio plus video to binaural audio, and sounding-object localization."""

__version__ = "0.1.0"
