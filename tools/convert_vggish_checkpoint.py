"""Converts the official VGGish TF checkpoint into Keras weights for `keras_binaural.models.VGGish`.

Usage:
  python tools/convert_vggish_checkpoint.py \
      --checkpoint=/path/to/vggish_model.ckpt --output=/path/to/vggish.weights.h5

`--output` ending in `.weights.h5` gets the weights only (load with `VGGish().load_weights(path)`
or into `VGGishEmbedder(...).vggish`); ending in `.keras` gets the whole model.
`--embedding_activation=relu` reproduces the 2017-2019 release (ReLU on the embedding); the default
has none, as the current release and the TF Hub module. The checkpoint is not downloaded here: get
it from https://storage.googleapis.com/audioset/vggish_model.ckpt on a machine with network access.
The work is done by `keras_binaural.models.vggish.load_vggish_checkpoint`.
"""

import os

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts: it reads these once

from absl import app, flags

from keras_binaural import files
from keras_binaural.models.vggish import VGGish, load_vggish_checkpoint

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "VGGish TF checkpoint prefix.", required=True)
_OUTPUT = flags.DEFINE_string("output", None, "Output .weights.h5 or .keras file.", required=True)
_EMBEDDING_ACTIVATION = flags.DEFINE_enum(
    "embedding_activation", "none", ["none", "relu"], "Activation of the embedding layer (fc2)."
)


def main(argv):
    del argv
    if not _OUTPUT.value.endswith((".weights.h5", ".keras")):
        raise app.UsageError("--output must end in .weights.h5 or .keras")
    activation = None if _EMBEDDING_ACTIVATION.value == "none" else _EMBEDDING_ACTIVATION.value
    try:
        files.check_output(_OUTPUT.value, "--output")  # before the conversion
        files.remove_temporaries(os.path.dirname(os.path.abspath(_OUTPUT.value)),
                                 names=[_OUTPUT.value])
        model = load_vggish_checkpoint(VGGish(embedding_activation=activation), _CHECKPOINT.value)
        files.save_keras(model, _OUTPUT.value)
    except files.OutputError as error:
        raise SystemExit(f"convert_vggish_checkpoint: error: {error}") from None
    print(f"Wrote {_OUTPUT.value} ({model.count_params():,} parameters).")


if __name__ == "__main__":
    app.run(main)
