"""Evaluation of trained models on a dataset split: supp. Table 1 and 2, and supp. Fig. 1-5 analogues.

The library behind `tools/evaluate.py`. `run(...)` loads a trained model (a `.keras` file or a
`tools/train.py` workdir) and any baseline models, checks everything, then scores the split:

- **Table 1** (localization, supp. Eq. 10-11), for every model that holds a localizer (a
  `LocalizationModel`, or a model with one as its `localizer` attribute):
  `keras_binaural.evaluation.localization.evaluate_localization` over every 0.1 s window of every
  clip (distance, accuracy, and on synthetic clips the pointing game).
- **Table 2** (binaural quality, supp. Eq. 4-9), for every model that generates: whole clips,
  generated with the fast sampler (or `sampler="full"`) from the clip's mono m = (L + R) / 2 and
  its 10 fps frames, scored with the six metrics (numpy reference, `metrics.evaluate_clip_numpy`);
  the mono-mono row (L = R = m) always comes first.

Frames are prepared as each model was trained (resize and central crop from the `config.json`
of its run, beside the `.keras` file); the dataset root, split and evaluation settings come from
the main model's config.json unless given.

Outputs in `output_dir`, written together or not at all (one `files.transaction`; the folder is
checked before any model is loaded, the dataset's WAV headers and PNG signatures too):

    results.json   {"model": {...}, "baselines": {...}, "dataset": {...}, "settings": {...},
                    "table1": {name: {"distance", "accuracy", "num_windows", ...}},
                    "table2": {"systems": [...], "clips": {clip_id: {system: scores}},
                               "mean": {system: scores},
                               "groups": {"clips": {group: [clip_id]},
                                          "mean": {group: {system: scores}}}},
                    "plots": [relative paths]}      scores: stft, env, wav, amp, pha, snr
    results.md     the two tables (and links to the plots)
    plots/         with `plots=True` (supp. Fig. 1-5 analogues, PNG):
      correlation_<model>.png    audio x frame correlation matrix (Fig. 1-2), per localizer
      maps_<model>.png           localization maps over frames, object boxes (Fig. 5)
      spectrograms.png           differential spectrograms |STFT(d)|, ground truth and each
                                 generating system, a few clips (Fig. 3)
      envelopes.png              Hilbert envelopes of the left and right channels, ground truth
                                 and each system, a few clips (Fig. 4)

Every problem found before scoring is an `EvaluationError` with a one-line message naming the flag
or file.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from collections.abc import Callable, Sequence

import keras
import ml_collections
import numpy as np

from keras_binaural import cli, files, metrics, runs
from keras_binaural.conventions import FRAMES_PER_SECOND, PRIOR_SAMPLERS, SAMPLERS
from keras_binaural.data import fairplay
from keras_binaural.evaluation import MONO_MONO, EvaluationError, metric_title, mono_mono, plots
from keras_binaural.evaluation import localization as localization_eval
from keras_binaural.models.localization import LocalizationModel
from keras_binaural.runs import CONFIG_FILE, DEFAULT_CROP_HW, DEFAULT_RESIZE_HW

PLOTS_DIR = "plots"


@dataclasses.dataclass
class System:
    """A model to evaluate: its name, file, loaded model and how its frames are prepared."""

    name: str
    path: str
    model: keras.Model
    config: ml_collections.ConfigDict | None
    resize_hw: tuple[int, int]
    crop_hw: tuple[int, int]

    @property
    def localizer(self) -> LocalizationModel | None:
        return localizer_of(self.model)

    @property
    def generates(self) -> bool:
        return callable(getattr(self.model, "generate", None))


# === Models ===


def localizer_of(model: keras.Model) -> LocalizationModel | None:
    """The model's localizer: the model itself or its `localizer` attribute, else None."""
    if isinstance(model, LocalizationModel):
        return model
    inner = getattr(model, "localizer", None)
    return inner if isinstance(inner, LocalizationModel) else None


def make_system(name: str, path: str, flag: str) -> System:
    """Loads and describes one model to evaluate (`path`: a .keras file or a workdir)."""
    model_path = runs.resolve_model_path(path, flag, EvaluationError)
    config = runs.run_config(model_path, EvaluationError)
    model = runs.load_model(model_path, flag, EvaluationError)
    geometry = runs.frame_geometry(model_path, error=EvaluationError)
    system = System(name, model_path, model, config, geometry.resize_hw, geometry.crop_hw)
    if system.localizer is None and not system.generates:
        raise EvaluationError(f"{flag}={path}: the model neither localizes nor generates "
                              f"({type(model).__name__})")
    return system


def parse_baselines(specs: Sequence[str]) -> list[tuple[str, str]]:
    """`NAME=PATH` strings -> [(name, path)], names unique and not "mono_mono".

    Raises:
      EvaluationError: a malformed or repeated spec.
    """
    parsed, names = [], set()
    for spec in specs:
        name, sep, path = spec.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise EvaluationError(f"--baseline={spec}: expected NAME=PATH, e.g. "
                                  "audio_only=runs/demo_audio_only/model.keras")
        if name == MONO_MONO or name in names:
            raise EvaluationError(f"--baseline={spec}: the name {name!r} is "
                                  f"{'reserved' if name == MONO_MONO else 'used twice'}")
        names.add(name)
        parsed.append((name, path))
    return parsed


# === Generation and scores ===


def generate_clip(model: keras.Model, mono: np.ndarray, frames: np.ndarray, sampler: str,
                  seed: int) -> np.ndarray:
    """Binaural audio of one whole clip from its mono and frames.

    Args:
      model: a model with `generate(mono [batch, time], frames [batch, num_frames, H, W, 3],
        sampler=, seed=)` returning binaural `[batch, time, 2]` (Eq. 3).
      mono: `[time]` float32 at 16 kHz.
      frames: `[num_frames, H, W, 3]` float32 in [0, 1], 10 fps.

    Returns:
      `[time, 2]` float32 (left, right).
    """
    options = {"sampler": sampler, "seed": seed}
    if "progress" in inspect.signature(model.generate).parameters:
        options["progress"] = False  # the caller shows progress over clips
    output = model.generate(mono[None], frames[None], **options)
    if isinstance(output, dict):
        output = output["binaural"]
    binaural = np.asarray(keras.ops.convert_to_numpy(output), np.float32)[0]
    if binaural.shape != (len(mono), 2):
        raise EvaluationError(f"{type(model).__name__}.generate returned shape {binaural.shape} "
                              f"for a clip of {len(mono)} samples; expected ({len(mono)}, 2)")
    return binaural


def sampler_of(model: keras.Model, sampler: str) -> str:
    """The sampler `model` is scored with: `sampler`, but "fast" for "prior" and "refine" when the
    model has no spatial prior (the audio-only upmixer beside CLUP)."""
    if sampler in PRIOR_SAMPLERS and getattr(model, "prior", None) is None:
        return "fast"
    return sampler


SCORE_NAMES = (*metrics.METRIC_NAMES, "d_corr")  # Table 2's columns


def clip_scores(binaural: np.ndarray, predicted: np.ndarray, normalize: bool) -> dict:
    """The six metrics of a clip and the correlation of its differential with the truth."""
    return {**metrics.evaluate_clip_numpy(binaural, predicted, normalize),
            "d_corr": metrics.diff_correlation_numpy(binaural, predicted)}


def _mean_scores(clips: dict, systems: Sequence[str]) -> dict:
    return {system: {name: float(np.mean([scores[system][name] for scores in clips.values()]))
                     for name in SCORE_NAMES} for system in systems}


def _progress(iterable, total: int, description: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=description, unit="clip")


def quality_table(systems: Sequence[System], clips: Sequence[fairplay.Clip], sampler: str,
                  seed: int, normalize: bool = False, keep_clips: int = 0,
                  progress: bool = True) -> tuple[dict, dict]:
    """Supp. Table 2: the six metrics per clip and system, and their means over clips, with the
    correlation of the generated differential with the true one (`d_corr`: 0 for mono-mono,
    whether a system learnt the direction at all).

    Returns:
      (table, kept): table = {"systems": [mono_mono, names...], "clips": {id: {system: scores}},
      "mean": {system: scores}}; kept = {clip_id: {"binaural": gt, system: prediction}} `[time,
      2]` for the first `keep_clips` clips (for the plots).
    """
    generating = [s for s in systems if s.generates]
    table_clips: dict[str, dict] = {}
    kept: dict[str, dict] = {}
    by_frames: dict[tuple, list[System]] = {}
    for system in generating:
        by_frames.setdefault((system.resize_hw, system.crop_hw), []).append(system)
    # The ground truth and mono-mono once, from the first frame preparation (frames unused).
    frame_sets = list(by_frames) or [(DEFAULT_RESIZE_HW, DEFAULT_CROP_HW)]
    for index, (resize_hw, crop_hw) in enumerate(frame_sets):
        dataset = fairplay.evaluation_dataset(list(clips), resize_hw, crop_hw)
        names = ", ".join(s.name for s in by_frames.get((resize_hw, crop_hw), [])) or MONO_MONO
        for position, example in enumerate(_progress(dataset, len(clips), names, progress)):
            clip_id = example["clip_id"].numpy().decode()
            binaural = example["binaural"].numpy()
            scores = table_clips.setdefault(clip_id, {})
            keep = position < keep_clips
            if keep:
                kept.setdefault(clip_id, {}).update(binaural=binaural,
                                                    **{MONO_MONO: mono_mono(binaural)})
            if index == 0:
                scores[MONO_MONO] = clip_scores(binaural, mono_mono(binaural), normalize)
            for system in by_frames.get((resize_hw, crop_hw), []):
                predicted = generate_clip(system.model, example["mono"].numpy(),
                                          example["frames"].numpy(),
                                          sampler_of(system.model, sampler), seed)
                scores[system.name] = clip_scores(binaural, predicted, normalize)
                if keep:
                    kept[clip_id][system.name] = predicted
    names = [MONO_MONO] + [s.name for s in generating]
    ordered = {clip.clip_id: {name: table_clips[clip.clip_id][name] for name in names}
               for clip in clips}
    return {"systems": names, "clips": ordered, "mean": _mean_scores(ordered, names)}, kept


def scene_groups(clips: Sequence[fairplay.Clip]) -> dict[str, list[str]]:
    """The clips of a synthetic split by what their scenes hold: {"1 sounding object": ids,
    "2 sounding objects": ..., "sources moving": ids, "sources static": ids}, each group with at
    least one clip ("moving": a sounding object changes azimuth). {} when a clip has no metadata
    (FAIR-Play) or the split holds one kind of scene only."""
    groups: dict[str, list[str]] = {}
    for clip in clips:
        metadata = localization_eval.load_metadata(clip)
        if metadata is None:
            return {}
        sounding = sum(o["sounding"] for o in metadata["objects"])
        count = f"{sounding} sounding object{'s' if sounding > 1 else ''}"
        moving = ("sources moving" if localization_eval.sources_move(metadata)
                  else "sources static")
        for group in (count, moving):
            groups.setdefault(group, []).append(clip.clip_id)
    counts = sorted(g for g in groups if g[0].isdigit())
    kinds = [g for g in ("sources static", "sources moving") if g in groups]
    return {g: groups[g] for g in (counts if len(counts) > 1 else []) +
            (kinds if len(kinds) > 1 else [])}


def group_means(table: dict, groups: dict[str, list[str]]) -> dict:
    """Table 2's means over each group of `scene_groups`: {group: {system: scores}}."""
    return {group: _mean_scores({i: table["clips"][i] for i in ids}, table["systems"])
            for group, ids in groups.items()}


def localization_table(systems: Sequence[System], clips: Sequence[fairplay.Clip], seed: int,
                       negative_pool_size: int) -> dict:
    """Supp. Table 1 for every system with a localizer: {name: evaluate_localization(...)}."""
    return {system.name: localization_eval.evaluate_localization(
        system.localizer, clips, system.resize_hw, system.crop_hw, seed=seed,
        negative_pool_size=negative_pool_size) for system in systems if system.localizer}


# === Plots (evaluation.plots) ===


def _map_times(clips: Sequence[fairplay.Clip], count: int = 4) -> list[float]:
    """`count` evenly spread times (s) inside the shortest clip."""
    seconds = min(clip.num_frames for clip in clips) / FRAMES_PER_SECOND
    return [round(seconds * (k + 0.5) / count, 2) for k in range(count)]


def draw_plots(systems: Sequence[System], clips: Sequence[fairplay.Clip], kept: dict,
               quality_systems: Sequence[str], folder: str, config: ml_collections.ConfigDict
               ) -> list[str]:
    """Writes the PNGs (module docstring) into `folder` (`run` passes a temporary folder that
    becomes `output_dir/plots`); returns their paths relative to `output_dir`."""
    written = []
    for system in systems:
        if system.localizer is None:
            continue
        count = min(config.correlation_clips, len(clips))
        windows = localization_eval.centre_windows(clips, system.resize_hw, system.crop_hw,
                                                   num_clips=count, seed=config.seed)
        matrix = localization_eval.correlation_matrix(system.localizer, windows["mono_patch"],
                                                      windows["frame"])
        name = f"correlation_{system.name}.png"
        plots.plot_correlation_matrix(
            matrix["correlation"], os.path.join(folder, name),
            title=f"{system.name}: audio-visual correlation (supp. Fig. 1-2)",
            labels=windows["clip_id"])
        written.append(name)
        times = _map_times(clips)
        panels = localization_eval.localization_panels(
            system.localizer, clips, system.resize_hw, system.crop_hw,
            num_clips=min(config.plot_clips, len(clips)), times_s=times, seed=config.seed)
        name = f"maps_{system.name}.png"
        plots.plot_localization_maps(
            panels["frames"], panels["maps"], os.path.join(folder, name), titles=panels["titles"],
            boxes=panels["boxes"], peaks=panels["peaks"], columns=len(times))
        written.append(name)
    drawn = [name for name in quality_systems if name != MONO_MONO]
    if kept and drawn:
        plots.plot_differential_spectrograms(kept, drawn,
                                             os.path.join(folder, "spectrograms.png"))
        plots.plot_envelopes(kept, [MONO_MONO, *drawn], os.path.join(folder, "envelopes.png"))
        written += ["spectrograms.png", "envelopes.png"]
    return [f"{PLOTS_DIR}/{name}" for name in written]


# === Reports ===


def _with_interval(row: dict, key: str, scale: float, number: str) -> str:
    """row[key] scaled and formatted, with its interval (row[key + "_interval"]) if it has one."""
    text = number.format(scale * row[key])
    if f"{key}_interval" in row:
        low, high = row[f"{key}_interval"]
        text += f" ({number.format(scale * low)}–{number.format(scale * high)})"
    return text


def format_markdown(results: dict) -> str:
    """The report: Table 1 and Table 2 as Markdown tables, then the plots."""
    dataset, settings = results["dataset"], results["settings"]
    lines = [
        f"# Evaluation of {results['model']['name']}",
        "",
        (f"{dataset['root']} ({dataset['split']}/{dataset['subset']}, {len(dataset['clips'])} "
         f"clips); sampler {settings['sampler']}"
         f"{' (fast for models without one)' if settings['sampler'] in PRIOR_SAMPLERS else ''}"
         f", seed {settings['seed']}, peak normalisation "
         f"{'on' if settings['normalize'] else 'off'}."),
        "",
        "## Table 1: sounding-object localization (supp. Eq. 10-11)",
        "",
    ]
    table1 = results["table1"]
    if table1:
        pointing = any("pointing_clip_hit_rate" in row for row in table1.values())
        header = ["model", "distance ↓", "accuracy (%) ↑"] + (
            ["pointing, windows (%) ↑", "pointing, clips (%) ↑", "pointing, columns (%) ↑"]
            if pointing else []) + ["windows"]
        lines += ["| " + " | ".join(header) + " |",
                  "|---|" + "---:|" * (len(header) - 1)]
        for name, row in table1.items():
            cells = [name, _with_interval(row, "distance", 1, "{:.4f}"),
                     _with_interval(row, "accuracy", 100, "{:.1f}")]
            if pointing:
                cells += [f"{100 * row.get(key, float('nan')):.1f}" for key in (
                    "pointing_window_hit_rate", "pointing_clip_hit_rate",
                    "pointing_column_hit_rate")]
            lines.append("| " + " | ".join(cells + [str(row["num_windows"])]) + " |")
        lines += ["", "In brackets: 95 % intervals with whole clips drawn again (`clip_interval`)."]
    else:
        lines.append("No model with a localizer.")
    lines += ["", "## Table 2: binaural audio quality (supp. Eq. 4-9), whole clips", ""]
    table2 = results["table2"]
    header = ["system"] + [metric_title(name) for name in metrics.METRIC_NAMES] + ["d corr. ↑"]
    lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name in table2["systems"]:
        values = [f"{table2['mean'][name].get(metric, float('nan')):.4f}"
                  for metric in SCORE_NAMES]
        lines.append("| " + " | ".join([name] + values) + " |")
    lines += ["", (f"Means over {len(table2['clips'])} clips; mono_mono is L = R = (L + R) / 2 "
                   "of the ground truth; d corr. is the correlation of the generated differential "
                   "(L - R) / 2 with the true one (0: no direction, < 0: the wrong side). Per-clip "
                   "scores are in results.json.")]
    if "groups" in table2:
        lines += ["", "### Table 2 by scene", "",
                  "| scenes | clips | system | STFT ↓ | ENV ↓ | SNR (dB) ↑ | d corr. ↑ |",
                  "|---|---:|---|---:|---:|---:|---:|"]
        for group, means in table2["groups"]["mean"].items():
            count = len(table2["groups"]["clips"][group])
            for name in table2["systems"]:
                values = [f"{means[name][metric]:.4f}" for metric in ("stft", "env", "snr",
                                                                        "d_corr")]
                lines.append("| " + " | ".join([group, str(count), name] + values) + " |")
    if results["plots"]:
        lines += ["", "## Plots", ""]
        lines += [f"![{os.path.basename(path)}]({path})" for path in results["plots"]]
    return "\n".join(lines) + "\n"


def run(
    model: str,
    output_dir: str | None = None,
    baselines: Sequence[str] = (),
    root: str | None = None,
    split: str | None = None,
    subset: str = "test",
    sampler: str | None = None,
    seed: int | None = None,
    max_clips: int | None = None,
    normalize: bool | None = None,
    plots: bool = False,
    name: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Evaluates `model` (and `baselines`) on a split; writes results.json, results.md, plots.

    Args:
      model: a `.keras` file or a tools/train.py workdir.
      output_dir: where to write (default: `<model's folder>/eval_<subset>`).
      baselines: "NAME=PATH" strings, each a model evaluated beside it.
      root, split: the dataset (default: the model's run config, `data.root`, `data.split`).
      subset: "test", "val" or "train".
      sampler, seed, max_clips, normalize: default from the run config's `eval` section
        ("fast", 0, all clips, off).
      plots: draw the PNGs.
      name: the model's name in the tables (default: the run config's `name`, else "model").
      progress: show progress bars.
      log: called with one line per stage (e.g. `print`).

    Returns:
      The results dict written to results.json.

    Raises:
      EvaluationError: a bad flag, model file, dataset (a truncated or corrupt WAV or PNG too) or
        output folder (not writable, too little space), checked before scoring.
      files.OutputError: the outputs could not be written (a full disk); nothing was written.
    """
    say = log or (lambda line: None)
    # Everything cheap is checked before any model is loaded.
    main_path = runs.resolve_model_path(model, "--model", EvaluationError)
    config = runs.run_config(main_path, EvaluationError)
    evaluation = config.eval if config is not None and "eval" in config else None

    def setting(value, key, default):
        if value is not None:
            return value
        return evaluation[key] if evaluation is not None and key in evaluation else default

    if name is None:
        name = str(config.name) if config is not None and "name" in config else "model"
    sampler = setting(sampler, "sampler", "fast")
    seed = int(setting(seed, "seed", 0))
    max_clips = int(setting(max_clips, "max_clips", 0))
    normalize = bool(setting(normalize, "normalize", False))
    if sampler not in SAMPLERS:
        raise EvaluationError(f"--sampler={sampler}: must be one of {', '.join(SAMPLERS)}")
    if root is None:
        if config is None:
            raise EvaluationError(f"--root: not given, and {main_path} has no {CONFIG_FILE} "
                                  "beside it to take the dataset from")
        root = config.data.root
    split = split or (config.data.split if config is not None else "split1")
    output_dir = output_dir or os.path.join(os.path.dirname(main_path), f"eval_{subset}")
    files.check_output(output_dir, "--output_dir", folder=True, error=EvaluationError)
    baseline_paths = parse_baselines(baselines)
    for baseline_name, path in baseline_paths:
        if baseline_name == name:
            raise EvaluationError(f"--baseline={baseline_name}={path}: the name is the model's "
                                  "(--name); choose another")
        runs.resolve_model_path(path, "--baseline", EvaluationError)
    if not os.path.isdir(root):
        raise EvaluationError(f"--root={root}: no such directory (a FAIR-Play-layout dataset)")
    try:
        clips = fairplay.list_clips(root, subset, split)
    except fairplay.DatasetError as error:
        raise EvaluationError(f"--root={root}: {cli.one_line(error)}") from error
    if max_clips > 0:
        clips = clips[:max_clips]
    try:
        fairplay.check_files(clips)  # headers and signatures, in seconds
    except fairplay.DatasetError as error:
        raise EvaluationError(f"{split}/{subset}: {error}") from None
    # The reports take about 2 kB a clip, the plots a few MB.
    files.check_output(output_dir, "--output_dir", folder=True, error=EvaluationError,
                       needed_bytes=2048 * len(clips) + (20_000_000 if plots else 0))
    for folder in (output_dir, os.path.join(output_dir, PLOTS_DIR)):
        files.remove_temporaries(folder)  # what a killed evaluation left

    # The baselines, then the model (the supplement's row order).
    systems = [make_system(n, path, "--baseline") for n, path in baseline_paths]
    systems.append(make_system(name, main_path, "--model"))
    main = systems[-1]
    if any(s.localizer is not None for s in systems) and len(clips) < 2:
        raise EvaluationError(f"--root={root}: {split}/{subset} has {len(clips)} clip(s); the "
                              "localization table needs at least 2 (negatives from other clips)")

    plot_settings = ml_collections.ConfigDict({
        "correlation_clips": int(setting(None, "correlation_clips", 10)),
        "plot_clips": int(setting(None, "plot_clips", 3)), "seed": seed})
    say(f"evaluating {', '.join(s.name for s in systems)} on {len(clips)} clips of {root} "
        f"({split}/{subset})")
    table1 = {}
    if any(s.localizer is not None for s in systems):
        say("table 1: localization over every 0.1 s window")
        table1 = localization_table(systems, clips, seed,
                                    int(setting(None, "negative_pool_size", 256)))
    say(f"table 2: binaural quality, {sampler} sampler")
    table2, kept = quality_table(systems, clips, sampler, seed, normalize,
                                 keep_clips=plot_settings.plot_clips if plots else 0,
                                 progress=progress)
    groups = scene_groups(clips)
    if groups:
        table2["groups"] = {"clips": groups, "mean": group_means(table2, groups)}
    with files.transaction() as outputs:  # results.json, results.md and plots/ appear together
        written = []
        if plots:
            say("plots")
            written = draw_plots(systems, clips, kept, table2["systems"],
                                 outputs.directory(os.path.join(output_dir, PLOTS_DIR)),
                                 plot_settings)
        results = _results(main, systems, root, split, subset, clips, sampler, seed, normalize,
                           table1, table2, written)
        texts = {"results.json": json.dumps(results, indent=1, allow_nan=False) + "\n",
                 "results.md": format_markdown(results)}
        for name, text in texts.items():
            with open(outputs.file(os.path.join(output_dir, name)), "w",
                      encoding="utf-8") as stream:
                stream.write(text)
    return results


def _results(main, systems, root, split, subset, clips, sampler, seed, normalize, table1,
             table2, written) -> dict:
    """The dict results.json holds (module docstring)."""
    return {
        "model": _describe(main),
        "baselines": {s.name: _describe(s) for s in systems[:-1]},
        "dataset": {"root": root, "split": split, "subset": subset,
                    "clips": [clip.clip_id for clip in clips]},
        "settings": {"sampler": sampler, "seed": seed, "normalize": normalize},
        "table1": table1,
        "table2": table2,
        "plots": written,
    }


def _describe(system: System) -> dict:
    config = system.config
    return {"name": system.name, "path": system.path, "class": type(system.model).__name__,
            "variant": str(config.variant) if config is not None and "variant" in config else None,
            "localizes": system.localizer is not None, "generates": system.generates}
