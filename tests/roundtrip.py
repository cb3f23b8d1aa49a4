"""The one Keras round trip every layer and model test uses.

build -> call -> get_config/from_config -> `.keras` save/load -> the same outputs.
"""

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="keras_binaural_tests")
class LayerHolder(keras.Model):
    """Holds a single layer so that a `.keras` file can carry it."""

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer

    def call(self, inputs, training=False):
        return self.layer(inputs, training=training)

    def get_config(self):
        return {**super().get_config(), "layer": keras.saving.serialize_keras_object(self.layer)}

    @classmethod
    def from_config(cls, config):
        config["layer"] = keras.saving.deserialize_keras_object(config.pop("layer"))
        return cls(**config)


def _assert_same(actual, expected, atol):
    actual, expected = keras.tree.flatten(actual), keras.tree.flatten(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(e),
                                   atol=atol, rtol=0)


def assert_round_trip(obj, inputs, tmp_path, atol=1e-5):
    """Checks that `obj` (a Layer or Model) survives get_config/from_config and `.keras` save/load.

    Returns the outputs of `obj(inputs)` for further checks.
    """
    expected = obj(inputs, training=False)

    clone = obj.__class__.from_config(obj.get_config())
    clone(inputs, training=False)
    clone.set_weights(obj.get_weights())
    _assert_same(clone(inputs, training=False), expected, atol)

    model = obj if isinstance(obj, keras.Model) else LayerHolder(obj)
    model(inputs, training=False)
    path = str(tmp_path / "round_trip.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    _assert_same(loaded(inputs, training=False), expected, atol)
    return expected
