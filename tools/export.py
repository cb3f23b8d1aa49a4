r"""Exports a trained model as a SavedModel for TensorFlow Serving (SPEC section 7).

Usage:
  python tools/export.py --model runs/demo/model.keras --export_dir exports --model_name clup \
      --version 1 [--frame_size 128x128] [--sampler fast] [--seed 0] [--overwrite]

Writes exports/clup/1/ (saved_model.pb, variables/, assets.extra/keras_binaural.json) with the
signatures `serving_default` (mono [batch, time] float32 at 16 kHz + frames [batch, num_frames,
H, W, 3] float32 in [0, 1] -> binaural [batch, time, 2], map [batch, num_frames, H, W]) and
`binauralize_wav` (wav_bytes [batch] string + frames -> the same); see keras_binaural/serving.py.
Inspect it with `saved_model_cli show --all --dir exports/clup/1`. The folder appears only when
complete (a killed export's temporary folder is removed by the next export of that version); an
existing version is refused unless --overwrite. On bad input (also an --export_dir that cannot be
written or has no room for the variables, or a disk that fills up while writing) the tool prints
one line naming the flag or file and the problem, exits with status 1 and writes nothing.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("generate")  # before TensorFlow starts: it reads these once

from absl import app, flags, logging

from keras_binaural import cli, files, runs, serving
from keras_binaural.conventions import SAMPLERS

_MODEL = flags.DEFINE_string("model", None, "The trained model, a .keras file.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Base folder; the model goes to DIR/NAME/VERSION.")
_MODEL_NAME = flags.DEFINE_string("model_name", None, "Name clients call (/v1/models/NAME:predict).")
_VERSION = flags.DEFINE_integer("version", None, "Version number (a positive integer).")
_FRAME_SIZE = flags.DEFINE_string(
    "frame_size", None,
    "Frame size WxH of the frames input (default: data.crop_hw of the run's config.json beside "
    "the model, else 128x128).")
_SAMPLER = flags.DEFINE_enum("sampler", None, list(SAMPLERS),
                             "Sampler, fixed in the export (default: the run's eval.sampler in "
                             "config.json beside the model, else fast).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampler seed, fixed in the export.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing version folder.")
flags.mark_flags_as_required(["model", "export_dir", "model_name", "version"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    # TensorFlow's INFO lines about saving (thousands of renamed loop inputs) drown the result.
    logging.set_verbosity(logging.WARNING)
    try:
        size = cli.parse_size_wh(_FRAME_SIZE.value, "--frame_size", serving.ExportError,
                                 minimum=32) if _FRAME_SIZE.value else None
        frame_size = runs.frame_geometry(_MODEL.value, size, serving.ExportError).frame_size_wh
        sampler = _SAMPLER.value or runs.run_sampler(_MODEL.value, serving.ExportError)
        # Checked before the (slow) model load, so a typo fails at once.
        serving.check_export_arguments(_EXPORT_DIR.value, _MODEL_NAME.value, _VERSION.value,
                                       _OVERWRITE.value, sampler)
        model = runs.load_model(_MODEL.value, "--model", serving.ExportError, generates=True)
        path = serving.export_saved_model(
            model, _EXPORT_DIR.value, _MODEL_NAME.value, _VERSION.value,
            frame_size_wh=frame_size, sampler=sampler, seed=_SEED.value,
            overwrite=_OVERWRITE.value)
    except (serving.ExportError, files.OutputError) as error:
        raise SystemExit(f"export: error: {_flag_names(error)}")
    print(f"exported to {path} (signatures {serving.SERVING_SIGNATURE} and "
          f"{serving.WAV_SIGNATURE}; frames {frame_size[0]}x{frame_size[1]}, sampler "
          f"{sampler}, seed {_SEED.value})")


def _flag_names(error: Exception) -> str:
    """Library messages name arguments as Python does; the tool's user knows them as flags."""
    message = str(error)
    for argument in ("model_name", "version", "sampler", "export_dir", "frame_size_wh"):
        if message.startswith((argument + " ", argument + "=")):
            flag = "frame_size" if argument == "frame_size_wh" else argument
            return f"--{flag}" + message[len(argument):]
    return message


if __name__ == "__main__":
    app.run(main)
