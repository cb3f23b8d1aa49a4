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
- p(f, t) = softmax over K image columns and one "centre" class of (<u(f, t), z_k> / sqrt(E)
  + w log a_k, c): each time-frequency bin of the mono is assigned, softly, to the image column
  its sound comes from, or to the centre (R = 0: noise, or sounds the picture does not
  explain). a_k is the localization attention's mass in column k (`column_profile`): before the
  audio-visual match <u, z> has learned anything, every bin follows the map (one source where
  the map points), and the match then splits the bins between several sources. u(f, t)
  `[E]` is an audio embedding of the bin (a CNN over log |M| with frequency dilations and the
  frame's mean over frequency, so that it sees the harmonics and the timbre around the bin);
  z_k `[E]` = Dense(LayerNorm(c_k)) of column k's visual feature c_k (`column_features`: the
  localizer's map weighted by its attention, and plain, averaged over the column's rows).
- R_k(f): a complex response per column and frequency, what a source seen in column k does to
  the differential (the ratio of the left-right difference to the sum of its HRTFs, the
  interaural delay included). Not learned by gradient: it is the least-squares answer given
  the assignments, R_k(f) = sum p_k conj(M) D / (sum p_k |M|^2 + floor), the sums running over
  the training batches with a decay (`ColumnResponses`, as BatchNorm keeps its moving
  statistics), so it follows the assignments within tens of steps where Adam would take
  thousands to grow a response of order 1 from zero. Before any update R = 0: mono-mono.

The assignment is trained by the binaural target itself (`prior_loss`: the mean |D^ - D|^2 over
bins, relative to the mono's mean |M|^2, on the level-normalised signals), which FAIR-Play has
too; optionally also bin by bin (`assignment_loss`, `Upmixer(lambda_assignment=)`): the
responses say which column explains each bin of the true differential
(`ColumnResponses.responsibilities`), and the assignment learns to say it from the mono and the
picture alone. With the true horizontal position of a single source, this estimate is 16 dB
closer to the true differential than mono-mono on the demo's single-source scenes (16 columns,
positions interpolated between them; with 1-3 sources sharing the columns equally 0.2 dB: the
audio-visual match must split the bins between them; `benchmarks/bench_prior_ceiling.py`). The upmixer
conditions its denoiser on d_prior as a second input beside the mono (`Upmixer(spatial_prior=
True)`).
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from keras_binaural import metrics, runtime
from keras_binaural.conventions import SAMPLES_PER_FRAME
from keras_binaural.models.guidance import binning_matrix

NUM_BINS = metrics.FFT_LENGTH // 2 + 1  # 257
RESPONSE_DECAY = 0.99  # of the running sums behind R: a memory of about 100 training batches
RESPONSE_FLOOR = 1e-3  # of sum |M|^2, relative to its mean: a column seen rarely keeps R ~ 0
MASS_FLOOR = 1e-3  # log(a_k + floor): a column the map leaves empty is unlikely, not impossible
# s of `ColumnResponses.responsibilities`: how far a bin's D / M may lie from its column's response
# (ratio units; a guess, not tuned: the one run with it, BENCHMARKS.md issue 12, did not learn).
RESPONSIBILITY_SPREAD = 0.1


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
    matrix = binning_matrix(width, columns)  # mean of the cells in a bin
    return tf.einsum("bwc,wk->bkc", rows, matrix)


@keras.saving.register_keras_serializable(package="keras_binaural")
class ColumnResponses(keras.layers.Layer):
    """R_k(f), what a source in image column k does to the differential, by least squares.

    R_k(f) = sum p_k conj(M) D / (sum p_k |M|^2 + floor), the sums over every (example, STFT
    frame) of the training batches seen so far, decayed by RESPONSE_DECAY per batch (`update`):
    the least-squares answer to D = M R_k for the bins p assigns to column k. Non-trainable
    state, as BatchNorm's moving statistics; R = 0 before the first update.

    Args:
      columns: K.
    """

    def __init__(self, columns: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.columns = columns

    def build(self, input_shape=None):
        # sum p_k conj(M) D as (real, imaginary), and sum p_k |M|^2.
        self.cross = self.add_weight((self.columns, NUM_BINS, 2), initializer="zeros",
                                     trainable=False, aggregation="mean", name="cross")
        self.power = self.add_weight((self.columns, NUM_BINS), initializer="zeros",
                                     trainable=False, aggregation="mean", name="power")
        self.built = True

    def response(self):
        """R `[K, bins, (real, imaginary)]` float32."""
        power = tf.cast(self.power, tf.float32)
        floor = RESPONSE_FLOOR * tf.reduce_mean(power) + 1e-12
        return tf.cast(self.cross, tf.float32) / (power + floor)[..., None]

    def _per_bin(self, share, spectrum):
        """`share` `[batch, frames, bins, K]`, or `[batch, 1, 1, K]` for every bin alike, as
        float32 `[batch, frames, bins, K]` (a `spectrum` of batch 1 serves every share)."""
        shape = tf.broadcast_dynamic_shape(tf.shape(share)[:-1], tf.shape(spectrum))
        return tf.broadcast_to(tf.cast(share, tf.float32), tf.concat([shape, [self.columns]], 0))

    def estimate(self, share, spectrum):
        """D^ = M sum_k p_k R_k `[batch, frames, bins]` complex64.

        Args:
          share: p `[batch, frames, bins, K]`, or `[batch, 1, 1, K]` (the same for every bin).
          spectrum: M `[batch, frames, bins]` complex64.
        """
        gain = tf.einsum("bfnk,knc->bfnc", self._per_bin(share, spectrum), self.response())
        return spectrum * tf.complex(gain[..., 0], gain[..., 1])

    def _fit_logits(self, spectrum, diff_spectrum, spread: float):
        """-|D - M R_k|^2 / (s^2 (|M|^2 + floor)) `[batch, frames, bins, K + 1]` (the centre,
        R = 0, last): how well each column's response explains each bin, in units of s."""
        response = self.response()
        response = tf.transpose(tf.complex(response[..., 0], response[..., 1]))  # [bins, K]
        errors = tf.concat([
            tf.square(tf.abs(diff_spectrum[..., None] - spectrum[..., None] * response)),
            tf.square(tf.abs(diff_spectrum))[..., None]], axis=-1)
        power = tf.square(tf.abs(spectrum))
        scale = spread**2 * (power + RESPONSE_FLOOR * tf.reduce_mean(power) + 1e-12)
        return -errors / scale[..., None]

    def responsibilities(self, spectrum, diff_spectrum, spread: float = RESPONSIBILITY_SPREAD):
        """q `[batch, frames, bins, K + 1]`: which column (or the centre, R = 0, last) explains
        each bin of the true differential, as the E-step of a mixture would say:

            q_k = softmax_k(-|D - M R_k|^2 / (s^2 (|M|^2 + floor))),  s = `spread`,

        i.e. a Gaussian of width s around each column's response in the ratio D / M. No gradient.

        Args:
          spectrum, diff_spectrum: `[batch, frames, bins]` complex STFTs of the mono and of the
            true differential.
        """
        logits = self._fit_logits(spectrum, diff_spectrum, spread)
        return tf.stop_gradient(tf.nn.softmax(logits, axis=-1))

    def log_likelihood(self, share, spectrum, diff_spectrum,
                       spread: float = RESPONSIBILITY_SPREAD):
        """log sum_k p_k exp(-|D - M R_k|^2 / (s^2 (|M|^2 + floor))) `[batch, frames, bins]`,
        the centre (p = 1 - sum_k p_k, R = 0) included: how likely the true differential is
        under the mixture `estimate` takes the mean of, bin by bin, up to a constant that
        depends on M only (the Gaussians' normalisers). Where `estimate` blends the columns'
        responses with the shares, this asks only that some column with a share explains each
        bin: with several sources, a picture with an object where each one sounds scores well
        even when the shares split the bins between them wrongly.

        Args:
          share: p as for `estimate`.
          spectrum, diff_spectrum: as for `responsibilities`.
        """
        log_share = log_shares(self._per_bin(share, spectrum))
        return tf.reduce_logsumexp(
            log_share + self._fit_logits(spectrum, diff_spectrum, spread), axis=-1)

    def update(self, share, spectrum, diff_spectrum):
        """Adds a training batch to the sums (and decays the old ones).

        Args:
          share: p as for `estimate` (no gradient flows through the sums).
          spectrum, diff_spectrum: `[batch, frames, bins]` complex STFTs of the mono and of the
            true differential.
        """
        share = tf.stop_gradient(self._per_bin(share, spectrum))
        cross = tf.math.conj(spectrum) * diff_spectrum
        cross = tf.einsum("bfnk,bfnc->knc", share,
                          tf.stack([tf.math.real(cross), tf.math.imag(cross)], axis=-1))
        power = tf.einsum("bfnk,bfn->kn", share, tf.square(tf.abs(spectrum)))
        for variable, batch_sum in ((self.cross, cross), (self.power, power)):
            variable.assign(RESPONSE_DECAY * variable + (1.0 - RESPONSE_DECAY) * batch_sum)

    def get_config(self):
        return {**super().get_config(), "columns": self.columns}


@keras.saving.register_keras_serializable(package="keras_binaural")
class SpatialPrior(keras.layers.Layer):
    """d_prior from the mono and per-column embeddings z (see the module docstring).

    Args:
      columns: K, the image columns a bin can be assigned to.
      embedding_size: E, the size of u(f, t) and z_k.
      channels: width of the audio CNN.
      audio_dtype: the dtype policy of the audio CNN's convolutions, the prior's heavy part:
        None (the layer's own), a Keras policy name ("mixed_bfloat16": bfloat16 compute,
        float32 weights), or "auto": "mixed_bfloat16" where `runtime.bfloat16_pays` on this
        machine, else the layer's own. The weights are float32 either way, so a model trained
        with one loads and runs with the other.
      **kwargs: `keras.layers.Layer` arguments.

    Call arguments:
      mono: `[batch, time]` (level-normalised) mono at 16 kHz.
      column_embeddings: `[batch, width]` (one for the whole stretch) or `[batch, frames, width]`
        (one per 0.1 s video frame; STFT frame f uses video frame floor(f * 160 / 1600)), from
        `embed_columns`.

    Returns:
      `[batch, time]` d_prior.

    Example:
    >>> prior = SpatialPrior(columns=16, embedding_size=32)
    >>> z = prior.embed_columns(np.zeros([2, 16, 1024], "float32"),
    ...                         np.full([2, 16], 1 / 16, "float32"))   # [2, 16 * 33]
    >>> prior(np.zeros([2, 16000], "float32"), z).shape
    TensorShape([2, 16000])
    """

    def __init__(self, columns: int = 16, embedding_size: int = 32, channels: int = 32,
                 audio_dtype: str | None = None, **kwargs):
        super().__init__(**kwargs)
        # === Config ===
        self.columns = columns
        self.embedding_size = embedding_size
        self.channels = channels
        self.audio_dtype = audio_dtype

        # === Layers ===
        dtype = self.dtype_policy
        if audio_dtype == "auto":
            pays = runtime.bfloat16_pays(runtime.cpu_flags(), os.environ)
            audio_dtype = "mixed_bfloat16" if pays else None
        conv_dtype = audio_dtype or dtype
        # (time, frequency) dilations: the frequency context grows to 2 x 63 bins (2 kHz).
        dilations = ((1, 1), (1, 2), (2, 4), (1, 8), (2, 16))
        self.audio_convs = [
            keras.layers.Conv2D(channels, 3, padding="same", dilation_rate=rate,
                                activation="relu", name=f"audio_conv{i + 1}", dtype=conv_dtype)
            for i, rate in enumerate(dilations)]
        self.audio_context = keras.layers.Dense(channels, activation="relu",
                                                name="audio_context", dtype=dtype)
        self.audio_output = keras.layers.Dense(embedding_size, name="audio_output", dtype=dtype)
        self.column_norm = keras.layers.LayerNormalization(name="column_norm", dtype=dtype)
        self.column_dense = keras.layers.Dense(embedding_size, name="column_dense", dtype=dtype)
        self.responses = ColumnResponses(columns, name="responses")
        # Eagerly, TF 2.16's oneDNN convolutions in bfloat16 return NaN for about 1 % of calls
        # at batch 1 (BENCHMARKS.md, issue 12); inside a tf.function they do not.
        self._traced_bin_embeddings = tf.function(self._bin_embeddings, reduce_retracing=True)

    def build(self, input_shape=None, column_feature_size: int = 1024):
        shape = (None, None, NUM_BINS, 1)
        for conv in self.audio_convs:
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
        self.audio_context.build((None, None, self.channels))
        self.audio_output.build((None, None, None, 2 * self.channels))
        self.column_norm.build((None, column_feature_size))
        self.column_dense.build((None, column_feature_size))
        self.responses.build()
        self.centre_logit = self.add_weight((), initializer="zeros", name="centre_logit")
        self.mass_weight = self.add_weight((), initializer="ones", name="mass_weight")
        self.built = True

    @property
    def width(self) -> int:
        """Size of `embed_columns`' output: K x (z_k and log a_k)."""
        return self.columns * (self.embedding_size + 1)

    def embed_columns(self, column_features, column_mass):
        """`[..., K, F]` column features and `[..., K]` attention mass -> `[..., K * (E + 1)]`
        (z_k and log a_k of each column, flattened)."""
        z = self.column_dense(self.column_norm(column_features))
        log_mass = tf.math.log(tf.cast(column_mass, z.dtype) + MASS_FLOOR)[..., None]
        z = tf.concat([z, log_mass], axis=-1)
        shape = tf.shape(z)
        return tf.reshape(z, tf.concat([shape[:-2], [self.width]], 0))

    def assignment(self, spectrum, column_embeddings):
        """p `[batch, frames, bins, K]`: each bin's share per column (the centre left out)."""
        return self.match(self.bin_embeddings(spectrum), column_embeddings)

    def bin_embeddings(self, spectrum):
        """u `[batch, frames, bins, E]` of the mono's STFT `[batch, frames, bins]`: the audio's
        part of the assignment, the same whatever the picture (so it can be computed once for
        many frames). Eager calls run traced (see `__init__`)."""
        if tf.executing_eagerly():
            return self._traced_bin_embeddings(spectrum)
        return self._bin_embeddings(spectrum)

    def _bin_embeddings(self, spectrum):
        x = tf.math.log(tf.abs(spectrum) + 1e-4)[..., None]
        for conv in self.audio_convs:
            x = conv(x)
        x = tf.cast(x, self.audio_context.compute_dtype)  # from the CNN's own (`audio_dtype`)
        context = self.audio_context(tf.reduce_mean(x, axis=2))  # [batch, frames, C]
        x = tf.concat([x, tf.broadcast_to(context[:, :, None], tf.shape(x))], axis=-1)
        return self.audio_output(x)

    def match(self, u, column_embeddings):
        """p `[batch, frames, bins, K]` from the bins' embeddings u (`bin_embeddings`) and the
        columns' (`embed_columns`, as for `call`); u of batch 1 serves every example of the
        columns' batch (one sound heard with many pictures)."""
        z = tf.cast(column_embeddings, u.dtype)
        if len(z.shape) == 2:
            z = z[:, None]
        z = tf.reshape(z, tf.concat([tf.shape(z)[:2], [self.columns, self.embedding_size + 1]], 0))
        frames = tf.shape(u)[1]
        video_frame = tf.minimum(tf.range(frames) * metrics.HOP_SAMPLES // SAMPLES_PER_FRAME,
                                 tf.shape(z)[1] - 1)
        z = tf.gather(z, video_frame, axis=1)  # [batch, frames, K, E + 1]
        match = tf.einsum("...fne,...fke->...fnk", u, z[..., :-1])
        logits = match / np.sqrt(float(self.embedding_size))
        logits = logits + tf.cast(self.mass_weight, u.dtype) * z[:, :, None, :, -1]
        centre = tf.broadcast_to(tf.cast(self.centre_logit, logits.dtype), tf.shape(logits[..., :1]))
        return tf.nn.softmax(tf.concat([logits, centre], axis=-1), axis=-1)[..., :-1]

    def estimate(self, mono, column_embeddings):
        """(D^, M, p): the estimate's and the mono's spectra, `[batch, frames, 257]` complex64,
        and the assignment `[batch, frames, 257, K]`."""
        spectrum = stft(mono)
        share = self.assignment(spectrum, column_embeddings)
        return self.responses.estimate(share, spectrum), spectrum, share

    def call(self, mono, column_embeddings):
        return istft(self.estimate(mono, column_embeddings)[0], tf.shape(mono)[1])

    def get_config(self):
        return {**super().get_config(), "columns": self.columns,
                "embedding_size": self.embedding_size, "channels": self.channels,
                "audio_dtype": self.audio_dtype}


def log_shares(share):
    """log p `[..., K + 1]` float32 of the shares `[..., K]` and the centre's, 1 - sum_k p_k last
    (a share of 0 counts as 1e-6)."""
    share = tf.cast(share, tf.float32)
    centre = tf.maximum(1.0 - tf.reduce_sum(share, axis=-1, keepdims=True), 0.0)
    return tf.math.log(tf.concat([share, centre], axis=-1) + 1e-6)


def assignment_loss(share, target, mono_spectrum):
    """The assignment's cross-entropy against the binaural responsibilities, weighted by the
    mono's power per bin (a scalar): sum w (-sum_k q_k log p_k) / sum w, w = |M|^2.

    Args:
      share: p `[batch, frames, bins, K]` (`SpatialPrior.estimate`); the centre's share is
        1 - sum_k p_k.
      target: q `[batch, frames, bins, K + 1]` (`ColumnResponses.responsibilities`).
      mono_spectrum: M `[batch, frames, bins]`.

    Beyond the paper, after the EM view of mixture models: the binaural target says, bin by bin,
    which column's response fits (the E-step), and the assignment, which sees only the mono and
    the picture, learns to say the same. With several sources in a clip this is the per-bin
    split that the prior needs (`benchmarks/bench_prior_ceiling.py --assignment bins`), taught
    bin by bin instead of only through the mean |D^ - D|^2 of `prior_loss`.
    """
    entropy = -tf.reduce_sum(tf.cast(target, tf.float32) * log_shares(share), axis=-1)
    weight = tf.square(tf.abs(mono_spectrum))
    return tf.reduce_sum(weight * entropy) / tf.maximum(tf.reduce_sum(weight), 1e-12)


def prior_loss(estimate, mono_spectrum, diff_spectrum):
    """mean |D^ - D|^2 / mean |M|^2 over the batch's bins, a scalar.

    Args:
      estimate, mono_spectrum: `SpatialPrior.estimate` of the (level-normalised) mono.
      diff_spectrum: `stft` of the true (level-normalised) differential.
    """
    error = tf.reduce_mean(tf.square(tf.abs(estimate - diff_spectrum)))
    return error / tf.maximum(tf.reduce_mean(tf.square(tf.abs(mono_spectrum))), 1e-8)
