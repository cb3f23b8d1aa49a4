"""A TF Hub VGGish module as a Keras 3 layer (SPEC section 3).

`hub.KerasLayer` is a tf-keras (Keras 2) layer and cannot sit in a Keras 3 model, so
`HubVGGishEmbedder` wraps `tensorflow_hub.load(handle)` itself. It keeps the call contract of
`keras_binaural.models.vggish.VGGishEmbedder` (waveforms `[batch, time]` -> `[batch, patches, 128]`
or, pooled, `[batch, 128]`), so the two are interchangeable; `vggish_embedder` picks one by whether
a handle is given.

The module's own call form is the one of the official `google/vggish/1`: a 1-D float32 waveform at
16 kHz -> `[num_patches, 128]`. TensorFlow is the point of this file, so it uses raw `tf.*`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_binaural.audio import frontend
from keras_binaural.conventions import SAMPLE_RATE_HZ
from keras_binaural.models import vggish as vggish_lib

_PROBE_SAMPLES = SAMPLE_RATE_HZ  # 1 s of silence checks a module at load time


def load_vggish_module(handle: str):
    """Loads a TF Hub module and checks that it behaves as VGGish.

    The module is called once on 1 s of silence; it must return a `[patches, 128]` tensor.

    Args:
      handle: a TF Hub handle: a URL (e.g. "https://tfhub.dev/google/vggish/1", which needs
        network access) or a local SavedModel directory.

    Returns:
      The loaded module (callable on a 1-D float32 waveform).

    Raises:
      ValueError: naming the handle, when it cannot be loaded or is not VGGish-shaped.
    """
    import tensorflow_hub as hub  # only here: importing it warns about pkg_resources

    try:
        module = hub.load(handle)
    except Exception as error:  # OSError, URLError, ValueError, ... all mean "cannot load it".
        raise ValueError(f"Cannot load the TF Hub module {handle!r}: {error}") from error
    if not callable(module):
        # ValueError like every other bad handle: callers catch one type for "not a VGGish module".
        raise ValueError(  # noqa: TRY004
            f"The TF Hub module {handle!r} is not callable; a VGGish module maps a 1-D float32 "
            "waveform at 16 kHz to [patches, 128]."
        )
    try:
        probe = module(tf.zeros([_PROBE_SAMPLES], tf.float32))
        shape = tuple(probe.shape)
    except Exception as error:
        raise ValueError(
            f"The TF Hub module {handle!r} cannot be called on a 1-D float32 waveform "
            f"(1 s of silence at 16 kHz) as a VGGish module can: {error}"
        ) from error
    if len(shape) != 2 or shape[-1] != vggish_lib.EMBEDDING_SIZE:
        raise ValueError(
            f"The TF Hub module {handle!r} is not VGGish-shaped: on 1 s of silence it returned "
            f"shape {shape}, expected [patches, {vggish_lib.EMBEDDING_SIZE}]."
        )
    return module


@keras.saving.register_keras_serializable(package="keras_binaural")
class HubVGGishEmbedder(keras.layers.Layer):
    """Waveform -> VGGish embeddings with a frozen TF Hub VGGish module.

    The module is loaded (and checked, see `load_vggish_module`) at construction. It is always
    frozen: its variables are not Keras weights, receive no gradients and are not written to
    `.keras` files; `get_config` stores the handle and loading re-loads the module from it.

    The module sees one clip at a time (`tf.map_fn` over the batch). A clip shorter than one
    patch (15,600 samples, 0.975 s) is **zero-padded at the end to one patch** first, as the
    frontend of `VGGishEmbedder` does, so every clip gives at least one embedding.

    Args:
      handle: TF Hub handle: URL or local SavedModel directory of a VGGish module
        (1-D float32 waveform at 16 kHz -> `[patches, 128]`).
      pooling: `None` returns `[batch, patches, 128]`; `"mean"` averages over patches,
        `[batch, 128]`.
      **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`); `trainable` is forced to False.

    Call arguments:
      waveform: `[batch, time]` float32 in [-1, 1] at 16 kHz, equal-length clips.
      training: unused.

    Returns:
      `[batch, patches, 128]` float32, or `[batch, 128]` with `pooling="mean"`.

    Example:
    >>> embedder = HubVGGishEmbedder("/models/vggish_hub", pooling="mean")  # doctest: +SKIP
    >>> embedder(np.zeros([4, 16000], "float32")).shape  # doctest: +SKIP
    TensorShape([4, 128])
    """

    def __init__(self, handle: str, pooling: str | None = None, **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        # === Config ===
        self.handle = str(handle)
        self.pooling = vggish_lib.check_pooling(pooling)

        # === Module ===
        # Kept as an attribute so that TF tracks it (a SavedModel export of a model holding this
        # layer then carries the module's variables); Keras does not see it as weights.
        self.module = load_vggish_module(self.handle)

    def build(self, input_shape):
        self.built = True

    def call(self, waveform, training=False):
        vggish_lib.check_waveform(waveform, type(self).__name__)
        waveform = tf.cast(waveform, tf.float32)
        missing = tf.maximum(0, frontend.PATCH_SAMPLES - tf.shape(waveform)[1])
        waveform = tf.pad(waveform, [[0, 0], [0, missing]])
        embeddings = tf.map_fn(
            self.module,
            waveform,
            fn_output_signature=tf.TensorSpec([None, vggish_lib.EMBEDDING_SIZE], tf.float32),
        )
        return vggish_lib.pool_embeddings(embeddings, self.pooling)

    def compute_output_shape(self, input_shape):
        return vggish_lib.embedding_output_shape(input_shape, self.pooling)

    def get_config(self):
        config = {**super().get_config(), "handle": self.handle, "pooling": self.pooling}
        config.pop("trainable", None)  # always frozen
        return config


def vggish_embedder(
    handle: str | None = None, pooling: str | None = None, **kwargs
) -> keras.layers.Layer:
    """The VGGish waveform embedder a configuration asks for.

    Args:
      handle: a TF Hub handle (URL or local directory) for `HubVGGishEmbedder` (frozen), or None
        for our Keras `VGGishEmbedder` (trainable unless `trainable=False` is passed).
      pooling: `None` (`[batch, patches, 128]`) or `"mean"` (`[batch, 128]`).
      **kwargs: passed to the layer's constructor.

    Returns:
      A layer mapping waveforms `[batch, time]` at 16 kHz to VGGish embeddings.
    """
    if handle:
        return HubVGGishEmbedder(handle, pooling=pooling, **kwargs)
    return vggish_lib.VGGishEmbedder(pooling=pooling, **kwargs)
