"""A first estimate of the differential from the mono and what each image column shows (ours).

Beyond the paper. The object-aware guidance of supp. section 1 is one vector per 0.1 s: it can
say where one sounding object is, but with several sources it cannot say which sound comes from
where, and a diffusion sample without that knowledge is worse than mono-mono (BENCHMARKS.md:
even guided by the true positions of all sounding objects, 1-3 sources, the upmixer lost 1.7 dB
SNR to mono-mono). `SpatialPrior` gives the upmixer that knowledge, in the spirit of
BinauralGrad's two stages (a simple first estimate, then diffusion conditioned on it) and of
"The Sound of Pixels" (Zhao et al., ECCV 2018: time-frequency bins assigned to image regions by
matching audio and visual features):

    D^(f, t) = M(f, t) sum_k p_k(f, t) R_k(f),   d_prior = ISTFT(D^)

- M: the STFT of the mono (512-point, hop 160, 400-sample periodic Hann: SPEC's metric STFT).
- p(f, t) = softmax over K image columns and one "centre" class of (<u(f, t), z_k> / sqrt(E),
  c): each time-frequency bin of the mono is assigned, softly, to the image column its sound
  comes from, or to the centre (R = 0: noise, or sounds the picture does not explain). u(f, t)
  `[E]` is an audio embedding of the bin (a CNN over log |M| with frequency dilations and the
  frame's mean over frequency, so that it sees the harmonics and the timbre around the bin);
  z_k `[E]` = Dense(LayerNorm(c_k)) of column k's visual feature c_k (`column_features`: the
  localizer's map weighted by its attention, and plain, averaged over the column's rows).
- R_k(f): a learned complex response per column and frequency, what a source seen in column k
  does to the differential (the ratio of the left-right difference to the sum of its HRTFs, the
  interaural delay included). Initialised to 0: an untrained prior is mono-mono.

Trained by the binaural target itself (`prior_loss`: the mean |D^ - D|^2 over bins, relative to
the mono's mean |M|^2, on the level-normalised signals), which FAIR-Play has too. The upmixer
conditions its denoiser on d_prior as a second input beside the mono (`Upmixer(spatial_prior=
True)`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_binaural import metrics
from keras_binaural.conventions import SAMPLES_PER_FRAME

NUM_BINS = metrics.FFT_LENGTH // 2 + 1  # 257
# R_k(f) = RESPONSE_GAIN x its weight: Adam moves a weight by about the learning rate per step,
# so a response of order 1 (|D| ~ |M| for a source at the side) stored as is would take thousands
# of steps to grow from 0; the gain makes its effective learning rate ten times the model's.
RESPONSE_GAIN = 10.0


def stft(signal):
    """`[batch, time]` -> `[batch, frames, 257]` complex64: the metrics' STFT (`metrics.stft`).

    Frame f is centred on sample f * 160; frames = time // 160 + 1.
    """
    return metrics.stft(tf.cast(signal, tf.float32))


def istft(spectrum, num_samples):
    """The inverse of `stft` (weighted overlap-add), cut to `num_samples`: `[batch, time]`.

    Exact but for the first and last ~250 samples, whose reflect-padded frames it cannot undo.
    """
    window = tf.constant(metrics.stft_window_numpy(), tf.float32)
    window_fn = tf.signal.inverse_stft_window_fn(
        metrics.HOP_SAMPLES, forward_window_fn=lambda length, dtype: tf.cast(window, dtype))
    signal = tf.signal.inverse_stft(spectrum, metrics.FFT_LENGTH, metrics.HOP_SAMPLES,
                                    metrics.FFT_LENGTH, window_fn=window_fn)
    return signal[:, metrics.PAD_SAMPLES: metrics.PAD_SAMPLES + num_samples]


def column_features(visual, attention, columns: int):
    """What each of `columns` image columns shows: `[batch, columns, 2 C]`.

    The first C channels are the map weighted by the localization attention (the sounding
    object's feature where it is; the attention is scaled to mean 1 over the cells), the last C
    the plain map (what is there, sounding or not), each averaged over the column's rows and
    over the cells of the column bin.

    Args:
      visual: `[batch, h, w, C]` the localizer's visual map (static w).
      attention: `[batch, h, w]` its attention (sums to 1 over the cells).
      columns: K.
    """
    height, width = visual.shape[1], visual.shape[2]
    weighted = visual * attention[..., None] * float(height * width)
    rows = tf.reduce_mean(tf.concat([weighted, visual], axis=-1), axis=1)  # [batch, w, 2C]
    edges = np.linspace(0.0, width, columns + 1)
    cells = np.arange(width, dtype=np.float64)
    overlap = np.clip(np.minimum(cells[:, None] + 1, edges[None, 1:])
                      - np.maximum(cells[:, None], edges[None, :-1]), 0.0, None)
    matrix = (overlap / (width / columns)).astype(np.float32)  # mean of the cells in a bin
    return tf.einsum("bwc,wk->bkc", rows, matrix)


@keras.saving.register_keras_serializable(package="keras_binaural")
class SpatialPrior(keras.layers.Layer):
    """d_prior from the mono and per-column embeddings z (see the module docstring).

    Args:
      columns: K, the image columns a bin can be assigned to.
      embedding_size: E, the size of u(f, t) and z_k.
      channels: width of the audio CNN.
      **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
      mono: `[batch, time]` (level-normalised) mono at 16 kHz.
      column_embeddings: `[batch, K * E]` (one for the whole stretch) or `[batch, frames, K * E]`
        (one per 0.1 s video frame; STFT frame f uses video frame floor(f * 160 / 1600)), from
        `embed_columns`.

    Returns:
      `[batch, time]` d_prior.

    Example:
    >>> prior = SpatialPrior(columns=16, embedding_size=32)
    >>> z = prior.embed_columns(np.zeros([2, 16, 1024], "float32"))   # [2, 512]
    >>> prior(np.zeros([2, 16000], "float32"), z).shape
    TensorShape([2, 16000])
    """

    def __init__(self, columns: int = 16, embedding_size: int = 32, channels: int = 32,
                 **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.columns = columns
        self.embedding_size = embedding_size
        self.channels = channels

        # === Layers ===
        dtype = self.dtype_policy
        # (time, frequency) dilations: the frequency context grows to 2 x 63 bins (2 kHz).
        dilations = ((1, 1), (1, 2), (2, 4), (1, 8), (2, 16))
        self.audio_convs = [
            keras.layers.Conv2D(channels, 3, padding="same", dilation_rate=rate,
                                activation="relu", name=f"audio_conv{i + 1}", dtype=dtype)
            for i, rate in enumerate(dilations)]
        self.audio_context = keras.layers.Dense(channels, activation="relu",
                                                name="audio_context", dtype=dtype)
        self.audio_output = keras.layers.Dense(embedding_size, name="audio_output", dtype=dtype)
        self.column_norm = keras.layers.LayerNormalization(name="column_norm", dtype=dtype)
        self.column_dense = keras.layers.Dense(embedding_size, name="column_dense", dtype=dtype)

    def build(self, input_shape=None, column_feature_size: int = 1024):
        shape = (None, None, NUM_BINS, 1)
        for conv in self.audio_convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.audio_context.build((None, None, self.channels))
        self.audio_output.build((None, None, None, 2 * self.channels))
        self.column_norm.build((None, column_feature_size))
        self.column_dense.build((None, column_feature_size))
        # R_k(f) as (real, imaginary); zero: an untrained prior predicts d = 0 (mono-mono).
        self.response = self.add_weight((self.columns, NUM_BINS, 2), initializer="zeros",
                                        name="response")
        self.centre_logit = self.add_weight((), initializer="zeros", name="centre_logit")
        self.built = True

    def embed_columns(self, column_features):
        """z: `[..., K, F]` column features -> `[..., K * E]` (flattened)."""
        z = self.column_dense(self.column_norm(column_features))
        shape = tf.shape(z)
        return tf.reshape(z, tf.concat([shape[:-2], [self.columns * self.embedding_size]], 0))

    def assignment(self, spectrum, column_embeddings):
        """p `[batch, frames, bins, K]`: each bin's share per column (the centre left out)."""
        x = tf.math.log(tf.abs(spectrum) + 1e-4)[..., None]
        for conv in self.audio_convs:
            x = conv(x)
        context = self.audio_context(tf.reduce_mean(x, axis=2))  # [batch, frames, C]
        x = tf.concat([x, tf.broadcast_to(context[:, :, None], tf.shape(x))], axis=-1)
        u = self.audio_output(x)  # [batch, frames, bins, E]
        z = tf.cast(column_embeddings, u.dtype)
        if len(z.shape) == 2:
            z = z[:, None]
        z = tf.reshape(z, tf.concat([tf.shape(z)[:2], [self.columns, self.embedding_size]], 0))
        frames = tf.shape(spectrum)[1]
        video_frame = tf.minimum(tf.range(frames) * metrics.HOP_SAMPLES // SAMPLES_PER_FRAME,
                                 tf.shape(z)[1] - 1)
        z = tf.gather(z, video_frame, axis=1)  # [batch, frames, K, E]
        logits = tf.einsum("bfne,bfke->bfnk", u, z) / np.sqrt(float(self.embedding_size))
        centre = tf.broadcast_to(tf.cast(self.centre_logit, logits.dtype), tf.shape(logits[..., :1]))
        return tf.nn.softmax(tf.concat([logits, centre], axis=-1), axis=-1)[..., :-1]

    def estimate(self, mono, column_embeddings):
        """(D^, M): the estimate's and the mono's spectra, `[batch, frames, 257]` complex64."""
        spectrum = stft(mono)
        share = self.assignment(spectrum, column_embeddings)
        response = RESPONSE_GAIN * tf.cast(self.response, tf.float32)
        response = tf.complex(response[..., 0], response[..., 1])  # [K, bins]
        share = tf.cast(tf.cast(share, tf.float32), tf.complex64)
        gain = tf.einsum("bfnk,kn->bfn", share, tf.cast(response, tf.complex64))
        return spectrum * gain, spectrum

    def call(self, mono, column_embeddings):
        return istft(self.estimate(mono, column_embeddings)[0], tf.shape(mono)[1])

    def get_config(self):
        return {**super().get_config(), "columns": self.columns,
                "embedding_size": self.embedding_size, "channels": self.channels}


def prior_loss(estimate, mono_spectrum, diff):
    """mean |D^ - STFT(d)|^2 / mean |M|^2 over the batch's bins, a scalar.

    Args:
      estimate, mono_spectrum: `SpatialPrior.estimate` of the (level-normalised) mono.
      diff: `[batch, time]` the true (level-normalised) differential.
    """
    error = tf.reduce_mean(tf.square(tf.abs(estimate - stft(diff))))
    return error / tf.maximum(tf.reduce_mean(tf.square(tf.abs(mono_spectrum))), 1e-8)
