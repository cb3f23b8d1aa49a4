"""Converts torchvision `resnet18` weights into Keras weights for `keras_binaural.models.ResNet18`.

Usage:
  python tools/convert_resnet18_weights.py \
      --state_dict=/path/to/resnet18-f37072fd.pth --output=/path/to/resnet18.weights.h5

`--state_dict` is a torchvision state dict: a `.pth`/`.pt` file (read with torch, which must then be
installed) or an `.npz` holding the same arrays under the same keys (`conv1.weight`,
`bn1.running_mean`, `layer2.0.downsample.0.weight`, ...; `fc.*` is ignored). `--output` ending in
`.weights.h5` gets the weights only (`ResNet18().load_weights(path)`), in `.keras` the whole model.
`--normalize_input` sets the saved model's option (ImageNet normalisation inside the model).
The work is done by `keras_binaural.models.resnet.load_torchvision_resnet18_weights`.
"""

import os

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts: it reads these once

from absl import app, flags

from keras_binaural import files
from keras_binaural.models.resnet import ResNet18, load_torchvision_resnet18_weights

_STATE_DICT = flags.DEFINE_string(
    "state_dict", None, "torchvision .pth/.pt or .npz.", required=True
)
_OUTPUT = flags.DEFINE_string("output", None, "Output .weights.h5 or .keras file.", required=True)
_NORMALIZE_INPUT = flags.DEFINE_bool(
    "normalize_input", True, "Model normalises [0, 1] frames with ImageNet mean/std itself."
)


def main(argv):
    del argv
    if not _OUTPUT.value.endswith((".weights.h5", ".keras")):
        raise app.UsageError("--output must end in .weights.h5 or .keras")
    try:
        files.check_output(_OUTPUT.value, "--output")  # before the conversion
        files.remove_temporaries(os.path.dirname(os.path.abspath(_OUTPUT.value)),
                                 names=[_OUTPUT.value])
        model = ResNet18(normalize_input=_NORMALIZE_INPUT.value)
        load_torchvision_resnet18_weights(model, _STATE_DICT.value)
        files.save_keras(model, _OUTPUT.value)
    except files.OutputError as error:
        raise SystemExit(f"convert_resnet18_weights: error: {error}") from None
    print(f"Wrote {_OUTPUT.value} ({model.count_params():,} parameters).")


if __name__ == "__main__":
    app.run(main)
