"""Shared by the benchmarks: the synthetic datasets they train and measure on."""

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
