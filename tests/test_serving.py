"""SavedModel export for TF Serving: tools/export.py, saved_model_cli, a fresh process, PredictRequest.

TF Serving itself cannot run here (no container engine), so the serving path is checked as far as
it goes without it: the signatures saved_model_cli lists, and a PredictRequest built with
tensorflow-serving-api, serialized as it would cross the wire, decoded into the loaded signature's
inputs (tf.make_ndarray) and answered with a PredictResponse in a fresh Python process.
"""

import base64
import io
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import tensorflow as tf
from training_data import config_module

from keras_binaural import files, generation, serving, training
from keras_binaural.audio import resample
from keras_binaural.models.clup import CLUP
from keras_binaural.models.upmixer import Upmixer

REPO = pathlib.Path(__file__).resolve().parents[1]
FRAME_WH = (64, 64)
SEED = 7
TINY = config_module().get_config("tiny")  # CLUP as configs/clup.py:tiny builds it

# Runs in a fresh process: loads the SavedModel and answers PredictRequests through its signatures.
PREDICT_SCRIPT = r"""
import base64, json, sys
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

path, requests_path, outputs_path = sys.argv[1:]
loaded = tf.saved_model.load(path)
with np.load(requests_path, allow_pickle=True) as data:
    arrays = {key: data[key] for key in data.files}
results = {}
for label, name, keys in json.loads(arrays.pop("plan").item()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "clup"
    request.model_spec.signature_name = name
    for key in keys:
        request.inputs[key].CopyFrom(tf.make_tensor_proto(arrays[f"{label}/{key}"]))
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())  # the wire

    # What the model server does with it:
    signature = loaded.signatures[request.model_spec.signature_name]
    expected = set(signature.structured_input_signature[1])
    if set(request.inputs) != expected:
        raise SystemExit(f"request inputs {sorted(request.inputs)} != signature {sorted(expected)}")
    inputs = {key: tf.constant(tf.make_ndarray(proto)) for key, proto in request.inputs.items()}
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for key, value in signature(**inputs).items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    response = predict_pb2.PredictResponse.FromString(response.SerializeToString())

    for key, proto in response.outputs.items():
        results[f"{label}/{key}"] = tf.make_ndarray(proto)

# A REST body in the columnar format ({"signature_name", "inputs"}), decoded as the model
# server's JSON mapping does: {"b64": ...} to bytes, lists to tensors of the signature's dtype.
body = json.loads(arrays.pop("rest_body").item())
signature = loaded.signatures[body["signature_name"]]
specs = signature.structured_input_signature[1]
def decode(value):
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    return [decode(item) for item in value] if isinstance(value, list) else value
inputs = {key: tf.constant(np.array(decode(value), dtype=specs[key].dtype.as_numpy_dtype))
          for key, value in body["inputs"].items()}
reply = json.dumps({"outputs": {k: v.numpy().tolist() for k, v in signature(**inputs).items()}})
for key, value in json.loads(reply)["outputs"].items():
    results[f"rest/{key}"] = np.array(value, np.float32)

# Bad requests fail with a message in the request's terms (what TF Serving returns as status).
serving = loaded.signatures["serving_default"]
mono, frames = tf.constant(arrays["mono/mono"]), tf.constant(arrays["mono/frames"])
bad = {
    "short_frames": lambda: signature(wav_bytes=inputs["wav_bytes"], frames=inputs["frames"][:, :3]),
    "rank_1_mono": lambda: serving(mono=mono[0], frames=frames[:1]),
    "batch_mismatch": lambda: serving(mono=mono, frames=frames[:1]),
    "not_a_wav": lambda: signature(wav_bytes=tf.constant([b"hello"]), frames=inputs["frames"]),
}
for label, call in bad.items():
    try:
        call()
        results[f"bad/{label}"] = np.array("no error")
    except tf.errors.InvalidArgumentError as error:
        found = [line[line.index("assertion failed"):].strip()
                 for line in error.message.splitlines() if "assertion failed" in line]
        results[f"bad/{label}"] = np.array((found or [error.message])[0])
np.savez(outputs_path, **results)
"""


def _on_16_bit_grid(audio):
    """Audio that a 16-bit WAV holds exactly."""
    return (np.round(np.asarray(audio) * 32768).clip(-32768, 32767) / 32768).astype(np.float32)


def _wav_bytes(audio, rate):
    """A 16-bit PCM WAV file of `audio` (on the 16-bit grid: written as integers, exactly)."""
    buffer = io.BytesIO()
    samples = np.round(np.asarray(audio) * 32768).astype(np.int16)
    soundfile.write(buffer, samples, rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def _run(args, **kwargs):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=REPO, check=False, **kwargs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny CLUP saved as .keras, exported with tools/export.py; (model, path, version dir)."""
    root = tmp_path_factory.mktemp("serving")
    model = training.build_model(TINY)
    assert isinstance(model, CLUP)
    model_path = str(root / "model.keras")
    model.save(model_path)
    leftover = root / "exports" / "clup" / ".3.k2j4h5g6.tmp"  # what a killed export leaves
    leftover.mkdir(parents=True)
    (leftover / "saved_model.pb").write_bytes(b"half")
    result = _run(["tools/export.py", f"--model={model_path}", f"--export_dir={root / 'exports'}",
                   "--model_name=clup", "--version=3", "--frame_size=64x64", f"--seed={SEED}"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "exported to" in result.stdout
    return model, model_path, root / "exports" / "clup" / "3"


def _inputs(seconds=1.25, batch=1, seed=0):
    rng = np.random.default_rng(seed)
    num_samples = int(seconds * 16000)
    mono = rng.uniform(-0.5, 0.5, (batch, num_samples)).astype(np.float32)
    frames = rng.random((batch, -(-num_samples // 1600), FRAME_WH[1], FRAME_WH[0], 3))
    return mono, frames.astype(np.float32)


def test_export_writes_one_complete_version_folder(exported):
    _, _, version_dir = exported
    assert sorted(os.listdir(version_dir.parent)) == ["3"]  # no temporary folder left
    assert (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "variables" / "variables.index").is_file()
    metadata = json.loads((version_dir / "assets.extra" / "keras_binaural.json").read_text())
    assert metadata["sampler"] == "fast" and metadata["seed"] == SEED
    assert metadata["frame_size_wh"] == [64, 64] and metadata["sample_rate_hz"] == 16000
    assert metadata["outputs"] == ["binaural", "map"]


def test_saved_model_cli_lists_both_signatures(exported):
    _, _, version_dir = exported
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    result = subprocess.run([str(cli), "show", "--all", "--dir", str(version_dir)],
                            capture_output=True, text=True, check=False,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    blocks = {}
    for block in result.stdout.split("signature_def['")[1:]:
        name, _, body = block.partition("']:")
        blocks[name] = body.split("Method name is:")[0]
    assert set(blocks) == {"__saved_model_init_op", "serving_default", "binauralize_wav"}
    del blocks["__saved_model_init_op"]  # TF's own, in every SavedModel

    def tensors(block, kind):
        found = re.findall(rf"{kind}\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: \(([^)]*)\)",
                           block)
        return {name: (dtype, shape.replace(" ", "")) for name, dtype, shape in found}

    outputs = {"binaural": ("DT_FLOAT", "-1,-1,2"), "map": ("DT_FLOAT", "-1,-1,64,64")}
    frames = ("DT_FLOAT", "-1,-1,64,64,3")
    assert tensors(blocks["serving_default"], "inputs") == {
        "mono": ("DT_FLOAT", "-1,-1"), "frames": frames}
    assert tensors(blocks["binauralize_wav"], "inputs") == {
        "wav_bytes": ("DT_STRING", "-1"), "frames": frames}
    for block in blocks.values():
        assert tensors(block, "outputs") == outputs


def test_predict_requests_in_a_fresh_process_match_the_in_memory_model(exported, tmp_path):
    model, _, version_dir = exported
    mono, frames = _inputs(seconds=1.25, batch=2)
    mono = _on_16_bit_grid(mono)
    stereo_44k = _on_16_bit_grid(np.random.default_rng(1).uniform(-0.4, 0.4, (22050, 2)))
    # A stereo 44.1 kHz WAV: downmixed and resampled in the graph.
    resampled = resample(stereo_44k.mean(axis=1), 44100, 16000).numpy()
    frames_44k = _inputs(seconds=len(resampled) / 16000, seed=2)[1]
    plan = [["mono", "serving_default", ["mono", "frames"]],
            ["wav", "binauralize_wav", ["wav_bytes", "frames"]],
            ["wav_44k", "binauralize_wav", ["wav_bytes", "frames"]]]
    requests = {
        "mono/mono": mono, "mono/frames": frames,
        "wav/wav_bytes": np.array([_wav_bytes(m, 16000) for m in mono], object),
        "wav/frames": frames,
        "wav_44k/wav_bytes": np.array([_wav_bytes(stereo_44k, 44100)], object),
        "wav_44k/frames": frames_44k,
    }
    rest_body = {"signature_name": "binauralize_wav", "inputs": {
        "wav_bytes": [{"b64": base64.b64encode(_wav_bytes(mono[0], 16000)).decode("ascii")}],
        "frames": frames[:1].tolist()}}
    np.savez(tmp_path / "requests.npz", plan=np.array(json.dumps(plan)),
             rest_body=np.array(json.dumps(rest_body)), **requests)
    result = _run(["-c", PREDICT_SCRIPT, str(version_dir), str(tmp_path / "requests.npz"),
                   str(tmp_path / "outputs.npz")])
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = dict(np.load(tmp_path / "outputs.npz"))

    expected = model.generate(mono, frames, seed=SEED)  # eager, XLA: the user's path
    served = outputs["mono/binaural"]
    assert served.shape == (2, mono.shape[1], 2) and served.dtype == np.float32
    np.testing.assert_allclose(served, expected, atol=1e-4)
    np.testing.assert_allclose(served.mean(axis=-1), mono, atol=1e-6)  # Eq. 3: (L + R) / 2 = m
    assert outputs["mono/map"].shape == (2, frames.shape[1], 64, 64)
    np.testing.assert_array_equal(outputs["wav/binaural"], served)
    np.testing.assert_array_equal(outputs["wav/map"], outputs["mono/map"])
    # The REST request (first clip alone): the same audio, and the map for each frame.
    np.testing.assert_allclose(outputs["rest/binaural"], model.generate(mono[:1], frames[:1],
                                                                          seed=SEED), atol=1e-4)
    np.testing.assert_allclose(outputs["rest/map"], outputs["mono/map"][:1], atol=1e-6)
    samples = mono.shape[1]
    assert str(outputs["bad/short_frames"]) == (
        "assertion failed: [frames: want ceil(time / 1600) frames (one per 0.1 s of wav_bytes, "
        "within one) or 1 for the whole clip; got num_frames, audio samples:] [3] [20000]")
    assert str(outputs["bad/rank_1_mono"]) == (
        "assertion failed: [mono: want [batch, time] float32 at 16 kHz (one row per clip; add a "
        f"batch axis for one clip); got shape] [{samples}]")
    assert str(outputs["bad/batch_mismatch"]) == (
        "assertion failed: [frames and mono: a different number of clips (one row of frames per "
        "clip); got frames, mono:] [1] [2]")
    assert str(outputs["bad/not_a_wav"]) == (
        "assertion failed: [wav_bytes: an item is not a WAV file (no RIFF/WAVE header); want the "
        "bytes of a 16-bit PCM WAV file]")
    expected_44k = model.generate(resampled[None], frames_44k, seed=SEED)
    np.testing.assert_allclose(outputs["wav_44k/binaural"], expected_44k, atol=1e-4)


def test_graph_generation_equals_generate_over_windows(exported):
    model, _, _ = exported
    mono, frames = _inputs(seconds=0.9, batch=2, seed=3)  # two windows of 0.5 s, 0.1 s overlap
    windows = {"window_seconds": 0.5, "overlap_seconds": 0.1}
    expected = model.generate(mono, frames, seed=SEED, jit_compile=False, progress=False,
                              **windows)
    binaural, maps = tf.function(lambda m, f: generation.generate_in_graph(
        model, m, f, seed=SEED, **windows))(tf.constant(mono), tf.constant(frames))
    np.testing.assert_allclose(binaural.numpy(), expected, atol=1e-6)
    patches = generation.frame_patches(mono, frames.shape[1])
    np.testing.assert_allclose(maps.numpy()[:, 4],
                               model.localizer.localize(frames[:, 4], patches[:, 4]), atol=1e-6)


def test_audio_only_export_has_no_frames_and_refuses_an_existing_version(tmp_path):
    model = Upmixer(guidance="none", residual_channels=8, num_cycles=1, conditioner_channels=8)
    path = serving.export_saved_model(model, tmp_path, "audio_only", 1)
    with pytest.raises(serving.ExportError, match="version 1 of audio_only already exists"):
        serving.export_saved_model(model, tmp_path, "audio_only", 1)
    assert serving.export_saved_model(model, tmp_path, "audio_only", 1, seed=2,
                                      overwrite=True) == path
    assert sorted(os.listdir(tmp_path / "audio_only")) == ["1"]
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    assert set(signature.structured_input_signature[1]) == {"mono"}
    mono = _inputs(seconds=0.5)[0]
    served = signature(mono=tf.constant(mono))
    assert set(served) == {"binaural"}
    np.testing.assert_allclose(served["binaural"].numpy(), model.generate(mono, seed=2),
                               atol=1e-4)


@pytest.mark.parametrize("arguments, message", [
    ({"model_name": "my model"}, "model_name 'my model': use letters"),
    ({"version": 0}, "version 0: must be a positive integer"),
    ({"sampler": "ddim"}, "sampler 'ddim': must be one of fast, few, full"),
])
def test_bad_export_arguments_are_refused_before_any_work(tmp_path, arguments, message):
    settings = {"export_dir": tmp_path, "model_name": "clup", "version": 1, "sampler": "fast"}
    settings.update(arguments)
    with pytest.raises(serving.ExportError, match=re.escape(message)):
        serving.check_export_arguments(**settings)
    assert not os.listdir(tmp_path)


def test_export_tool_names_the_flag_and_writes_nothing(exported, tmp_path):
    _, model_path, _ = exported
    result = _run(["tools/export.py", f"--model={model_path}", f"--export_dir={tmp_path}",
                   "--model_name=clup", "--version=-2"])
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == ("export: error: --version -2: must be a positive integer (TF Serving serves "
                    "the highest numeric version folder)")
    assert not os.listdir(tmp_path)


def test_an_export_dir_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("")
    with pytest.raises(serving.ExportError) as error:
        serving.check_export_arguments(tmp_path / "afile" / "exports", "clup", 1)
    assert str(error.value) == (f"export_dir={tmp_path}/afile/exports: {tmp_path}/afile is a file, "
                                f"so the folder {tmp_path}/afile/exports cannot be created; choose "
                                "another path")


def test_a_full_disk_while_exporting_is_one_line_and_leaves_no_version(tmp_path, monkeypatch):
    import keras

    def full_disk(self, path, **kwargs):
        os.makedirs(os.path.join(path, "variables"))
        raise tf.errors.ResourceExhaustedError(
            None, None, f"{path}/variables/variables_temp/part-00000-of-00001.data-00000-of-00001"
            ".tempstate1685; No space left on device [Op:SaveV2]")

    # ExportArchive() makes an instance of a backend class: patch that one.
    monkeypatch.setattr(type(keras.export.ExportArchive()), "write_out", full_disk)
    model = Upmixer(guidance="none", residual_channels=8, num_cycles=1, conditioner_channels=8)
    with pytest.raises(files.OutputError) as error:
        serving.export_saved_model(model, tmp_path, "audio_only", 1)
    assert str(error.value) == (f"{tmp_path}/audio_only/1: cannot write (No space left on "
                                "device); the disk is full: free space or choose another folder; "
                                "nothing was written")
    assert os.listdir(tmp_path / "audio_only") == []
