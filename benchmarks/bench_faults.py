r"""Fault tolerance of the tools: kill -9 at random moments, a full disk, an unwritable output,
corrupt input. Counts the runs that ended cleanly, and those that left debris or lost work.

Usage (as root for the disk-full and read-only cases, which mount small tmpfs folders):
  python benchmarks/bench_faults.py [--workdir /tmp/bench_faults] [--kills 5] [--train_kills 10]
      [--tools make_dataset,train,evaluate,evaluate_wavs,binauralize,export,prepare_fairplay]

Everything is tiny (20 synthetic clips of 1 s, 64 x 64 frames, the `tiny,audio_only` upmixer) so
that the benchmark costs minutes of CPU, not the faults' subject. Each tool first runs once
undisturbed: its time T and its outputs are the reference. Then, per tool:

- **kill -9 x N**: the command is started, killed with SIGKILL at a moment drawn uniformly from
  [0, T] (so some kills land in the start-up), and then rerun unchanged to completion. train.py:
  one workdir, killed `--train_kills` times across a 6-epoch run (each restart resumes), then run
  to the end. Clean: the rerun exits 0 and its outputs equal the undisturbed run's (the datasets
  and WAVs byte for byte, the JSON reports value for value; train: history.csv has every epoch
  exactly once and the final model's optimizer made epochs x steps updates, as the undisturbed
  run's).
- **disk full**: the output folder is a tmpfs, filled up to leave a few amounts free (below what
  the command needs, so that the check before work refuses; and enough to pass the check but not
  to finish, so that the write itself fails); train.py also with the disk filling up while it
  trains (after its first checkpoint).
- **unwritable output**: the output folder on a read-only tmpfs (root ignores permissions), and an
  output path below a plain file.
- **corrupt input**: truncated WAVs, PNGs and videos, garbage model files, and the like.

Clean ending of a fault other than kill -9: exit status 1, no Python traceback, and stderr's last
line names the problem (the expected words: the file, "No space left", "read-only", ...).
Debris: a temporary file or folder (`keras_binaural.files.is_temporary`, any ".tmp" name) left in
the output folder after the fault (for kill -9: after the rerun), or a partial output (a report
without its pair, a clip without its metadata, a workdir with config.json but no finished epoch
after a refused start). Lost work: finished work the fault destroyed or the rerun redid (clips
finished before the kill rewritten, epochs trained again, history rows changed).

Writes WORKDIR/results.json and prints the table for BENCHMARKS.md, and every fault's last line.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts: it reads these once

import contextlib
import csv
import dataclasses
import filecmp
import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

from keras_binaural import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("make_dataset", "train", "evaluate", "evaluate_wavs", "binauralize", "export",
         "prepare_fairplay")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
       "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
NUM_CLIPS = 20  # of 1 s: 16 train, 2 val, 2 test
EPOCHS, STEPS = 6, 3  # the train.py run that is killed

flags.DEFINE_string("workdir", "/tmp/bench_faults", "Scratch folder (emptied first).")
flags.DEFINE_integer("kills", 5, "kill -9 runs per tool (train.py: --train_kills).")
flags.DEFINE_integer("train_kills", 10, "kill -9 moments across one multi-epoch train.py run.")
flags.DEFINE_list("tools", list(TOOLS), "Tools to try.")
flags.DEFINE_integer("seed", 0, "Seed of the kill moments.")
FLAGS = flags.FLAGS


# === Running the tools ===


def command(tool: str, *arguments: str) -> list[str]:
    return ["nice", "-n", "5", sys.executable, os.path.join(REPO, "tools", f"{tool}.py"),
            *arguments]


def run(arguments: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(arguments, env=ENV, capture_output=True, text=True, timeout=timeout,
                          check=False, cwd=REPO)


def timed(arguments: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    result = run(arguments)
    return result, time.monotonic() - start


def kill_at(arguments: list[str], seconds: float) -> bool:
    """Starts the command and SIGKILLs it after `seconds`; False if it finished before."""
    process = subprocess.Popen(arguments, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, cwd=REPO, start_new_session=True)
    try:
        process.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the tool and any workers it started
        process.wait()
        return True


def last_line(result: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in result.stderr.replace("\r", "\n").splitlines()
             if line.strip()]
    return lines[-1] if lines else ""


def ended_cleanly(result: subprocess.CompletedProcess, expected: str,
                  program: str | None) -> bool:
    """Exit status 1, no traceback, and the last line "<program>: error: ..." naming the
    problem (`program` None: a documented multi-line report, e.g. prepare_fairplay's list)."""
    line = last_line(result)
    return (result.returncode == 1 and "Traceback" not in result.stderr
            and (program is None or line.startswith(f"{program}: error: "))
            and expected.lower() in line.lower())


def debris_in(folder: str) -> list[str]:
    """Temporary files and folders under `folder` (any depth)."""
    found = []
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            if files.is_temporary(name) or ".tmp" in name:
                found.append(os.path.relpath(os.path.join(root, name), folder))
    return found


def entries(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, dirs, names in os.walk(folder) for name in dirs + names)


def same_tree(a: str, b: str, skip=(".h5",)) -> bool:
    """The same files with the same bytes (h5 files hold absolute paths: compared by name)."""
    if entries(a) != entries(b):
        return False
    return all(filecmp.cmp(os.path.join(a, name), os.path.join(b, name), shallow=False)
               for name in entries(a)
               if os.path.isfile(os.path.join(a, name)) and not name.endswith(skip))


# === Small disks ===


def can_mount() -> bool:
    probe = os.path.join(FLAGS.workdir, "mount_probe")
    os.makedirs(probe, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe],
                        capture_output=True, check=False).returncode == 0
    if ok:
        subprocess.run(["umount", probe], check=True)
    return ok


@contextlib.contextmanager
def small_disk(path: str, free_bytes: int, read_only: bool = False):
    """A tmpfs at `path` with about `free_bytes` free (filled with a hidden-free filler file)."""
    os.makedirs(path, exist_ok=True)
    size = max(free_bytes, 0) + 1024 * 1024
    options = f"size={size}" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path], check=True)
    try:
        if not read_only:
            fill(path, free_bytes)
        yield path
    finally:
        subprocess.run(["umount", path], check=True)
        os.rmdir(path)


def fill(path: str, leave_bytes: int) -> None:
    """Writes a filler file leaving about `leave_bytes` free on the file system of `path`."""
    filler = os.path.join(path, "filler")
    with open(filler, "ab") as stream:
        free = shutil.disk_usage(path).free - leave_bytes
        block = b"\0" * 65536
        while free > 0:
            try:
                stream.write(block[: min(len(block), free)])
                stream.flush()
            except OSError:
                break
            free = shutil.disk_usage(path).free - leave_bytes


def remove_filler(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(path, "filler"))


# === Tallies ===


@dataclasses.dataclass
class Tally:
    tool: str
    fault: str
    runs: int = 0
    clean: int = 0
    debris: int = 0
    lost: int = 0
    lines: list = dataclasses.field(default_factory=list)

    def add(self, clean: bool, debris: list | bool = (), lost: bool = False, line: str = ""):
        self.runs += 1
        self.clean += bool(clean)
        self.debris += bool(debris)
        self.lost += bool(lost)
        self.lines.append({"clean": bool(clean), "debris": list(debris) if isinstance(
            debris, (list, tuple)) else bool(debris), "lost": bool(lost), "line": line})
        print(f"  [{self.tool} / {self.fault}] clean={bool(clean)} debris={debris or '-'} "
              f"lost={lost}: {line}", flush=True)


def fault_runs(tool: str, output: str, cases, partial=lambda folder: []) -> list[Tally]:
    """The error faults of one tool: each case is (fault, setup, arguments, expected words).
    `setup(folder)` is a context manager preparing the output location; `partial(folder)` lists
    partial outputs left in it."""
    tallies: dict[str, Tally] = {}
    for fault, setup, arguments, expected, *report in cases:
        tally = tallies.setdefault(fault, Tally(tool, fault))
        program = None if report == ["list"] else tool
        with setup(output) as location:
            free = shutil.disk_usage(location).free if fault == "disk full" else None
            result = run(arguments(location))
            left = debris_in(location) + partial(location)
            note = f"[{free} B free] " if free is not None else ""
            tally.add(ended_cleanly(result, expected, program), left,
                      line=note + last_line(result))
        shutil.rmtree(output, ignore_errors=True)
    return list(tallies.values())


def disk(free_bytes: int):
    return lambda path: small_disk(path, free_bytes)


def read_only_disk(path: str):
    return small_disk(path, 0, read_only=True)


@contextlib.contextmanager
def below_a_file(path: str):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "afile"), "w"):
        pass
    yield os.path.join(path, "afile")
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def plain_folder(path: str):
    os.makedirs(path, exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def truncated(source: str, target: str, keep: float = 0.5) -> str:
    with open(source, "rb") as stream:
        data = stream.read()
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as stream:
        stream.write(data[: int(len(data) * keep)])
    return target


def garbage(target: str) -> str:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as stream:
        stream.write(b"this is not what the name says\n" * 10)
    return target


def split_ids(root: str, subset: str) -> list[str]:
    with open(os.path.join(root, "splits", "split1", f"{subset}.txt")) as stream:
        return stream.read().split()


def copy_root(root: str, target: str) -> str:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(root, target)
    return target


def tree_bytes(folder: str) -> int:
    """What a folder's files take on a tmpfs (whole 4 kB pages)."""
    return sum(-(-os.path.getsize(os.path.join(root, name)) // 4096) * 4096
               for root, _, names in os.walk(folder) for name in names)


def tally_of(tallies: list, tool: str, fault: str) -> Tally:
    found = [tally for tally in tallies if tally.fault == fault]
    if not found:
        tallies.append(Tally(tool, fault))
        return tallies[-1]
    return found[0]


def refusals(check_bytes: int, arguments, mounted=True):
    """Disk-full cases the check before any work must refuse: nothing free, and half of what
    the command needs."""
    if not mounted:
        return []
    return [("disk full", disk(free), arguments, "space") for free in (0, check_bytes // 2)]


def fills_during(tally: Tally, arguments, output: str, seconds: float, room: int, rng, complete,
                 partial=lambda folder: [], count: int = 2) -> None:
    """The disk fills up at a random moment in the second half of the run (another program
    takes the space): the tool must either finish with complete outputs (it wrote them before)
    or end in one line about the space, leaving no debris."""
    for _ in range(count):
        with small_disk(output, room) as location:
            process = subprocess.Popen(arguments(location), env=ENV, cwd=REPO, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(rng.uniform(0.5, 1.0) * seconds)
            fill(location, 0)
            stdout, stderr = process.communicate()
            result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            remove_filler(location)
            finished = result.returncode == 0 and complete(location)
            clean = finished or ended_cleanly(result, "space", tally.tool)
            left = debris_in(location) + ([] if finished else partial(location))
            tally.add(clean, left, line=("finished before the disk was full" if finished
                                         else last_line(result)))


# === The tools ===


def make_dataset_arguments(output: str, *extra: str) -> list[str]:
    return command("make_dataset", f"--output_dir={output}", f"--num_clips={NUM_CLIPS}",
                   "--clip_seconds=1", "--frame_size=64x64", "--seed=0", "--workers=1", *extra)


def bench_make_dataset(work: str, root: str, data_seconds: float, rng,
                       mounted) -> list[Tally]:
    kills = Tally("make_dataset", f"kill -9 x {FLAGS.kills}")
    # A longer run than the faults' below, so that the kills land among the clips: 60 of 2 s.
    longer = ("--num_clips=60", "--clip_seconds=2")
    reference = os.path.join(work, "kill_reference")
    (result, seconds) = timed(make_dataset_arguments(reference, *longer))
    assert result.returncode == 0, result.stderr[-2000:]
    for index in range(FLAGS.kills):
        output = os.path.join(work, f"kill_{index}")
        killed = kill_at(make_dataset_arguments(output, *longer), rng.uniform(0, seconds))
        finished = {}
        for clip in sorted(os.listdir(os.path.join(output, "metadata"))) if os.path.isdir(
                os.path.join(output, "metadata")) else []:
            clip_id = clip.split(".")[0]
            paths = [os.path.join(output, "metadata", clip),
                     os.path.join(output, "binaural_audios", f"{clip_id}.wav")]
            finished.update({p: os.stat(p).st_mtime_ns for p in paths if not files.is_temporary(p)})
        result = run(make_dataset_arguments(output, *longer))
        lost = any(not os.path.exists(p) or os.stat(p).st_mtime_ns != t
                   for p, t in finished.items())
        clean = result.returncode == 0 and same_tree(output, reference)
        kills.add(clean, debris_in(output), lost,
                  f"{'killed' if killed else 'finished first'}; {len(finished) // 2} clips done "
                  f"before; rerun exit {result.returncode}")
        shutil.rmtree(output)
    reference = root  # the faults below run the 20-clip command

    def incomplete_clips(folder):
        made = {name.split(".")[0] for name in os.listdir(os.path.join(folder, "metadata"))} \
            if os.path.isdir(os.path.join(folder, "metadata")) else set()
        audio = os.path.join(folder, "binaural_audios")
        return [f"binaural_audios/{n}" for n in (os.listdir(audio) if os.path.isdir(audio) else [])
                if n.split(".")[0] not in made]

    sources = os.path.join(work, "sources", "whistle")
    truncated(os.path.join(reference, "binaural_audios", "000001.wav"),
              os.path.join(sources, "take.wav"))
    garbage(os.path.join(work, "broken.sofa"))
    output = os.path.join(work, "out")
    cases = [
        *refusals(NUM_CLIPS * 64_044, make_dataset_arguments, mounted),
        *([("unwritable output", read_only_disk, lambda out: make_dataset_arguments(out),
            "read-only")] if mounted else []),
        ("unwritable output", below_a_file,
         lambda out: make_dataset_arguments(os.path.join(out, "data")), "is a file"),
        ("corrupt input", plain_folder,
         lambda out: make_dataset_arguments(out, f"--sources_dir={os.path.dirname(sources)}"),
         "take.wav"),
        ("corrupt input", plain_folder,
         lambda out: make_dataset_arguments(out, f"--hrtf={work}/broken.sofa"), "broken.sofa"),
    ]
    tallies = [kills] + fault_runs("make_dataset", output, cases, incomplete_clips)
    if mounted:
        fills_during(tally_of(tallies, "make_dataset", "disk full"), make_dataset_arguments,
                     output, data_seconds, 2 * tree_bytes(reference), rng,
                     lambda out: same_tree(out, reference), incomplete_clips)
    return tallies


def train_arguments(workdir: str, root: str, *extra: str) -> list[str]:
    return command("train", "--config=configs/clup.py:tiny,audio_only", f"--workdir={workdir}",
                   f"--config.data.root={root}", f"--config.train.epochs={EPOCHS}",
                   f"--config.train.steps_per_epoch={STEPS}", "--verbose=0", *extra)


def history_rows(workdir: str) -> list[dict]:
    path = os.path.join(workdir, "history.csv")
    if not os.path.isfile(path):
        return []
    with open(path) as stream:
        return list(csv.DictReader(stream))


def optimizer_steps(model_path: str) -> int:
    import keras

    import keras_binaural.models  # noqa: F401

    model = keras.saving.load_model(model_path)
    return int(model.optimizer.iterations.numpy())


def bench_train(work: str, root: str, reference_run: str, seconds: float, rng,
                mounted) -> list[Tally]:
    expected_steps = optimizer_steps(os.path.join(reference_run, "model.keras"))
    kills = Tally("train", f"kill -9 x {FLAGS.train_kills} across a {EPOCHS}-epoch run")
    workdirs, moments, seen = [os.path.join(work, "killed_run_1")], [], {}
    while len(moments) < FLAGS.train_kills:
        at = rng.uniform(0, seconds)
        killed = kill_at(train_arguments(workdirs[-1], root), at)
        rows = history_rows(workdirs[-1])
        for row in rows:  # what each epoch logged when it finished: a rerun must not redo it
            seen.setdefault((workdirs[-1], row["epoch"]), row["loss"])
        if killed:
            moments.append((len(workdirs), at, len(rows)))
        else:  # this run finished before the moment: the remaining kills go to a new run
            workdirs.append(os.path.join(work, f"killed_run_{len(workdirs) + 1}"))
    for index, workdir in enumerate(workdirs, start=1):
        final = run(train_arguments(workdir, root))  # a finished run does nothing
        rows = history_rows(workdir)
        epochs = [int(row["epoch"]) for row in rows]
        steps = optimizer_steps(os.path.join(workdir, "model.keras")) if final.returncode == 0 \
            else -1
        lost = any(row["loss"] != seen.get((workdir, row["epoch"]), row["loss"]) for row in rows)
        clean = final.returncode == 0 and epochs == list(range(1, EPOCHS + 1)) \
            and steps == expected_steps
        left = debris_in(workdir)
        at = [f"{moment:.0f} s ({done} done)" for run_index, moment, done in moments
              if run_index == index]
        for _ in at:  # one row per kill: the run it hit ended as checked here
            kills.add(clean, left, lost, f"run {index}: killed at {', '.join(at)}; final exit "
                      f"{final.returncode}, history epochs {epochs}, optimizer steps {steps} "
                      f"(undisturbed: {expected_steps})")

    def unstarted(folder):  # config.json or logs/ of a run that never finished an epoch
        state = os.path.join(folder, "checkpoints", "state.json")
        leftovers = [name for name in ("config.json", "logs") if os.path.exists(
            os.path.join(folder, name))]
        return [] if os.path.exists(state) else leftovers

    train_ids = split_ids(root, "train")
    bad_wav = copy_root(root, os.path.join(work, "bad_wav"))
    truncated(os.path.join(root, "binaural_audios", f"{train_ids[2]}.wav"),
              os.path.join(bad_wav, "binaural_audios", f"{train_ids[2]}.wav"))
    bad_png = copy_root(root, os.path.join(work, "bad_png"))
    png = os.path.join("frames", f"{train_ids[4]}.mp4", "000005.png")
    truncated(os.path.join(root, png), os.path.join(bad_png, png), keep=0.8)
    checkpoint_size = os.path.getsize(os.path.join(reference_run, "model.keras"))
    output = os.path.join(work, "out")
    cases = [
        *refusals(4 * checkpoint_size, lambda out: train_arguments(out, root), mounted),
        *([("unwritable output", read_only_disk, lambda out: train_arguments(out, root),
            "read-only")] if mounted else []),
        ("unwritable output", below_a_file,
         lambda out: train_arguments(os.path.join(out, "run"), root), "is a file"),
        ("corrupt input", plain_folder,
         lambda out: train_arguments(os.path.join(out, "run"), bad_wav), "truncated WAV"),
        ("corrupt input", plain_folder,
         lambda out: train_arguments(os.path.join(out, "run"), bad_png), "truncated PNG"),
    ]
    tallies = [kills] + fault_runs("train", output, cases, unstarted)
    if mounted:  # the disk fills up during training, after the first checkpoint
        tally = tally_of(tallies, "train", "disk full")
        with small_disk(output, 6 * checkpoint_size) as location:
            workdir = os.path.join(location, "run")
            process = subprocess.Popen(train_arguments(workdir, root), env=ENV, cwd=REPO,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            state = os.path.join(workdir, "checkpoints", "state.json")
            while not os.path.exists(state) and process.poll() is None:
                time.sleep(0.05)
            fill(location, 0)
            stdout, stderr = process.communicate()
            result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            rows = history_rows(workdir)
            with open(state) as stream:
                committed = json.load(stream)["epoch"]
            lost = committed < 1 or [int(r["epoch"]) for r in rows] != list(range(1, committed + 1))
            left = debris_in(location)
            remove_filler(location)
            rerun = run(train_arguments(workdir, root))
            rows = history_rows(workdir)
            tally.add(ended_cleanly(result, "No space left", "train") and rerun.returncode == 0
                      and [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1)), left,
                      lost, f"filled after epoch {committed}: {last_line(result)}; after freeing "
                      f"space the rerun exits {rerun.returncode} with epochs "
                      f"{[int(r['epoch']) for r in rows]}")
        shutil.rmtree(output, ignore_errors=True)
    return tallies


def evaluate_arguments(model: str, output: str, root: str | None = None) -> list[str]:
    extra = [f"--root={root}"] if root else []
    return command("evaluate", f"--model={model}", f"--output_dir={output}", *extra)


def json_of(path: str):
    with open(path) as stream:
        return json.load(stream)


def kill_and_rerun(tool: str, arguments, seconds: float, rng, output: str, check) -> Tally:
    """kill -9 at a random moment, then the same command again; `check(output)` -> clean."""
    tally = Tally(tool, f"kill -9 x {FLAGS.kills}")
    for _ in range(FLAGS.kills):
        killed = kill_at(arguments, rng.uniform(0, seconds))
        result = run(arguments)
        tally.add(result.returncode == 0 and check(output), debris_in(output), False,
                  f"{'killed' if killed else 'finished first'}; rerun exit {result.returncode}")
        shutil.rmtree(output, ignore_errors=True)
    return tally


def bench_evaluate(work, root, model_dir, reference, seconds, rng, mounted) -> list[Tally]:
    output = os.path.join(work, "eval")
    expected = json_of(os.path.join(reference, "results.json"))
    kills = kill_and_rerun(
        "evaluate", evaluate_arguments(model_dir, output), seconds, rng, output,
        lambda out: json_of(os.path.join(out, "results.json")) == expected
        and os.path.isfile(os.path.join(out, "results.md")))
    test_id = split_ids(root, "test")[0]
    bad_wav = copy_root(root, os.path.join(work, "bad_wav"))
    truncated(os.path.join(root, "binaural_audios", f"{test_id}.wav"),
              os.path.join(bad_wav, "binaural_audios", f"{test_id}.wav"))
    garbage(os.path.join(work, "broken", "model.keras"))
    shutil.copy(os.path.join(model_dir, "config.json"), os.path.join(work, "broken"))

    def partial(folder):
        return [name for name in ("results.json", "results.md", "plots")
                if os.path.exists(os.path.join(folder, name))]

    cases = [
        *refusals(2 * 2048, lambda out: evaluate_arguments(model_dir, out), mounted),
        *([("unwritable output", read_only_disk, lambda out: evaluate_arguments(model_dir, out),
            "read-only")] if mounted else []),
        ("unwritable output", below_a_file,
         lambda out: evaluate_arguments(model_dir, os.path.join(out, "eval")), "is a file"),
        ("corrupt input", plain_folder, lambda out: evaluate_arguments(model_dir, out, bad_wav),
         "truncated WAV"),
        ("corrupt input", plain_folder,
         lambda out: evaluate_arguments(os.path.join(work, "broken"), out), "model.keras"),
    ]
    tallies = [kills] + fault_runs("evaluate", os.path.join(work, "out"), cases, partial)
    if mounted:
        fills_during(tally_of(tallies, "evaluate", "disk full"),
                     lambda out: evaluate_arguments(model_dir, out), os.path.join(work, "out"),
                     seconds, 2**20, rng,
                     lambda out: json_of(os.path.join(out, "results.json")) == expected, partial)
    return tallies


def evaluate_wavs_arguments(pred: str, gt: str, output: str) -> list[str]:
    return command("evaluate_wavs", f"--pred_dir={pred}", f"--gt_dir={gt}",
                   f"--output_json={output}/s.json", f"--output_md={output}/s.md")


def bench_evaluate_wavs(work, root, rng, mounted) -> list[Tally]:
    gt = os.path.join(root, "binaural_audios")
    pred = os.path.join(work, "pred")
    shutil.copytree(gt, pred)
    reference = os.path.join(work, "reference")
    (_, seconds) = timed(evaluate_wavs_arguments(pred, gt, reference))
    expected = json_of(os.path.join(reference, "s.json"))
    output = os.path.join(work, "scores")
    kills = kill_and_rerun("evaluate_wavs", evaluate_wavs_arguments(pred, gt, output), seconds,
                           rng, output, lambda out: json_of(os.path.join(out, "s.json")) == expected
                           and os.path.isfile(os.path.join(out, "s.md")))
    bad = os.path.join(work, "bad_pred")
    shutil.copytree(pred, bad)
    truncated(os.path.join(gt, "000003.wav"), os.path.join(bad, "000003.wav"))

    def partial(folder):
        return [name for name in ("s.json", "s.md") if os.path.exists(os.path.join(folder, name))]

    cases = refusals(NUM_CLIPS * 1024, lambda out: evaluate_wavs_arguments(pred, gt, out),
                     mounted)
    cases += [
        *([("unwritable output", read_only_disk,
            lambda out: evaluate_wavs_arguments(pred, gt, out), "read-only")] if mounted else []),
        ("unwritable output", below_a_file, lambda out: evaluate_wavs_arguments(pred, gt, out),
         "is a file"),
        ("corrupt input", plain_folder, lambda out: evaluate_wavs_arguments(bad, gt, out),
         "000003.wav"),
    ]
    tallies = [kills] + fault_runs("evaluate_wavs", os.path.join(work, "out"), cases, partial)
    if mounted:
        fills_during(tally_of(tallies, "evaluate_wavs", "disk full"),
                     lambda out: evaluate_wavs_arguments(pred, gt, out), os.path.join(work, "out"),
                     seconds, 2**20, rng,
                     lambda out: json_of(os.path.join(out, "s.json")) == expected, partial)
    return tallies


def binauralize_arguments(model: str, output: str, *inputs: str) -> list[str]:
    return command("binauralize", f"--model={model}", *inputs, f"--output_wav={output}/b.wav",
                   f"--output_video={output}/b.mp4", "--noprogress")


def bench_binauralize(work, root, model, rng, mounted) -> list[Tally]:
    test_id = split_ids(root, "test")[0]
    video = os.path.join(root, "videos", f"{test_id}.mp4")
    reference = os.path.join(work, "reference")
    (result, seconds) = timed(binauralize_arguments(model, reference, f"--video={video}"))
    assert result.returncode == 0, result.stderr[-2000:]
    output = os.path.join(work, "outputs")
    kills = kill_and_rerun(
        "binauralize", binauralize_arguments(model, output, f"--video={video}"), seconds, rng,
        output, lambda out: filecmp.cmp(os.path.join(out, "b.wav"),
                                        os.path.join(reference, "b.wav"), shallow=False)
        and os.path.isfile(os.path.join(out, "b.mp4")))
    frames = os.path.join(root, "frames", f"{test_id}.mp4")
    half = truncated(os.path.join(root, "binaural_audios", f"{test_id}.wav"),
                     os.path.join(work, "half.wav"))
    short = os.path.join(work, "short.wav")
    with open(os.path.join(root, "binaural_audios", f"{test_id}.wav"), "rb") as stream:
        import soundfile

        audio, rate = soundfile.read(stream)
    soundfile.write(short, audio[: rate // 10].mean(axis=1), rate)
    broken_video = truncated(video, os.path.join(work, "broken.mp4"), keep=0.3)
    garbage(os.path.join(work, "broken.keras"))
    wav_bytes = os.path.getsize(os.path.join(reference, "b.wav"))

    def partial(folder):
        return [name for name in ("b.wav", "b.mp4") if os.path.exists(os.path.join(folder, name))]

    inputs = f"--video={video}"
    cases = refusals(wav_bytes + os.path.getsize(video),
                     lambda out: binauralize_arguments(model, out, inputs), mounted)
    cases += [
        *([("unwritable output", read_only_disk,
            lambda out: binauralize_arguments(model, out, inputs), "read-only")] if mounted else []),
        ("unwritable output", below_a_file, lambda out: binauralize_arguments(model, out, inputs),
         "is a file"),
        ("corrupt input", plain_folder, lambda out: binauralize_arguments(
            model, out, f"--frames_dir={frames}", f"--audio={half}"), "truncated WAV"),
        ("corrupt input", plain_folder, lambda out: binauralize_arguments(
            model, out, f"--frames_dir={frames}", f"--audio={short}"), "0.10 s of sound"),
        ("corrupt input", plain_folder,
         lambda out: binauralize_arguments(model, out, f"--video={broken_video}"), "broken.mp4"),
        ("corrupt input", plain_folder,
         lambda out: binauralize_arguments(os.path.join(work, "broken.keras"), out, inputs),
         "broken.keras"),
    ]
    tallies = [kills] + fault_runs("binauralize", os.path.join(work, "out"), cases, partial)
    if mounted:
        fills_during(tally_of(tallies, "binauralize", "disk full"),
                     lambda out: binauralize_arguments(model, out, inputs),
                     os.path.join(work, "out"), seconds, 4 * 2**20, rng,
                     lambda out: filecmp.cmp(os.path.join(out, "b.wav"),
                                             os.path.join(reference, "b.wav"), shallow=False),
                     partial)
    return tallies


def export_arguments(model: str, output: str) -> list[str]:
    return command("export", f"--model={model}", f"--export_dir={output}", "--model_name=up",
                   "--version=1", "--overwrite")


def bench_export(work, model, rng, mounted) -> list[Tally]:
    reference = os.path.join(work, "reference")
    (result, seconds) = timed(export_arguments(model, reference))
    assert result.returncode == 0, result.stderr[-2000:]
    output = os.path.join(work, "exports")
    expected = entries(os.path.join(reference, "up", "1"))
    kills = kill_and_rerun("export", export_arguments(model, output), seconds, rng, output,
                           lambda out: entries(os.path.join(out, "up", "1")) == expected)
    size = sum(os.path.getsize(os.path.join(root_, name))
               for root_, _, names in os.walk(os.path.join(reference, "up", "1")) for name in names)
    truncated(model, os.path.join(work, "cut", "model.keras"))

    def partial(folder):
        return ["up/1"] if os.path.exists(os.path.join(folder, "up", "1")) else []

    cases = refusals(size, lambda out: export_arguments(model, out), mounted)
    cases += [
        *([("unwritable output", read_only_disk, lambda out: export_arguments(model, out),
            "read-only")] if mounted else []),
        ("unwritable output", below_a_file, lambda out: export_arguments(model, out), "is a file"),
        ("corrupt input", plain_folder,
         lambda out: export_arguments(os.path.join(work, "cut", "model.keras"), out),
         "model.keras"),
    ]
    tallies = [kills] + fault_runs("export", os.path.join(work, "out"), cases, partial)
    if mounted:
        fills_during(tally_of(tallies, "export", "disk full"),
                     lambda out: export_arguments(model, out), os.path.join(work, "out"),
                     seconds, 2 * size + 2**20, rng,
                     lambda out: entries(os.path.join(out, "up", "1")) == expected, partial)
    return tallies


def prepare_arguments(download: str, output: str) -> list[str]:
    return command("prepare_fairplay", f"--root={download}", f"--output_dir={output}",
                   "--frame_size=64x64")


def bench_prepare(work, root, rng, mounted) -> list[Tally]:
    download = os.path.join(work, "download")  # what FAIR-Play ships: videos, WAVs, h5 splits
    for folder in ("videos", "binaural_audios"):
        shutil.copytree(os.path.join(root, folder), os.path.join(download, folder))
    os.makedirs(os.path.join(download, "splits", "split1"))
    for name in ("train", "val", "test"):
        shutil.copy(os.path.join(root, "splits", "split1", f"{name}.h5"),
                    os.path.join(download, "splits", "split1"))
    reference = os.path.join(work, "reference")
    (result, seconds) = timed(prepare_arguments(download, reference))
    assert result.returncode == 0, result.stderr[-2000:]
    output = os.path.join(work, "prepared")
    tally = Tally("prepare_fairplay", f"kill -9 x {FLAGS.kills}")
    for _ in range(FLAGS.kills):
        killed = kill_at(prepare_arguments(download, output), rng.uniform(0, seconds))
        frames = os.path.join(output, "frames")
        done = {name: os.stat(os.path.join(frames, name)).st_mtime_ns
                for name in (os.listdir(frames) if os.path.isdir(frames) else [])
                if not files.is_temporary(name)}
        result = run(prepare_arguments(download, output))
        lost = any(not os.path.exists(os.path.join(frames, n))
                   or os.stat(os.path.join(frames, n)).st_mtime_ns != t for n, t in done.items())
        tally.add(result.returncode == 0 and same_tree(output, reference), debris_in(output), lost,
                  f"{'killed' if killed else 'finished first'} with {len(done)} clips done; "
                  f"rerun exit {result.returncode}")
        shutil.rmtree(output, ignore_errors=True)
    broken = os.path.join(work, "broken_download")
    shutil.copytree(download, broken)
    first = min(os.listdir(os.path.join(broken, "videos")))
    truncated(os.path.join(download, "videos", first), os.path.join(broken, "videos", first), 0.2)
    cases = [("disk full", disk(0), lambda out: prepare_arguments(download, out), "space")
             ] if mounted else []
    cases += [
        *([("unwritable output", read_only_disk, lambda out: prepare_arguments(download, out),
            "read-only")] if mounted else []),
        ("unwritable output", below_a_file,
         lambda out: prepare_arguments(download, os.path.join(out, "p")), "is a file"),
        # Documented: a clip that cannot be read is skipped, and the failures are listed.
        ("corrupt input", plain_folder, lambda out: prepare_arguments(broken, out), first, "list"),
    ]
    tallies = [tally] + fault_runs("prepare_fairplay", os.path.join(work, "out"), cases)
    if mounted:
        fills_during(tally_of(tallies, "prepare_fairplay", "disk full"),
                     lambda out: prepare_arguments(download, out), os.path.join(work, "out"),
                     seconds, 2 * tree_bytes(reference), rng,
                     lambda out: same_tree(out, reference))
    return tallies


# === Main ===


def main(argv):
    del argv
    rng = np.random.default_rng(FLAGS.seed)
    work = FLAGS.workdir
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    mounted = can_mount()
    print(f"tmpfs mounts: {'yes' if mounted else 'no (disk-full and read-only cases skipped)'}")
    started = time.monotonic()

    # References: the undisturbed runs the faults are compared with.
    root = os.path.join(work, "data")
    result, data_seconds = timed(make_dataset_arguments(root))
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = os.path.join(work, "reference_run")
    result, train_seconds = timed(train_arguments(run_dir, root))
    assert result.returncode == 0, result.stderr[-2000:]
    model = os.path.join(run_dir, "model.keras")
    eval_reference = os.path.join(work, "reference_eval")
    result, eval_seconds = timed(evaluate_arguments(run_dir, eval_reference))
    assert result.returncode == 0, result.stderr[-2000:]
    print(f"references: make_dataset {data_seconds:.0f} s, train {train_seconds:.0f} s, "
          f"evaluate {eval_seconds:.0f} s", flush=True)

    tallies: list[Tally] = []
    for tool in FLAGS.tools:
        folder = os.path.join(work, tool)
        os.makedirs(folder, exist_ok=True)
        print(f"== {tool}", flush=True)
        if tool == "make_dataset":
            tallies += bench_make_dataset(folder, root, data_seconds, rng, mounted)
        elif tool == "train":
            tallies += bench_train(folder, root, run_dir, train_seconds, rng, mounted)
        elif tool == "evaluate":
            tallies += bench_evaluate(folder, root, run_dir, eval_reference, eval_seconds, rng,
                                      mounted)
        elif tool == "evaluate_wavs":
            tallies += bench_evaluate_wavs(folder, root, rng, mounted)
        elif tool == "binauralize":
            tallies += bench_binauralize(folder, root, model, rng, mounted)
        elif tool == "export":
            tallies += bench_export(folder, model, rng, mounted)
        elif tool == "prepare_fairplay":
            tallies += bench_prepare(folder, root, rng, mounted)

    minutes = (time.monotonic() - started) / 60
    lines = ["| tool | fault | runs | ended cleanly | left debris | lost finished work |",
             "|---|---|---:|---:|---:|---:|"]
    for tally in tallies:
        lines.append(f"| {tally.tool} | {tally.fault} | {tally.runs} | {tally.clean} | "
                     f"{tally.debris} | {tally.lost} |")
    table = "\n".join(lines)
    print(f"\n{table}\n\n{minutes:.1f} min in all")
    with open(os.path.join(work, "results.json"), "w") as stream:
        json.dump({"minutes": minutes, "tmpfs": mounted,
                   "tallies": [dataclasses.asdict(t) for t in tallies]}, stream, indent=1)


if __name__ == "__main__":
    app.run(main)
