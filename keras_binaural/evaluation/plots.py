"""The evaluation's figures (supp. Fig. 1-5 analogues), as PNG files.

- `plot_correlation_matrix` (supp. Fig. 1-2): the audio x frame correlation matrix of a localizer
  (`evaluation.localization.correlation_matrix`), an annotated heat map.
- `plot_localization_maps` (supp. Fig. 5): frames with their localization maps and object boxes.
- `plot_differential_spectrograms` (supp. Fig. 3): |STFT(d)| of the ground truth and each system.
- `plot_envelopes` (supp. Fig. 4): Hilbert envelopes of the left and right channels.

Plots use matplotlib's object-oriented API on the Agg canvas (no display, no global state) and
are written atomically (`save_png`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from keras_binaural import files, metrics
from keras_binaural.conventions import SAMPLE_RATE_HZ


def new_figure(width_in: float, height_in: float, constrained: bool = False):
    """A matplotlib `Figure` on its own Agg canvas (`constrained`: constrained layout)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=100,
                    layout="constrained" if constrained else None)
    FigureCanvasAgg(figure)
    return figure


def save_png(figure, path: str | os.PathLike, tight: bool = False) -> None:
    """Writes `figure` to `path` as a PNG, atomically (`tight`: a tight bounding box)."""
    with files.atomic_file(path) as temporary:
        figure.savefig(temporary, format="png", **({"bbox_inches": "tight"} if tight else {}))


# === Localization (supp. Fig. 1-2, 5) ===


def plot_correlation_matrix(correlation, path: str | os.PathLike, title: str = "",
                            labels: Sequence[str] | None = None) -> None:
    """Draws an audio-visual correlation matrix (supp. Fig. 1-2) as an annotated heat map PNG.

    Args:
      correlation: `[n, n]` in [0, 1] (`correlation_matrix(...)["correlation"]`); rows audio,
        columns frames.
      path: the PNG to write.
      title: the figure's title.
      labels: optional clip names for the axes.
    """
    correlation = np.asarray(correlation)
    n = len(correlation)
    figure = new_figure(0.55 * n + 2.0, 0.55 * n + 1.2)
    axes = figure.add_subplot()
    image = axes.imshow(correlation, vmin=0.0, vmax=1.0, cmap="viridis")
    for i in range(n):
        for j in range(n):
            value = correlation[i, j]
            axes.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="black" if value > 0.6 else "white")
    ticks = np.arange(n)
    axes.set_xticks(ticks, labels if labels is not None else [str(t + 1) for t in ticks],
                    rotation=90 if labels is not None else 0, fontsize=7)
    axes.set_yticks(ticks, labels if labels is not None else [str(t + 1) for t in ticks],
                    fontsize=7)
    axes.set_xlabel("frame of clip j")
    axes.set_ylabel("audio of clip i")
    axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="correlation = 1 - D")
    save_png(figure, path, tight=True)


def plot_localization_maps(frames, maps, path: str | os.PathLike,
                           titles: Sequence[str] | None = None, boxes=None, peaks=None,
                           columns: int = 4, alpha: float = 0.5) -> None:
    """Frames with their localization maps overlaid (supp. Fig. 5), one panel each, as a PNG.

    Args:
      frames: `[n, H, W, 3]` float in [0, 1].
      maps: `[n, H, W]` (e.g. `model.localize`); each is scaled to [0, 1] for display.
      path: the PNG to write.
      titles: optional panel titles.
      boxes: optional per panel a list of (box [x0, y0, x1, y1] in the panel's pixels, sounding
        bool): sounding boxes are drawn solid white, silent ones dashed red.
      peaks: optional `[n, 2]` (row, column) peaks (`map_peaks`), marked with a cross.
      columns: panels per row.
      alpha: opacity of the map.
    """
    from matplotlib.patches import Rectangle

    frames, maps = np.asarray(frames), np.asarray(maps)
    n = len(frames)
    rows = (n + columns - 1) // columns
    height, width = frames.shape[1:3]
    panel = 2.6
    figure = new_figure(panel * min(n, columns), panel * rows * height / width + 0.3 * rows)
    for index in range(n):
        axes = figure.add_subplot(rows, min(n, columns), index + 1)
        axes.imshow(np.clip(frames[index], 0.0, 1.0))
        shown = maps[index] - maps[index].min()
        shown = shown / max(float(shown.max()), 1e-12)
        axes.imshow(shown, cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
        if peaks is not None:
            axes.plot(peaks[index][1], peaks[index][0], marker="+", color="white",
                      markersize=10, mew=2)
        for box, sounding in (boxes[index] if boxes is not None else []):
            x0, y0, x1, y1 = box
            axes.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                     edgecolor="white" if sounding else "red",
                                     linestyle="-" if sounding else "--", linewidth=1.2))
        axes.set_axis_off()
        if titles is not None:
            axes.set_title(titles[index], fontsize=7)
    save_png(figure, path, tight=True)


# === Binaural audio (supp. Fig. 3-4) ===


def differential_db(binaural: np.ndarray) -> np.ndarray:
    """|STFT(d)| in dB of d = (L - R) / 2: `[time, 2]` -> `[frames, 257]` (floor -100 dB)."""
    diff = (binaural[:, 0] - binaural[:, 1]) / 2.0
    return 20.0 * np.log10(np.abs(metrics.stft_numpy(diff)) + 1e-5)


def plot_differential_spectrograms(kept: dict, systems: Sequence[str], path: str,
                                   sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """Supp. Fig. 3 analogue: |STFT(d)| of the ground truth and each system, one row per clip.

    Args:
      kept: {clip_id: {"binaural": `[time, 2]`, system: `[time, 2]`}} (`quality_table`).
      systems: the systems to draw (columns after the ground truth), mono-mono excluded (its d
        is 0).
      path: the PNG to write.
    """
    columns = ["ground truth", *systems]
    figure = new_figure(3.2 * len(columns), 2.4 * len(kept) + 0.4, constrained=True)
    for row, (clip_id, signals) in enumerate(kept.items()):
        images = [differential_db(signals["binaural"])] + [
            differential_db(signals[name]) for name in systems]
        top = max(float(np.max(image)) for image in images)
        for column, (title, image) in enumerate(zip(columns, images)):
            axes = figure.add_subplot(len(kept), len(columns), row * len(columns) + column + 1)
            seconds = image.shape[0] * metrics.HOP_SAMPLES / sample_rate_hz
            shown = axes.imshow(image.T, origin="lower", aspect="auto", cmap="magma",
                                vmin=top - 80.0, vmax=top,
                                extent=(0.0, seconds, 0.0, sample_rate_hz / 2000.0))
            axes.set_title(f"{clip_id}: {title}", fontsize=8)
            axes.tick_params(labelsize=7)
            if column == 0:
                axes.set_ylabel("kHz", fontsize=7)
            if row == len(kept) - 1:
                axes.set_xlabel("s", fontsize=7)
        figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04, label="dB")
    figure.suptitle("Differential d = (L - R) / 2: |STFT| (supp. Fig. 3)", fontsize=9)
    save_png(figure, path)


def _block_max(envelope: np.ndarray, points: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    block = max(1, len(envelope) // points)
    usable = len(envelope) // block * block
    return np.arange(0, usable, block), envelope[:usable].reshape(-1, block).max(axis=1)


def plot_envelopes(kept: dict, systems: Sequence[str], path: str,
                   sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """Supp. Fig. 4 analogue: Hilbert envelopes of the left and right channels, per clip.

    Each panel shows the ground truth (black) and every system; curves are the maximum over
    blocks of the envelope (about 1,000 points per clip).
    """
    figure = new_figure(11.0, 2.2 * len(kept) + 0.4, constrained=True)
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
    for row, (clip_id, signals) in enumerate(kept.items()):
        for channel, side in enumerate(("left", "right")):
            axes = figure.add_subplot(len(kept), 2, 2 * row + channel + 1)
            for index, name in enumerate(["binaural", *systems]):
                starts, values = _block_max(metrics.envelope_numpy(signals[name][:, channel]))
                axes.plot(starts / sample_rate_hz, values, linewidth=0.8,
                          color="black" if index == 0 else colours[(index - 1) % len(colours)],
                          label="ground truth" if index == 0 else name)
            axes.set_title(f"{clip_id}: {side}", fontsize=8)
            axes.tick_params(labelsize=7)
            if row == len(kept) - 1:
                axes.set_xlabel("s", fontsize=7)
            if row == 0 and channel == 1:
                axes.legend(fontsize=7, loc="upper right")
    figure.suptitle("Waveform envelopes (supp. Fig. 4)", fontsize=9)
    save_png(figure, path)
