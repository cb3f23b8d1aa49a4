"""Evaluation: binaural quality (supp. Eq. 4-9, Table 2) and localization (supp. Eq. 10-11,
Table 1), with the figures of the supplement.

- `wav_folders`: scores folders of predicted binaural WAVs against ground truth with the six
  metrics and the mono-mono baseline (`tools/evaluate_wavs.py`).
- `trained_runs`: evaluates trained models (a `tools/train.py` run or a `.keras` file) and
  baselines on a dataset split: Table 1, Table 2 and the plots (`tools/evaluate.py`).
- `localization`: Table 1's protocol on whole clips, the pointing game, the correlation
  analysis (supp. Fig. 1-2) and the maps over frames (supp. Fig. 5).
- `plots`: the figures, drawn with matplotlib's object-oriented API and written atomically.

The metrics themselves are `keras_binaural.metrics` and `keras_binaural.localization_metrics`.
Every problem found before scoring is an `EvaluationError` with a one-line message naming the
flag, file or clip.
"""

from __future__ import annotations

import numpy as np

from keras_binaural import metrics

MONO_MONO = "mono_mono"  # the baseline's name in every table


class EvaluationError(ValueError):
    """Input that cannot be evaluated; the message names the flag, file or clip and the problem."""


def mono_mono(binaural: np.ndarray) -> np.ndarray:
    """The mono-mono baseline L̂ = R̂ = m = (L + R) / 2 of the ground truth (SPEC section 1):
    `[time, 2]` -> `[time, 2]`."""
    return np.repeat(np.mean(binaural, axis=-1, keepdims=True), 2, axis=-1)


def metric_title(name: str) -> str:
    """A metric's column title in the reports: its name, unit and better direction."""
    unit = " (dB)" if name == "snr" else ""
    return f"{name.upper()}{unit} {'↑' if metrics.HIGHER_IS_BETTER[name] else '↓'}"
