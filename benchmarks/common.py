"""Shared by the benchmarks: the synthetic datasets they train on, the optimizer, the load."""

import os
import subprocess
import sys

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


def load() -> str:
    """The machine's 1, 5 and 15 minute load averages, printed next to every timing."""
    return "load {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg())


def warmup_cosine_adam(steps: int, learning_rate: float):
    """Adam with a 5 % linear warm-up to `learning_rate`, cosine decay to 0 over `steps`, and
    the gradients' global norm clipped to 1: the recipe of the upmixer benchmarks."""
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=steps, warmup_target=learning_rate, warmup_steps=max(1, steps // 20))
    return keras.optimizers.Adam(schedule, global_clipnorm=1.0)
