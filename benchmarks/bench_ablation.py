"""The pointing ablation of configs/clup.py, run with the tools a user runs (issue 12).

Usage:
  python benchmarks/bench_ablation.py                         # data, every variant, the tables
  python benchmarks/bench_ablation.py --root DIR --only clup  # an existing root, some variants

Without --root it writes the demo's dataset (tools/make_dataset.py: --num_clips clips of
--clip_seconds s, 136 x 136 frames, --max_sources sounding objects and up to two silent ones per
clip, 25 % moving) into --workdir. Then, for each variant, `tools/train.py` and `tools/evaluate.py`
as the demo runs them (configs/clup.py:demo, the demo's steps), and one Markdown table of Table 1
(localization) and Table 2 (quality, the config's sampler) of every run:

  localizer runs (configs/clup.py:demo,localizer, --localizer_epochs epochs of 25 steps):
    paper        l_sce_loc + l_obj_loc (+ SSM) only: every pointing λ 0
    background, mosaic, cue, response, erase   the paper's terms and that one pointing term
    no_response  the demo's set without the response term
    no_erase     the demo's set without the erasure term
    all          the demo's set (background, mosaic, cue, response, erase, false negatives left
                 out)
  upmixer runs (the demo's 8 epochs of 25 steps, each from a trained localizer, which the
  first four hold as the demo does, `model.update_localizer=False`):
    clup         CLUP with the spatial prior, from the "all" localizer (the demo's CLUP)
    clup_no_response  the same from the "no_response" localizer
    clup_no_erase     the same from the "no_erase" localizer, and without the term in CLUP
    no_prior     CLUP without the prior (diffusion alone), from "all"
    paper_losses CLUP with the paper's losses and no prior, from "paper", which it trains on
    baseline     the baseline-guided upmixer with the prior (its own localizer, not pre-trained)
    audio_only   the upmixer without guidance

Finished runs are kept (train.py and evaluate.py skip them), so a rerun only adds what is
missing; the tables hold every finished run in --workdir/runs. Writes --workdir/results.md and
results.json.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json
import subprocess
import sys
import time

import common
from absl import app, flags

from keras_binaural import files

POINTING = ("lambda_background", "lambda_mosaic", "lambda_cue", "lambda_response", "lambda_erase")
LOCALIZERS = {
    "paper": {**dict.fromkeys(POINTING, 0.0), "false_negative_fraction": 0.0},
    **{term.removeprefix("lambda_"): {**dict.fromkeys(POINTING, 0.0), term: 1.0}
       for term in POINTING},
    "no_response": {"lambda_response": 0.0},
    "no_erase": {"lambda_erase": 0.0},
    "all": {},
}
HOLD = {"model.update_localizer": False}  # as the demo: CLUP holds the localizer it starts from
UPMIXERS = {  # name: (variant, localizer run to start from or None, config overrides)
    "clup": ("demo", "all", HOLD),
    "clup_no_response": ("demo", "no_response", HOLD),
    "clup_no_erase": ("demo", "no_erase", {**HOLD, "model.localizer_config.lambda_erase": 0.0}),
    "no_prior": ("demo,no_prior", "all", HOLD),
    "paper_losses": ("demo,paper_losses", "paper", {}),  # trained on with CLUP, as the paper
    "baseline": ("demo,baseline", None, {}),
    "audio_only": ("demo,audio_only", None, {}),
}

flags.DEFINE_string("root", None, "A synthetic FAIR-Play-layout root (default: make one).")
flags.DEFINE_string("workdir", "/tmp/keras_binaural_bench_ablation", "Runs, data and tables.")
flags.DEFINE_integer("num_clips", 160, "Clips to generate without --root (the demo's).")
flags.DEFINE_float("clip_seconds", 4.0, "Clip length to generate, in seconds.")
flags.DEFINE_integer("max_sources", 1, "Sounding objects per generated clip: 1..max_sources.")
flags.DEFINE_integer("localizer_epochs", 24, "Epochs of 25 steps of each localizer run.")
flags.DEFINE_list("only", [], "Runs to do (default: all of them, localizers first).")
FLAGS = flags.FLAGS


def tool(*arguments: str) -> float:
    """Runs a tool of the repo with this Python; returns its wall time."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *arguments], cwd=common.REPO, check=True)
    return time.perf_counter() - start


def run(name: str, variant: str, overrides: dict, root: str, workdir: str) -> None:
    """Trains (or resumes) and evaluates one run."""
    run_dir = os.path.join(workdir, "runs", name)
    seconds = tool("tools/train.py", f"--config=configs/clup.py:{variant}", f"--workdir={run_dir}",
                   f"--config.data.root={root}", "--verbose=2",
                   *(f"--config.{key}={value}" for key, value in overrides.items()))
    print(f"{name}: {seconds:.0f} s for training ({common.load()})", flush=True)
    if not os.path.isfile(os.path.join(run_dir, "eval", "results.json")):
        tool("tools/evaluate.py", f"--model={run_dir}",
             f"--output_dir={os.path.join(run_dir, 'eval')}")


def collect(run_dir: str) -> dict | None:
    """The tables of a finished run's evaluation, or None."""
    path = os.path.join(run_dir, "eval", "results.json")
    if not os.path.isfile(path):
        return None
    with open(path) as file:
        results = json.load(file)
    return {"table1": results["table1"], "table2": results["table2"]["mean"],
            "sampler": results["settings"]["sampler"]}


def markdown(results: dict) -> str:
    lines = [("| run | distance ↓ | accuracy (%) ↑ | pointing: windows / columns (%) ↑ | STFT ↓ | "
              "ENV ↓ | WAV ↓ | AMP ↓ | SNR (dB) ↑ | d corr. ↑ | sampler |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    mono_mono = next((r["table2"]["mono_mono"] for r in results.values()), None)
    if mono_mono:
        lines.append("| mono-mono | | | | {stft:.3f} | {env:.4f} | {wav:.2f} | {amp:.3f} | "
                     "{snr:.2f} | 0 | |".format(**mono_mono))
    for name, result in results.items():
        table1 = next(iter(result["table1"].values()), None)
        cells = ["", "", ""]
        if table1:
            cells = [f"{table1['distance']:.3f}", f"{100 * table1['accuracy']:.1f}",
                     (f"{100 * table1['pointing_window_hit_rate']:.1f} / "
                     f"{100 * table1['pointing_column_hit_rate']:.1f}")]
        scores = next((v for k, v in result["table2"].items() if k != "mono_mono"), None)
        audio = ["", "", "", "", "", "", ""]
        if scores:
            audio = [f"{scores['stft']:.3f}", f"{scores['env']:.4f}", f"{scores['wav']:.2f}",
                     f"{scores['amp']:.3f}", f"{scores['snr']:.2f}", f"{scores['d_corr']:.2f}",
                     result["sampler"]]
        lines.append(f"| {name} | " + " | ".join(cells + audio) + " |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    workdir = os.path.abspath(FLAGS.workdir)
    os.makedirs(workdir, exist_ok=True)
    root = FLAGS.root or common.synthetic_root(
        workdir, FLAGS.num_clips, FLAGS.clip_seconds, "136x136", max_sources=FLAGS.max_sources)
    wanted = FLAGS.only or [*LOCALIZERS, *UPMIXERS]
    for name, overrides in LOCALIZERS.items():
        if name in wanted:
            overrides = {**{f"model.{k}": v for k, v in overrides.items()},
                         "train.epochs": FLAGS.localizer_epochs, "train.warmup_steps": 50}
            run(name, "demo,localizer", overrides, root, workdir)
    for name, (variant, localizer, overrides) in UPMIXERS.items():
        if name in wanted:
            if localizer:
                overrides = {**overrides,
                             "model_init.localizer": os.path.join(workdir, "runs", localizer)}
            run(name, variant, overrides, root, workdir)
    # Every finished run in the workdir, also those of earlier invocations.
    results = {name: collect(os.path.join(workdir, "runs", name))
               for name in [*LOCALIZERS, *UPMIXERS]}
    results = {name: result for name, result in results.items() if result}
    path = os.path.join(workdir, "results.json")
    files.write_json(path, results)
    table = markdown(results)
    files.write_text(os.path.join(workdir, "results.md"), table)
    print(table)


if __name__ == "__main__":
    app.run(main)
