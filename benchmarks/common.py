"""Shared by the benchmarks: their common flags, the synthetic datasets they train on, the
optimizer, the load."""

import json
import os
import subprocess
import sys

from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def synthetic_root(workdir: str, num_clips: int, clip_seconds: float, frame_size: str,
                   **flags) -> str:
    """A synthetic FAIR-Play-layout root written by tools/make_dataset.py (seed 0, 2 workers).

    The folder name records the settings, and make_dataset skips finished clips, so a rerun with
    the same settings reuses the data. `frame_size` is "WxH"; `flags` are further make_dataset
    flags (e.g. max_sources=2).
    """
    name = f"synthetic_{frame_size}_{num_clips}x{clip_seconds:g}s"
    name += "".join(f"_{key}{value}" for key, value in sorted(flags.items()))
    root = os.path.join(workdir, name)
    command = [sys.executable, os.path.join(REPO, "tools", "make_dataset.py"),
               f"--output_dir={root}", f"--num_clips={num_clips}",
               f"--clip_seconds={clip_seconds}", f"--frame_size={frame_size}", "--seed=0",
               "--workers=2"]
    subprocess.run(command + [f"--{key}={value}" for key, value in sorted(flags.items())],
                   check=True)
    return root


def previous_results(workdir: str) -> tuple[str, dict]:
    """(`workdir`/results.json, what an earlier run wrote there or {}): a rerun adds to it."""
    path = os.path.join(workdir, "results.json")
    if not os.path.isfile(path):
        return path, {}
    with open(path) as file:
        return path, json.load(file)


def load() -> str:
    """The machine's 1, 5 and 15 minute load averages, printed next to every timing."""
    return "load {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())


def warmup_cosine_adam(steps: int, learning_rate: float):
    """Adam with a 5 % linear warm-up to `learning_rate`, cosine decay to 0 over `steps`, and
    each variable's gradient norm clipped to 1 (`training.make_optimizer` says why not one global
    norm): the recipe of the training benchmarks."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=steps, warmup_target=learning_rate, warmup_steps=max(1, steps // 20))
    return keras.optimizers.Adam(schedule, clipnorm=1.0)


# === Flags the training benchmarks share (each with its own defaults) ===


def define_data_flags(benchmark: str, num_clips: int | None = None,
                      clip_seconds: float | None = None, frame_size: int | None = None,
                      frame_size_help: str = "Square frame size in pixels (generated and trained)."
                      ) -> None:
    """--root, --workdir (/tmp/keras_binaural_bench_<benchmark>) and, for the defaults given,
    --num_clips, --clip_seconds and --frame_size of the synthetic root made without --root."""
    flags.DEFINE_string("root", None, "A synthetic FAIR-Play-layout root (default: make one).")
    flags.DEFINE_string("workdir", f"/tmp/keras_binaural_bench_{benchmark}", "Outputs and data.")
    if num_clips is not None:
        flags.DEFINE_integer("num_clips", num_clips, "Clips to generate when --root is not given.")
    if clip_seconds is not None:
        flags.DEFINE_float("clip_seconds", clip_seconds, "Clip length to generate, in seconds.")
    if frame_size is not None:
        flags.DEFINE_integer("frame_size", frame_size, frame_size_help)


def define_training_flags(batch_size: int, learning_rate: float, schedule: str,
                          steps: int | None = None) -> None:
    """--batch_size, --learning_rate (Adam's, with `schedule` described in the help) and, with a
    default, --steps."""
    if steps is not None:
        flags.DEFINE_integer("steps", steps, "Training steps per model.")
    flags.DEFINE_integer("batch_size", batch_size, "Training batch size (0.63 s chunks).")
    flags.DEFINE_float("learning_rate", learning_rate, f"Adam's learning rate ({schedule}).")


def define_denoiser_flags(channels: int = 32, num_cycles: int = 1) -> None:
    """--channels and --num_cycles of the upmixer's denoiser."""
    flags.DEFINE_integer("channels", channels, "Residual channels C of the denoiser.")
    flags.DEFINE_integer("num_cycles", num_cycles,
                         "Dilation cycles of the denoiser (SPEC: 3; 1 for the CPU budget).")


def define_run_flags(seeded: str = "the data order and the weights") -> None:
    """--reuse (evaluate the saved models) and --seed (of what is `seeded`)."""
    flags.DEFINE_bool("reuse", False, "Evaluate saved models in --workdir instead of training.")
    flags.DEFINE_integer("seed", 0, f"Seed of {seeded}.")
