"""The main job: keras-binaural end to end on a small synthetic dataset, in minutes on a CPU.

Usage:
  make demo                                   # sets up .venv, then runs this
  python tools/demo.py --output_dir demo_output [--data_dir data/demo]

Steps, each a command a user can run alone (the report lists them with their times):
  1. tools/make_dataset.py   a synthetic dataset (measured HRIRs, 10-fps frames) in --data_dir
  2. tools/train.py          the localizer alone (configs/clup.py:demo,localizer), CLUP starting
                             from it (configs/clup.py:demo) and the audio-only upmixer
  3. tools/evaluate.py       both against mono-mono on the test split, with the PNGs
  4. tools/binauralize.py    a held-out test video -> binaural WAV and mp4 with the map overlaid
  5. OUTPUT/report.md        the tables, the pictures, the commands
Every step is resumable: rerunning `make demo` after an interruption continues where it stopped
(finished clips are skipped, training resumes from its last epoch).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts: it reads these once

import subprocess
import sys
import time

from absl import app, flags

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "demo_output", "Where the demo writes its results.")
_DATA_DIR = flags.DEFINE_string("data_dir", "data/demo", "Where the synthetic dataset goes.")
_NUM_CLIPS = flags.DEFINE_integer("num_clips", 160, "Synthetic clips (80 % train, 10 % val, 10 % test).")
_CLIP_SECONDS = flags.DEFINE_float("clip_seconds", 4.0, "Length of each synthetic clip.")
_MAX_SOURCES = flags.DEFINE_integer(
    "max_sources", 1, "Sounding objects per synthetic clip, 1..max_sources (beside up to two "
    "silent ones): one by default, the case a few CPU minutes learn (BENCHMARKS.md).")
_SIZE = flags.DEFINE_enum("size", "demo", ["demo", "tiny"],
                          "configs/clup.py size: demo, or tiny for a smoke test in seconds.")
FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_step(title: str, arguments: list[str], log: list) -> None:
    """Runs one tool of the repo with this Python, shows its progress, records its time."""
    print(f"\n=== {title} ===", flush=True)
    command = [sys.executable, *arguments]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"demo: error: step '{title}' failed (exit {result.returncode}): "
                         f"{' '.join(arguments)}")
    log.append((title, "python " + " ".join(arguments), seconds))


def first_test_clip(data_dir: str) -> str:
    with open(os.path.join(data_dir, "splits", "split1", "test.txt")) as ids:
        return ids.readline().strip()


def write_report(output_dir: str, log: list, clip_id: str) -> str:
    from keras_binaural import files

    # results.md, one heading level down, its pictures linked from here.
    with open(os.path.join(output_dir, "eval", "results.md")) as results:
        tables = results.read().replace("](plots/", "](eval/plots/")
    tables = "\n".join("#" + line if line.startswith("#") else line for line in tables.splitlines())
    lines = [
        "# keras-binaural demo",
        "",
        ("CLUP (the localizer, trained alone first, then held while the object-aware upmixer "
         "and its spatial prior learn to read its map) and the audio-only upmixer, trained for a few minutes on a synthetic "
         "dataset of binaural scenes rendered with measured HRIRs, scored against the mono-mono "
         "baseline on held-out test clips (SPEC section 6 metrics; lower is better except SNR). "
         "CLUP is scored with its spatial prior's estimate (sampler prior), the audio-only "
         "upmixer with the fast diffusion sampler."),
        "",
        tables.strip(),
        "",
        f"## Binauralized held-out video (clip {clip_id})",
        "",
        "- `binaural.wav`: the generated binaural audio (16 kHz, left/right).",
        "- `binaural.mp4`: the video with the binaural track and the localization map overlaid.",
        "",
        "## Steps",
        "",
        "| step | command | seconds |",
        "|---|---|---:|",
        *[f"| {title} | `{command}` | {seconds:.0f} |" for title, command, seconds in log],
        "",
    ]
    path = os.path.join(output_dir, "report.md")
    files.write_text(path, "\n".join(lines))
    return path


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    output_dir, data_dir = os.path.abspath(_OUTPUT_DIR.value), os.path.abspath(_DATA_DIR.value)
    from keras_binaural import files

    try:  # before any step; each step checks the space it needs itself (e.g. the checkpoints)
        files.check_output(output_dir, "--output_dir", folder=True)
        files.check_output(data_dir, "--data_dir", folder=True)
    except files.OutputError as error:
        raise SystemExit(f"demo: error: {error}") from None
    files.remove_temporaries(output_dir, names=["report.md"])  # the steps clear their own
    runs = os.path.join(output_dir, "runs")
    log: list = []
    started = time.perf_counter()
    run_step("synthetic dataset", [
        "tools/make_dataset.py", f"--output_dir={data_dir}", f"--num_clips={_NUM_CLIPS.value}",
        f"--clip_seconds={_CLIP_SECONDS.value}", f"--max_sources={_MAX_SOURCES.value}",
        "--frame_size=136x136" if _SIZE.value == "demo" else "--frame_size=72x72", "--workers=2",
    ], log)
    # The localizer first (its steps are cheap), then CLUP holding it (its map keeps pointing
    # where the localizer learnt to, and CLUP's steps are cheaper), then audio-only.
    for name, variant, extra in (
            ("localizer", f"{_SIZE.value},localizer", []),
            ("clup", _SIZE.value, [f"--config.model_init.localizer={os.path.join(runs, 'localizer')}",
                                   "--config.model.update_localizer=False"]),
            ("audio_only", f"{_SIZE.value},audio_only", [])):
        run_step(f"train {name}", [
            "tools/train.py", f"--config=configs/clup.py:{variant}",
            f"--config.data.root={data_dir}", f"--workdir={os.path.join(runs, name)}",
            "--verbose=2", *extra,
        ], log)
    run_step("evaluate", [
        "tools/evaluate.py", f"--model={os.path.join(runs, 'clup')}",
        f"--baseline=audio_only={os.path.join(runs, 'audio_only')}",
        f"--output_dir={os.path.join(output_dir, 'eval')}", "--plots",
    ], log)
    clip_id = first_test_clip(data_dir)
    run_step("binauralize a held-out video", [
        "tools/binauralize.py", f"--model={os.path.join(runs, 'clup', 'model.keras')}",
        f"--video={os.path.join(data_dir, 'videos', clip_id + '.mp4')}",
        f"--output_wav={os.path.join(output_dir, 'binaural.wav')}",
        f"--output_video={os.path.join(output_dir, 'binaural.mp4')}", "--overlay",
    ], log)
    report = write_report(output_dir, log, clip_id)
    print(f"\nDemo finished in {(time.perf_counter() - started) / 60:.1f} minutes: {report}")


if __name__ == "__main__":
    app.run(main)
