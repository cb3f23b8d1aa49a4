"""Binaural cues measured on rendered audio: level difference and delay between the ears."""

import numpy as np


def ild_db(binaural: np.ndarray) -> float:
    energy = np.sum(np.square(binaural.astype(np.float64)), axis=0)
    return float(10 * np.log10(energy[0] / energy[1]))


def lag_samples(binaural: np.ndarray, max_lag: int = 20) -> int:
    """GCC-PHAT lag of the right ear behind the left (positive: left leads), within +-max_lag."""
    n = 2 * len(binaural)
    cross = np.fft.rfft(binaural[:, 1], n) * np.conj(np.fft.rfft(binaural[:, 0], n))
    correlation = np.fft.irfft(cross / np.maximum(np.abs(cross), 1e-12), n)
    lags = np.arange(-max_lag, max_lag + 1)
    return int(lags[np.argmax(correlation[lags])])
