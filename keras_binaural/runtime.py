"""TensorFlow's settings for the CPU at hand: oneDNN, bfloat16, XLA and threads, per workload.

Every tool and benchmark calls `apply(workload)` at its top, before TensorFlow is imported:
TF_ENABLE_ONEDNN_OPTS and the thread counts are read once, when TensorFlow starts. It prints
one line, e.g.

    runtime: Intel(R) Xeon(R) Processor (avx512_bf16 amx_bf16) generate: oneDNN on, bfloat16 native
    (policy mixed_bfloat16), XLA on, 2 threads

(printed on one line). What acts at once: oneDNN and the threads, through the environment. The
rest are decisions for the code that uses them: `Settings.dtype_policy` for the models a
workload builds (loaded `.keras` models keep the policy they were saved with; the tools load
theirs, so today they run float32), `Settings.xla` for `jit_compile` (generation compiles
per layer by default; training reads `config.train.jit_compile`).

The decision itself is `decide(flags, cores, environ, workload)`, a pure function of the CPU's
flags (/proc/cpuinfo), its core count and the environment. This module imports nothing heavy
(no TensorFlow, no numpy), so that calling it first costs nothing.

Workloads: "train" (tools/train.py and the training benchmarks: CLUP's two ResNet-18s and the
denoiser), "generate" (binauralize, evaluate, export: the dilated Conv1D of the 6-step sampler),
"test" (the test suite, and the tools that train and sample nothing: small graphs, float32).

What wins, and the measurements behind it: GFLOP/s (2 x multiply-adds per wall second) with
oneDNN off / on, 2 cores, TF 2.16, of the dilated Conv1D [1, 64000, 64] -> 128 (k = 3, dilations
1 ... 512) and the 3x3 Conv2D [8, 128, 128, 64] -> 64 (`benchmarks/bench_onednn.py`: graph mode,
no XLA, each setting in its own process; BENCHMARKS.md has the runs):

| CPU | dtype | Conv1D off / on | Conv2D off / on |
|---|---|---|---|
| AMD EPYC, AVX2 only (issue 13, idle) | float32 | 67-95 / 24-28 | 66 / 112 |
| Xeon Sapphire Rapids (AMX), 3 runs, load 2-4 | float32 | 41-83 / 89-95 | 84-147 / 174-184 |
| Xeon Sapphire Rapids (AMX), 3 runs, load 2-4 | bfloat16 | 94-115 / 234-246 | 138-144 / 1145-1331 |

- oneDNN (TF_ENABLE_ONEDNN_OPTS): TensorFlow turns it on by itself only on CPUs with
  AVX512-VNNI, AVX512-BF16, AVX-VNNI or AMX. There it wins for both convolutions (above; and on
  the AVX512-BF16 EPYC, where the denoiser's speed figures were measured with it) and stays on.
  On a CPU without those (AVX2 only; AVX-512 without VNNI is assumed to be alike, unmeasured)
  it speeds the ResNet's Conv2D up 1.7x but slows the dilated Conv1D down 2.4-3.9x: on for
  "train" (CLUP's step at paper size is mostly its two ResNet-18s), off for "generate" (nearly
  all dilated Conv1D); "test" keeps TensorFlow's own default (off there). Not yet measured
  there: a whole train step. At demo size it is about half the denoiser (C = 16, its dilated
  convolutions written as space-to-batch and a plain Conv1D) and a fifth the spatial prior's
  Conv2D, and the audio-only upmixer's is nearly all denoiser: either may prefer oneDNN off.
- bfloat16 (the "mixed_bfloat16" Keras policy: bfloat16 compute, float32 variables): only where
  the CPU computes it natively (avx512_bf16 or amx_bf16), and only for "generate": C = 64
  generation (`benchmarks/bench_denoiser_speed.py`, XLA on) runs at RTF 0.55 in bfloat16
  against 0.83 in float32 on the AVX512-BF16 EPYC, 0.91 against 2.01 on the Sapphire Rapids
  (loaded, load 3-4.5); without native support it gains 8 % by moving half the bytes
  (issue 13), not worth its rounding. Training and tests stay float32 (their losses and
  references are float32), but for one part: the spatial prior's audio CNN (five 3 x 3 Conv2D
  on every spectrum, a fifth to a third of the demo's CLUP step) runs in bfloat16 where
  `bfloat16_pays` and the model asks for it (`SpatialPrior(audio_dtype="auto")`, the demo
  configuration): 1.7x on that CNN, 1.1-1.2x on the step, Table 2 unchanged (BENCHMARKS.md); the
  denoiser at demo size (C = 16) does not gain (0.97-1.04x). This module does not set Keras's
  global policy: a policy acts when a model is built, and half-set policies in a loaded model
  would mix dtypes.
- XLA: for "generate" (one XLA cluster per residual layer, float32: RTF 0.83 against 1.13
  without on the EPYC, 2.01 against 2.86 on the Sapphire Rapids, loaded; bfloat16 there: 0.91
  against 2.44); not for "train" (TF 2.16 fails to convert the upmixer's train step:
  `config.train.jit_compile = False`) nor "test" (compiling costs more than small runs gain).
- Threads: intra-op = the cores this process may use, inter-op = the same (TensorFlow's own
  default, made explicit so that it can be overridden), through TF_NUM_INTRAOP_THREADS and
  TF_NUM_INTEROP_THREADS.

Environment overrides (each wins over the decision; an unreadable value is an error naming it):

| variable | values | what |
|---|---|---|
| KERAS_BINAURAL_ONEDNN | 0 / 1 | oneDNN off / on (TF_ENABLE_ONEDNN_OPTS) |
| KERAS_BINAURAL_BF16 | 0 / 1 | `Settings.dtype_policy` float32 / mixed_bfloat16; `bfloat16_pays` |
| KERAS_BINAURAL_XLA | 0 / 1 | `Settings.xla` off / on |
| KERAS_BINAURAL_THREADS | N >= 1 | intra-op and inter-op threads (TF_NUM_INTRAOP_THREADS, ...) |

Set these, not TensorFlow's variables: `apply` overwrites those, so that a tool started by
another (the demo starts train.py and binauralize.py) decides for its own workload. They are
inherited by child processes.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping, MutableMapping

WORKLOADS = ("train", "generate", "test")

# The flags for which TensorFlow 2.16 enables oneDNN by itself (its x86 Linux builds).
ONEDNN_NATIVE_FLAGS = frozenset({"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile"})
BF16_NATIVE_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# Named in the start-up line, most telling first (at most two).
SUMMARY_FLAGS = ("avx512_bf16", "amx_bf16", "avx512_vnni", "avx512f", "avx2")


@dataclasses.dataclass(frozen=True)
class Settings:
    """What `decide` chose for one workload.

    Attributes:
      workload: "train", "generate" or "test".
      onednn: TF_ENABLE_ONEDNN_OPTS=1.
      bfloat16_native: the CPU computes bfloat16 in hardware (avx512_bf16 or amx_bf16).
      bfloat16: build this workload's models in "mixed_bfloat16" (bfloat16 compute, float32
        variables); see `dtype_policy`.
      xla: compile where the code offers it (`jit_compile`).
      intra_op_threads, inter_op_threads: TensorFlow's two thread pools.
    """

    workload: str
    onednn: bool
    bfloat16_native: bool
    bfloat16: bool
    xla: bool
    intra_op_threads: int
    inter_op_threads: int

    @property
    def dtype_policy(self) -> str:
        """The Keras dtype policy for models this workload builds."""
        return "mixed_bfloat16" if self.bfloat16 else "float32"

    def environ(self) -> dict[str, str]:
        """The variables TensorFlow reads when it starts."""
        return {
            "TF_ENABLE_ONEDNN_OPTS": "1" if self.onednn else "0",
            "TF_NUM_INTRAOP_THREADS": str(self.intra_op_threads),
            "TF_NUM_INTEROP_THREADS": str(self.inter_op_threads),
        }

    def describe(self) -> str:
        """'train: oneDNN on, bfloat16 native (policy float32), XLA off, 2 threads'."""
        native = "bfloat16 native" if self.bfloat16_native else "no native bfloat16"
        threads = f"{self.intra_op_threads} thread{'s' if self.intra_op_threads > 1 else ''}"
        return (f"{self.workload}: oneDNN {'on' if self.onednn else 'off'}, "
                f"{native} (policy {self.dtype_policy}), XLA {'on' if self.xla else 'off'}, "
                f"{threads}")


def _switch(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name, "").strip()
    if not value:
        return default
    if value not in ("0", "1"):
        raise ValueError(f"{name}={value!r}: want 0 or 1")
    return value == "1"


def _count(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r}: want a whole number >= 1")
    return int(value)


def decide(flags: set[str] | frozenset[str], cores: int, environ: Mapping[str, str],
           workload: str = "test") -> Settings:
    """The settings that win for `workload` on a CPU with `flags` and `cores` usable cores.

    Args:
      flags: the CPU's flags as /proc/cpuinfo spells them ("avx2", "avx512_bf16", "amx_bf16", ...).
      cores: cores this process may run on (>= 1).
      environ: the environment; the KERAS_BINAURAL_* overrides of the module docstring win.
      workload: "train", "generate" or "test".

    Raises:
      ValueError: an unknown workload, or an override that is not understood.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"workload {workload!r}: want one of {', '.join(WORKLOADS)}")
    onednn_native = bool(flags & ONEDNN_NATIVE_FLAGS)
    # Without the AVX-512/AMX kernels, oneDNN's Conv2D wins and its dilated Conv1D loses.
    onednn = onednn_native or workload == "train"
    bfloat16_native = bool(flags & BF16_NATIVE_FLAGS)
    bfloat16 = bfloat16_native and workload == "generate"
    xla = workload == "generate"
    threads = _count(environ, "KERAS_BINAURAL_THREADS", max(1, cores))
    return Settings(
        workload=workload,
        onednn=_switch(environ, "KERAS_BINAURAL_ONEDNN", onednn),
        bfloat16_native=bfloat16_native,
        bfloat16=_switch(environ, "KERAS_BINAURAL_BF16", bfloat16),
        xla=_switch(environ, "KERAS_BINAURAL_XLA", xla),
        intra_op_threads=threads,
        inter_op_threads=threads,
    )


def bfloat16_pays(flags: set[str] | frozenset[str], environ: Mapping[str, str]) -> bool:
    """Whether a part that asks for bfloat16 "where it pays" should compute in it: where the CPU
    has bfloat16 in hardware (avx512_bf16 or amx_bf16); KERAS_BINAURAL_BF16 = 0 / 1 overrides.

    Used for the training step's one part that gains from it in float32 training, the spatial
    prior's audio CNN (`SpatialPrior(audio_dtype="auto")`, 1.7 x on both native CPU kinds).

    Raises:
      ValueError: an override that is not understood.
    """
    return _switch(environ, "KERAS_BINAURAL_BF16", bool(flags & BF16_NATIVE_FLAGS))


def _cpuinfo_field(name: str, cpuinfo: str = "/proc/cpuinfo") -> str:
    """The first value of `name` in /proc/cpuinfo ("" where there is none, e.g. not Linux)."""
    try:
        with open(cpuinfo) as stream:
            for line in stream:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


def cpu_flags() -> frozenset[str]:
    """This CPU's flags from /proc/cpuinfo (empty where it cannot be read)."""
    return frozenset(_cpuinfo_field("flags").split())


def cpu_model() -> str:
    """This CPU's model name from /proc/cpuinfo ("unknown CPU" where it cannot be read)."""
    return _cpuinfo_field("model name") or "unknown CPU"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def summary_flags(flags: set[str] | frozenset[str]) -> list[str]:
    """The flags that decide, as named in the start-up line: ["avx512_bf16", "amx_bf16"] on a
    Sapphire Rapids, ["avx2"] on an AVX2-only CPU."""
    return [flag for flag in SUMMARY_FLAGS if flag in flags][:2]


def apply(workload: str, environ: MutableMapping[str, str] | None = None,
          verbose: bool = True) -> Settings:
    """Decides for this machine and `workload` and sets the environment TensorFlow reads.

    Call it before TensorFlow is imported. If it already is, oneDNN can no longer change, and the
    thread counts are set through `tf.config.threading` if the runtime has not started yet.

    Args:
      workload: "train", "generate" or "test".
      environ: the environment to read and set (default `os.environ`).
      verbose: print the decision as one line on stdout.

    Returns:
      the `Settings`.

    Raises:
      SystemExit: an override that is not understood, as one line naming it (a program's start
        is where this is called).
    """
    environ = os.environ if environ is None else environ
    flags = cpu_flags()
    try:
        settings = decide(flags, usable_cores(), environ, workload)
    except ValueError as error:
        raise SystemExit(f"runtime: error: {error}") from None
    environ.update(settings.environ())
    late = "tensorflow" in sys.modules
    if late:
        tf = sys.modules["tensorflow"]
        try:
            tf.config.threading.set_intra_op_parallelism_threads(settings.intra_op_threads)
            tf.config.threading.set_inter_op_parallelism_threads(settings.inter_op_threads)
        except RuntimeError:  # the runtime has started: its pools are fixed
            pass
    if verbose:
        named = " ".join(summary_flags(flags)) or "no AVX2"
        note = " (TensorFlow was already imported: oneDNN unchanged)" if late else ""
        print(f"runtime: {cpu_model()} ({named}) {settings.describe()}{note}", flush=True)
    return settings
