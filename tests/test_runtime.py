"""keras_binaural.runtime: TensorFlow's settings from the CPU's flags, per workload."""

import json
import os
import subprocess
import sys

import pytest

from keras_binaural import runtime

AVX2_EPYC = frozenset({"sse4_2", "avx", "avx2", "fma"})
AVX512_BF16_EPYC = AVX2_EPYC | {"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"}
SAPPHIRE_RAPIDS = AVX512_BF16_EPYC | {"avx_vnni", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"}


@pytest.mark.parametrize(
    ("flags", "workload", "onednn", "bfloat16", "xla"),
    [
        # AVX2 only: oneDNN doubles the ResNet's Conv2D but slows the dilated Conv1D 3x.
        (AVX2_EPYC, "train", True, False, False),
        (AVX2_EPYC, "generate", False, False, True),
        (AVX2_EPYC, "test", False, False, False),
        # Native bfloat16: oneDNN everywhere, bfloat16 for generation only.
        (AVX512_BF16_EPYC, "train", True, False, False),
        (AVX512_BF16_EPYC, "generate", True, True, True),
        (AVX512_BF16_EPYC, "test", True, False, False),
        (SAPPHIRE_RAPIDS, "train", True, False, False),
        (SAPPHIRE_RAPIDS, "generate", True, True, True),
        (SAPPHIRE_RAPIDS, "test", True, False, False),
        # VNNI without bfloat16 (e.g. Cascade Lake): TensorFlow's oneDNN default, float32.
        (AVX2_EPYC | {"avx512f", "avx512_vnni"}, "generate", True, False, True),
    ],
)
def test_the_decision_for_each_cpu_kind_and_workload(flags, workload, onednn, bfloat16, xla):
    settings = runtime.decide(flags, cores=2, environ={}, workload=workload)
    assert (settings.onednn, settings.bfloat16, settings.xla) == (onednn, bfloat16, xla)
    assert settings.dtype_policy == ("mixed_bfloat16" if bfloat16 else "float32")
    assert (settings.intra_op_threads, settings.inter_op_threads) == (2, 2)


def test_the_environment_tensorflow_reads_and_the_line():
    settings = runtime.decide(AVX2_EPYC, cores=2, environ={}, workload="generate")
    assert settings.environ() == {
        "TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "2",
    }
    assert settings.describe() == (
        "generate: oneDNN off, no native bfloat16 (policy float32), XLA on, 2 threads")
    settings = runtime.decide(SAPPHIRE_RAPIDS, cores=1, environ={}, workload="generate")
    assert settings.describe() == (
        "generate: oneDNN on, bfloat16 native (policy mixed_bfloat16), XLA on, 1 thread")
    assert runtime.summary_flags(SAPPHIRE_RAPIDS) == ["avx512_bf16", "amx_bf16"]
    assert runtime.summary_flags(AVX512_BF16_EPYC) == ["avx512_bf16", "avx512_vnni"]
    assert runtime.summary_flags(AVX2_EPYC) == ["avx2"]


@pytest.mark.parametrize(
    ("flags", "environ", "field", "value"),
    [
        (SAPPHIRE_RAPIDS, {"KERAS_BINAURAL_ONEDNN": "0"}, "onednn", False),
        (AVX2_EPYC, {"KERAS_BINAURAL_ONEDNN": "1"}, "onednn", True),
        (AVX2_EPYC, {"KERAS_BINAURAL_BF16": "1"}, "bfloat16", True),
        (SAPPHIRE_RAPIDS, {"KERAS_BINAURAL_BF16": "0"}, "bfloat16", False),
        (SAPPHIRE_RAPIDS, {"KERAS_BINAURAL_XLA": "0"}, "xla", False),
        (SAPPHIRE_RAPIDS, {"KERAS_BINAURAL_THREADS": "3"}, "inter_op_threads", 3),
        (SAPPHIRE_RAPIDS, {"KERAS_BINAURAL_THREADS": "3"}, "intra_op_threads", 3),
        (SAPPHIRE_RAPIDS, {"KERAS_BINAURAL_ONEDNN": ""}, "onednn", True),  # empty: no override
        # TensorFlow's own variable is what `apply` writes, not an override.
        (SAPPHIRE_RAPIDS, {"TF_ENABLE_ONEDNN_OPTS": "0"}, "onednn", True),
    ],
)
def test_environment_overrides_win(flags, environ, field, value):
    settings = runtime.decide(flags, cores=2, environ=environ, workload="generate")
    assert getattr(settings, field) == value


@pytest.mark.parametrize(
    ("environ", "workload", "message"),
    [
        ({"KERAS_BINAURAL_ONEDNN": "yes"}, "train", "KERAS_BINAURAL_ONEDNN='yes': want 0 or 1"),
        ({"KERAS_BINAURAL_THREADS": "0"}, "train", "KERAS_BINAURAL_THREADS='0': want a whole"),
        ({}, "serve", "workload 'serve': want one of train, generate, test"),
    ],
)
def test_what_is_not_understood_is_named(environ, workload, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        runtime.decide(AVX2_EPYC, cores=2, environ=environ, workload=workload)


@pytest.mark.parametrize(
    ("flags", "environ", "pays"),
    [
        (AVX2_EPYC, {}, False),  # emulated: no gain worth the rounding
        (AVX512_BF16_EPYC, {}, True),
        (SAPPHIRE_RAPIDS, {}, True),
        (AVX2_EPYC | {"avx512f", "avx512_vnni"}, {}, False),
        (SAPPHIRE_RAPIDS, {"KERAS_BINAURAL_BF16": "0"}, False),
        (AVX2_EPYC, {"KERAS_BINAURAL_BF16": "1"}, True),
    ],
)
def test_bfloat16_pays_where_the_cpu_has_it_or_the_environment_says(flags, environ, pays):
    assert runtime.bfloat16_pays(flags, environ) is pays
    with pytest.raises(ValueError, match="KERAS_BINAURAL_BF16='2': want 0 or 1"):
        runtime.bfloat16_pays(flags, {"KERAS_BINAURAL_BF16": "2"})


PROBE = """
import json, os, sys
from keras_binaural import runtime
runtime.apply(sys.argv[1])
names = ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras", "numpy"})
print(json.dumps({"environ": {name: os.environ[name] for name in names}, "heavy": heavy}))
if len(sys.argv) > 2:  # then TensorFlow starts with what apply set
    from tensorflow.python.util import _pywrap_util_port
    print(json.dumps({"onednn": _pywrap_util_port.IsMklEnabled()}))
"""


def _probe(*args: str, **environ: str) -> subprocess.CompletedProcess:
    """PROBE in a fresh process, with `environ` as the only overrides; TF_ENABLE_ONEDNN_OPTS=1
    given, to be overwritten."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("KERAS_BINAURAL_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", TF_ENABLE_ONEDNN_OPTS="1", **environ)
    return subprocess.run([sys.executable, "-c", PROBE, *args], check=False, env=env,
                          capture_output=True, text=True, timeout=120)


def test_apply_sets_the_environment_without_importing_tensorflow():
    result = _probe("generate", KERAS_BINAURAL_ONEDNN="0", KERAS_BINAURAL_THREADS="1")
    assert result.returncode == 0, result.stderr
    line, output = result.stdout.strip().splitlines()
    assert line.startswith("runtime: ") and " generate: oneDNN off, " in line
    assert line.endswith(", XLA on, 1 thread")
    assert json.loads(output) == {
        "environ": {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_NUM_INTRAOP_THREADS": "1",
                    "TF_NUM_INTEROP_THREADS": "1"},
        "heavy": [],
    }


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_tensorflow_starts_with_what_apply_decided(onednn):
    result = _probe("test", "import", KERAS_BINAURAL_ONEDNN=onednn)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"onednn": onednn == "1"}


def test_an_override_not_understood_stops_a_program_in_one_line():
    result = _probe("train", KERAS_BINAURAL_BF16="on")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "runtime: error: KERAS_BINAURAL_BF16='on': want 0 or 1"]
