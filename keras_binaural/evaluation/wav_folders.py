"""Scores predicted binaural WAVs against ground truth with the six FAIR-Play metrics.

The library behind `tools/evaluate_wavs.py`; see `run_evaluation`.

Pairing (decided here, documented in the tool):
- Flat layout (default): every audio file under `pred_dir` (searched recursively; .wav, .flac,
  .ogg, .mp3) is a clip named by its path relative to `pred_dir` ("split1/000123.wav"); its
  ground truth is the file with the same relative path under `gt_dir`. Extra ground-truth files
  are ignored (gt_dir may hold a whole dataset, the predictions one split); a prediction
  without its ground truth is an error, so that a clip can never silently drop out of a mean.
- Clip-folder layout (`pred_name` set): each clip is a folder holding a prediction file named
  `pred_name` and, in the same relative folder under `gt_dir`, a ground truth named `gt_name`
  (default: `pred_name`). The clip's name is the folder's relative path. FAIR-Play demo folders:
  pred_name="predicted_binaural.wav", gt_name="input_binaural.wav", pred_dir = gt_dir.

Both files must be 2-channel (left, right); any sample rate is resampled to 16 kHz. Lengths may
differ by at most 1% of the ground truth's (both are then trimmed to the shorter); a larger
difference is an error. Every file is loaded and checked before any metric is computed, and every
problem is an `EvaluationError` whose message names the file (or clip) and the problem.

Every clip is also scored for the mono-mono baseline, L̂ = R̂ = m = (L + R) / 2 of the ground
truth (SPEC section 1). Scores use the float64 numpy reference of `keras_binaural.metrics`.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from keras_binaural import files, metrics
from keras_binaural.audio import AudioError, load_audio
from keras_binaural.audio.io import AUDIO_EXTENSIONS
from keras_binaural.evaluation import MONO_MONO, EvaluationError, metric_title, mono_mono

MAX_LENGTH_MISMATCH = 0.01  # as a fraction of the ground truth's length
SYSTEMS = ("pred", MONO_MONO)


@dataclasses.dataclass(frozen=True)
class ClipPair:
    """One clip to score: its name and the paths of its prediction and ground truth."""

    name: str
    pred_path: str
    gt_path: str


def find_pairs(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    pred_name: str | None = None,
    gt_name: str | None = None,
) -> list[ClipPair]:
    """Pairs predictions with ground truths (layouts in the module docstring), sorted by name.

    Raises:
      EvaluationError: a missing directory, no prediction found, or a prediction whose ground
        truth does not exist.
    """
    pred_dir, gt_dir = os.fspath(pred_dir), os.fspath(gt_dir)
    for label, folder in (("prediction", pred_dir), ("ground-truth", gt_dir)):
        if not os.path.isdir(folder):
            raise EvaluationError(f"{folder}: {label} directory does not exist")
    if gt_name is not None and pred_name is None:
        raise EvaluationError("a ground-truth file name needs a prediction file name too")

    pairs = []
    for relative in _files_under(pred_dir):
        if pred_name is None:
            if not relative.lower().endswith(AUDIO_EXTENSIONS):
                continue
            name, gt_relative = relative, relative
        else:
            folder, file_name = os.path.split(relative)
            if file_name != pred_name:
                continue
            name = folder or os.path.basename(os.path.abspath(pred_dir))
            gt_relative = os.path.join(folder, gt_name or pred_name)
        pred_path = os.path.join(pred_dir, relative)
        gt_path = os.path.join(gt_dir, gt_relative)
        if not os.path.isfile(gt_path):
            raise EvaluationError(f"{pred_path}: no ground truth for this prediction ({gt_path})")
        pairs.append(ClipPair(name.replace(os.sep, "/"), pred_path, gt_path))

    if not pairs:
        wanted = f"files named {pred_name}" if pred_name else "audio files"
        raise EvaluationError(f"{pred_dir}: no predictions to evaluate (no {wanted} found)")
    return sorted(pairs, key=lambda pair: pair.name)


def load_pair(pair: ClipPair) -> tuple[np.ndarray, np.ndarray]:
    """Loads and checks one clip; returns (ground truth, prediction), each `[time, 2]` float32.

    Raises:
      EvaluationError: unreadable, truncated, empty, mono or NaN/Inf file; lengths differing by
        more than 1%; a clip shorter than the metrics' 257 samples.
    """
    try:
        gt = load_audio(pair.gt_path, channels=2)
        pred = load_audio(pair.pred_path, channels=2)
    except AudioError as error:
        raise EvaluationError(str(error)) from error
    gt_samples, pred_samples = len(gt), len(pred)
    if abs(gt_samples - pred_samples) > MAX_LENGTH_MISMATCH * gt_samples:
        raise EvaluationError(
            f"clip {pair.name}: prediction {pair.pred_path} has {pred_samples} samples, ground "
            f"truth {pair.gt_path} has {gt_samples} (more than 1% apart)"
        )
    num_samples = min(gt_samples, pred_samples)
    if num_samples < metrics.MIN_SAMPLES:
        raise EvaluationError(
            f"clip {pair.name}: {num_samples} samples, the metrics need at least "
            f"{metrics.MIN_SAMPLES} ({pair.gt_path})"
        )
    return gt[:num_samples], pred[:num_samples]


def evaluate_pairs(pairs: list[ClipPair], normalize: bool = False) -> dict:
    """Scores every pair and the mono-mono baseline; loads and checks all files first.

    Returns:
      {"clips": {name: {"pred": scores, "mono_mono": scores}},
       "mean": {"pred": scores, "mono_mono": scores}}, scores = {"stft", "env", "wav", "amp",
      "pha", "snr"} -> float; the means are over clips.
    """
    loaded = [(pair.name, *load_pair(pair)) for pair in pairs]
    clips = {}
    for name, gt, pred in loaded:
        clips[name] = {
            "pred": metrics.evaluate_clip_numpy(gt, pred, normalize),
            MONO_MONO: metrics.evaluate_clip_numpy(gt, mono_mono(gt), normalize),
        }
    mean = {
        system: {
            metric: float(np.mean([scores[system][metric] for scores in clips.values()]))
            for metric in metrics.METRIC_NAMES
        }
        for system in SYSTEMS
    }
    return {"clips": clips, "mean": mean}


def format_markdown(results: dict, normalize: bool = False) -> str:
    """A Markdown table of `evaluate_pairs`' results: one row per clip and system, then means."""
    header = ["clip", "system"] + [metric_title(name) for name in metrics.METRIC_NAMES]
    lines = [
        "# Binaural quality (FAIR-Play metrics, supp. Eq. 4-9)",
        "",
        (
            f"{len(results['clips'])} clips; peak normalisation: {'on' if normalize else 'off'}; "
            "mono_mono is the baseline L = R = (L + R) / 2 of the ground truth."
        ),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * len(metrics.METRIC_NAMES)) + "|",
    ]
    rows = [(name, scores) for name, scores in results["clips"].items()]
    rows.append(("**mean**", results["mean"]))
    for name, scores in rows:
        for system in SYSTEMS:
            values = [f"{scores[system][metric]:.4f}" for metric in metrics.METRIC_NAMES]
            lines.append("| " + " | ".join([name, system] + values) + " |")
    return "\n".join(lines) + "\n"


def run_evaluation(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    output_json: str | os.PathLike,
    output_md: str | os.PathLike | None = None,
    normalize: bool = False,
    pred_name: str | None = None,
    gt_name: str | None = None,
) -> dict:
    """Pairs, loads, checks and scores the clips, then writes the JSON (and Markdown) reports.

    The output paths are checked first (`files.check_output`: folder, permission, space), the
    input files before any scoring; the reports are written together or not at all (one
    `files.transaction`: a full disk leaves neither), and what a killed run left is removed.

    Args:
      pred_dir, gt_dir, pred_name, gt_name: see `find_pairs` and the module docstring.
      output_json: the results of `evaluate_pairs` as JSON.
      output_md: optional, the same as a Markdown table (`format_markdown`).
      normalize: divide each signal by its peak |sample| before scoring.

    Returns:
      The results of `evaluate_pairs`.

    Raises:
      EvaluationError: any problem with the inputs or the outputs (also while writing them),
        naming the file or flag.
    """
    outputs = {"--output_json": output_json, "--output_md": output_md}
    outputs = {flag: os.fspath(path) for flag, path in outputs.items() if path is not None}
    for flag, path in outputs.items():
        files.check_output(path, flag, error=EvaluationError)
    pairs = find_pairs(pred_dir, gt_dir, pred_name, gt_name)
    for flag, path in outputs.items():  # the reports take about 1 kB a clip
        files.check_output(path, flag, error=EvaluationError, needed_bytes=1024 * len(pairs))
        files.remove_temporaries(os.path.dirname(os.path.abspath(path)), names=[path])
    results = evaluate_pairs(pairs, normalize)
    texts = {output_json: json.dumps(results, indent=2, allow_nan=False) + "\n"}
    if output_md is not None:
        texts[output_md] = format_markdown(results, normalize)
    try:
        with files.transaction() as transaction:
            for path, text in texts.items():
                with open(transaction.file(path), "w", encoding="utf-8") as stream:
                    stream.write(text)
    except files.OutputError as error:
        raise EvaluationError(str(error)) from error
    return results


def _files_under(folder: str) -> list[str]:
    """Relative paths of the files under `folder`, recursively, skipping hidden ones."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        for name in names:
            if not name.startswith("."):
                found.append(os.path.relpath(os.path.join(root, name), folder))
    return sorted(found)
