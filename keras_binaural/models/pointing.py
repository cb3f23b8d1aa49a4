"""Objectives that make the localization map point at the sounding object (beyond the paper).

The paper's l_sce_loc and l_obj_loc compare the audio with *other clips'* frames only: nothing
penalises the background cells of the positive frame, so "this scene holds a clarinet somewhere"
satisfies both, and a map trained from scratch does not point (BENCHMARKS.md). Every published
localizer that points starts from ImageNet weights; the objectives here give cell-level pressure
without them. Each is a `LocalizationObjective` with its own loss term and λ
(`LocalizationModel(lambda_mil=..., lambda_background=..., lambda_mosaic=..., lambda_cue=...,
lambda_response=..., lambda_flip=..., lambda_erase=...)`), switched on by a non-zero λ and
combinable with the others and with the paper's terms. They use only what FAIR-Play also has:
frames, mono and binaural audio.

All of them work on the cell similarity map

    S_b,k,ij = cos(V_k,ij, a_b)        (`cell_similarity`; V_k the visual map of frame k,
                                         a_b the head's audio feature of example b)

whose softmax over the cells, softmax_ij(S_b,b,ij / tau), is OSA's object attention A (main-paper
Eq. 5 as we read it): shaping S shapes the map the pointing game scores and the upmixer's guidance
reads. With the additional baseline's head the same S is trained, but its map is its own gate.

- **Multiple-instance matching** (EZ-VSL, Mo & Morgado, ECCV 2022; `MultipleInstanceObjective`,
  `lambda_mil`): the pair score is the best cell, s_bk = max_ij S_b,k,ij / tau_mil; InfoNCE over
  the batch both ways, l_mil = 1/2 [CE_k(s_b,:, b) + CE_b(s_:,k, k)], tau_mil = 0.03 by default;
  other examples of the same clip are left out of the denominators. Only the sounding cell has
  to match.
- **Background as a hard negative** (LVS, "Localizing Visual Sounds the Hard Way", Chen et al.,
  CVPR 2021; `BackgroundObjective`, `lambda_background`): soft positive and negative regions of
  the positive map, m+ = sigmoid((S - eps1) / sigma), m- = 1 - sigmoid((S - eps2) / sigma)
  (eps1 = 0.65 > eps2 = 0.4, sigma = 0.03 as the paper); P_b = <m+, S_bb> / |m+|,
  N_b = <m-, S_bb> / |m-|, and for other clips' frames k, E_bk = <m+_k, S_bk> / |m+_k|;
  l_bg = CE([P_b, N_b, E_b,k...] / 0.07, 0): the positive frame's own background is a negative.
- **Mosaics** (DSOL, Hu et al., NeurIPS 2020; `MosaicObjective`, `lambda_mosaic`): each example's
  frame is tiled 2 x 2 at half size with the frames of three other examples of the batch (its
  place drawn at random, `make_mosaic`); with its audio, the map A over the mosaic must put its
  mass in the tiles of its own clip: l_mosaic = -log sum_{cells in own tiles} A_ij. Cell-level
  supervision with no labels.
- **Binaural cues** (as "Telling Left from Right", Yang et al., CVPR 2020, and geometry-aware
  binaural work use the binaural track as self-supervision; `BinauralCueObjective`,
  `lambda_cue`): the ground-truth binaural chunk says on which side the sound is. Per band k of
  `cue_bands` log-spaced bands (200 Hz - 8 kHz) its ILD_k = 10 log10(E_L,k / E_R,k) (clipped to
  +-20 dB, in units of 10 dB, `band_ild`); the map's column profile p (A summed over rows, in
  `cue_bins` columns) predicts it through a learned linear map of its odd part,
  ILD^_k = sum_j W_jk (p_j - p_{n-1-j}) (no bias: a centred or symmetric map predicts 0 dB, and a
  mirrored map predicts the opposite ILD, as a mirrored scene with swapped ears has);
  l_cue = mean_k (ILD^_k - ILD_k)^2 over chunks that are not silent.
- **The columns' acoustic responses** (ours, from the spatial prior's model of the differential,
  `keras_binaural.models.spatial_prior`; `ResponseObjective`, `lambda_response`): a source seen
  in image column k turns the mono into the differential through one response per frequency,
  D = M R_k(f) (the ratio of the difference to the sum of its two HRTFs). With a_k the map's
  mass in column bin k (`column_profile`, `response_columns` bins) and R_k(f) the least-squares
  answer over the training batches so far (`ColumnResponses`: running sums, no gradient),
  l_response = mean |M sum_k a_k R_k - D|^2 / mean |M|^2 over the STFT bins of the binaural
  chunk (each chunk at unit mono power). Where the cue objective predicts 8 band ILDs from an
  odd profile, this one asks the map's mass to sit in the column whose full complex response
  (level and delay, every frequency) explains the chunk: what the upmixer's prior then reads.
- **Flip equivariance** (`FlipObjective`, `lambda_flip`): the map of the mirrored frame should be
  the mirror of the map: l_flip = sum_j |p(mirror V)_j - p(V)_{w-1-j}|, with p the column
  profile. (The data pipeline's `mirror` augmentation, a mirrored frame with swapped ears, is
  the cheaper way to the same symmetry; this term is the explicit one.)

- **Erasing the evidence** (ours, after the "deletion" test of saliency maps, RISE, Petsiuk et
  al., BMVC 2018, and adversarial erasing, Wei et al., CVPR 2017; `ErasureObjective`,
  `lambda_erase`): the frame with the map's region filled with its background colour,
  F~ = F (1 - m) + median(F) m with m = min(1, `erase_cells` A) upsampled to the pixels
  (`erase_attended`), must no longer match its audio: l_erase = softplus((s(F~) - s(F)) / tau)
  with s the smooth best cell, tau logsumexp_ij(S_ij / tau) (`erasure_loss`). The other terms
  are satisfied by a peak *next to* the object, in a cell that sees it (measured: just above it);
  erasing that cell leaves the object whole, so this term moves the map onto the pixels that
  make the match. m is bounded by `erase_cells` cells' worth, so erasing the whole frame is
  never an answer.

The visual encoder's receptive field matters as much (`keras_binaural.models.visual_encoders`:
"compact" cells see about one object).
"""

from __future__ import annotations

import itertools

import keras
import numpy as np
import tensorflow as tf

from keras_binaural.conventions import SAMPLE_RATE_HZ
from keras_binaural.models.localization_core import (
    column_profile,
    drop_hardest_negatives,
    l2_normalize,
    object_attention,
    own_cell_similarity,
    weighted_mean,
)
from keras_binaural.models.localization_objectives import (
    EncodedBatch,
    LocalizationObjective,
    ObjectiveLosses,
)
from keras_binaural.models.spatial_prior import ColumnResponses, prior_loss, stft

_EPSILON = 1e-6
_MASKED = -1e9  # logit of a candidate left out of a softmax
CUE_GAIN = 10.0  # see BinauralCueObjective.predict_ild


# === Math ===


def cell_similarity(visual, audio_feature):
    """S_b,k,ij = cos(V_k,ij, a_b): `[k, h, w, c]`, `[b, c]` -> `[b, k, h, w]`."""
    return tf.einsum("khwc,bc->bkhw", l2_normalize(visual), l2_normalize(audio_feature))


def without_false_negatives(scores, valid, fraction: float):
    """`valid` (positive on the diagonal) without each row's best-scoring negatives
    (`localization_core.drop_hardest_negatives`); the positive is always kept."""
    if not fraction or valid is None:
        return valid
    own = tf.eye(tf.shape(valid)[0], tf.shape(valid)[1], dtype=tf.bool)
    negatives = drop_hardest_negatives(scores, tf.logical_and(valid, tf.logical_not(own)),
                                       fraction)
    return tf.logical_or(negatives, own)


def candidate_mask(other_clip, num_candidates):
    """`[b, k]` bool: which visual candidates are usable for each audio (the positive included).

    Candidates 0 .. b-1 are the batch's frames (usable when they come from another clip, or are
    the example's own); candidates b .. k-1 are negative frames (always another clip).

    Args:
      other_clip: `[b, b]` bool (True: another clip), or None (no clip ids: every frame usable).
      num_candidates: k >= b.
    """
    if other_clip is None:
        return None
    batch = tf.shape(other_clip)[0]
    own = tf.logical_or(other_clip, tf.eye(batch, dtype=tf.bool))
    return tf.concat([own, tf.ones([batch, num_candidates - batch], tf.bool)], axis=1)


def mil_loss(similarity, valid=None, temperature: float = 0.03):
    """EZ-VSL's multiple-instance InfoNCE (see the module docstring), a scalar.

    Args:
      similarity: `[b, k, h, w]` S with k >= b; audio b's positive is candidate b.
      valid: `[b, k]` bool usable candidates (`candidate_mask`), or None (all).
      temperature: tau_mil.
    """
    batch = tf.shape(similarity)[0]
    scores = tf.reduce_max(similarity, axis=[2, 3]) / temperature
    if valid is not None:
        scores = tf.where(valid, scores, _MASKED)
    labels = tf.range(batch)
    audio_to_visual = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, scores)
    visual_to_audio = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels, tf.transpose(scores[:, :batch]))
    return 0.5 * (tf.reduce_mean(audio_to_visual) + tf.reduce_mean(visual_to_audio))


def _region_mean(weights, similarity):
    """sum(weights * S) / sum(weights) over the cells (the last two axes)."""
    total = tf.reduce_sum(weights, axis=[-2, -1])
    return tf.reduce_sum(weights * similarity, axis=[-2, -1]) / tf.maximum(total, _EPSILON)


def background_loss(similarity, valid=None, positive_threshold: float = 0.65,
                    negative_threshold: float = 0.4, sharpness: float = 0.03,
                    temperature: float = 0.07):
    """LVS's loss with the positive frame's background as a hard negative, a scalar.

    Args:
      similarity: `[b, k, h, w]` S with k >= b; audio b's positive is candidate b.
      valid: `[b, k]` bool usable candidates, or None (all).
      positive_threshold, negative_threshold: eps1 > eps2 on the cosine similarity.
      sharpness: sigma of the soft thresholds.
      temperature: of the final softmax.
    """
    batch = tf.shape(similarity)[0]
    positive_region = tf.sigmoid((similarity - positive_threshold) / sharpness)
    region = _region_mean(positive_region, similarity)  # [b, k]: P on the diagonal, E elsewhere
    own = tf.gather(similarity, tf.range(batch), axis=1, batch_dims=1)  # [b, h, w]
    background = 1.0 - tf.sigmoid((own - negative_threshold) / sharpness)
    others = tf.logical_not(tf.eye(batch, tf.shape(similarity)[1], dtype=tf.bool))
    if valid is not None:
        others = tf.logical_and(others, valid)
    logits = tf.concat([tf.linalg.diag_part(region[:, :batch])[:, None],
                        _region_mean(background, own)[:, None],
                        tf.where(others, region, _MASKED)], axis=1) / temperature
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.zeros([batch], tf.int32), logits))


def make_mosaic(frames, same_clip, position):
    """2 x 2 mosaics of half-size frames: example b's at `position[b]`, b+1 .. b+3 elsewhere.

    Tile q (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right) of mosaic b shows example
    (b + (q - position[b]) mod 4) mod B.

    Args:
      frames: `[B, H, W, 3]` (static H, W).
      same_clip: `[B, B]` bool, True where two examples come from the same clip.
      position: `[B]` int32 in 0..3.

    Returns:
      (mosaics `[B, H, W, 3]` (a row or column of zeros where H or W is odd),
       tile_target `[B, 4]` float: 1 for tiles that show example b's clip).
    """
    height, width = frames.shape[1], frames.shape[2]
    batch = tf.shape(frames)[0]
    half = tf.nn.avg_pool2d(frames, 2, 2, "VALID")
    source = (tf.range(batch)[:, None] + (tf.range(4)[None, :] - position[:, None]) % 4) % batch
    tiles = tf.gather(half, source)  # [B, 4, H/2, W/2, 3]
    mosaics = tf.concat([tf.concat([tiles[:, 0], tiles[:, 1]], axis=2),
                         tf.concat([tiles[:, 2], tiles[:, 3]], axis=2)], axis=1)
    mosaics = tf.pad(mosaics, [[0, 0], [0, height % 2], [0, width % 2], [0, 0]])
    target = tf.cast(tf.gather(same_clip, source, batch_dims=1), frames.dtype)
    return mosaics, target


def tile_of_cells(cells_hw: tuple[int, int], frame_hw: tuple[int, int], stride: int) -> np.ndarray:
    """`[h, w]` int: the mosaic tile (0-3, as `make_mosaic`) each cell's centre falls in."""
    rows = (np.arange(cells_hw[0]) * stride + (stride - 1) / 2) >= frame_hw[0] // 2
    columns = (np.arange(cells_hw[1]) * stride + (stride - 1) / 2) >= frame_hw[1] // 2
    return (2 * rows[:, None] + columns[None, :]).astype(np.int32)


def mosaic_loss(attention, tile_target, cell_tiles):
    """-log of the map's mass on the cells of the own clip's tiles, averaged: a scalar.

    Args:
      attention: `[B, h, w]` the map over a mosaic's cells (sums to 1 per example).
      tile_target: `[B, 4]` 1 for the tiles of the example's clip (`make_mosaic`).
      cell_tiles: `[h, w]` int tile of each cell (`tile_of_cells`).
    """
    cell_target = tf.gather(tile_target, cell_tiles, axis=1)  # [B, h, w]
    mass = tf.reduce_sum(attention * cell_target, axis=[1, 2])
    return tf.reduce_mean(-tf.math.log(tf.maximum(mass, _EPSILON)))


def band_edges_hz(num_bands: int, low_hz: float = 200.0, high_hz: float = 8000.0) -> np.ndarray:
    """`num_bands + 1` log-spaced band edges (the last band ends at Nyquist for 16 kHz)."""
    return np.geomspace(low_hz, high_hz, num_bands + 1)


def band_ild(binaural, num_bands: int = 8, clip_db: float = 20.0, fft_size: int = 512,
             hop: int = 256, sample_rate_hz: int = SAMPLE_RATE_HZ):
    """Per-band interaural level difference of binaural chunks, in units of 10 dB.

    ILD_k = 10 log10(E_L,k / E_R,k), E the power summed over the STFT bins of band k
    (`band_edges_hz`) and all frames (Hann window `fft_size`, hop `hop`), clipped to +-clip_db.
    Positive: louder in the left ear (a source on the left).

    Args:
      binaural: `[B, time, 2]` (left, right).

    Returns:
      (`[B, num_bands]` ILD / 10 dB, `[B]` 1.0 where the chunk is not silent).
    """
    binaural = tf.convert_to_tensor(binaural, tf.float32)
    spectra = tf.signal.stft(tf.transpose(binaural, [0, 2, 1]), fft_size, hop, fft_size)
    power = tf.reduce_sum(tf.square(tf.abs(spectra)), axis=2)  # [B, 2, bins]
    frequencies = np.arange(fft_size // 2 + 1) * sample_rate_hz / fft_size
    edges = band_edges_hz(num_bands)
    bands = np.stack([(frequencies >= lo) & (frequencies < hi) for lo, hi in
                      itertools.pairwise(edges)], axis=1).astype(np.float32)  # [bins, K]
    energy = tf.matmul(power, bands)  # [B, 2, K]
    floor = 1e-8
    ild_db = 10.0 * (tf.math.log(energy[:, 0] + floor) - tf.math.log(energy[:, 1] + floor)) / (
        np.log(10.0))
    loud = tf.reduce_mean(tf.square(binaural), axis=[1, 2]) > 1e-6
    return tf.clip_by_value(ild_db, -clip_db, clip_db) / 10.0, tf.cast(loud, tf.float32)


def odd_part(profile):
    """p - mirror(p): `[B, n]` -> `[B, n]`, antisymmetric under the left-right mirror."""
    return profile - tf.reverse(profile, [1])


def flip_loss(cell_map, mirrored_cell_map):
    """sum_j |p(mirror)_j - p_{w-1-j}|, averaged over the batch (p: column profile)."""
    profile = tf.reduce_sum(cell_map, axis=1)
    mirrored = tf.reduce_sum(mirrored_cell_map, axis=1)
    return tf.reduce_mean(tf.reduce_sum(tf.abs(mirrored - tf.reverse(profile, [1])), axis=1))


def median_colour(frames):
    """Each frame's per-channel median `[B, 1, 1, 3]`: the colour of its background where the
    background covers more than half of the frame (what an erased region is filled with)."""
    flat = tf.sort(tf.reshape(frames, [tf.shape(frames)[0], -1, frames.shape[-1]]), axis=1)
    middle = tf.gather(flat, tf.shape(flat)[1] // 2, axis=1)
    return middle[:, None, None, :]


def erase_attended(frames, attention, cells: float, stride: int):
    """The frames with the map's region filled with their background colour.

    The erasing mask over the cells is m = min(1, cells A): a map concentrated on one cell
    erases it wholly and hardly anything else, and no map erases more than `cells` cells' worth
    (A sums to 1), so erasing everything is never an answer. Each cell's mask covers its
    `stride` x `stride` pixels (the encoders' cell i stands for pixels [s i, s i + s)).

    Args:
      frames: `[B, H, W, 3]` (static H, W).
      attention: `[B, h, w]` the map A over the frame's cells (sums to 1).
      cells: the erased area's bound, in cells.
      stride: pixels per cell.

    Returns:
      `[B, H, W, 3]`: frames (1 - m) + median colour m.
    """
    height, width = frames.shape[1], frames.shape[2]
    mask = tf.minimum(1.0, cells * attention)
    pixels = tf.repeat(tf.repeat(mask, stride, axis=1), stride, axis=2)[:, :height, :width, None]
    return frames * (1.0 - pixels) + median_colour(frames) * pixels


def erasure_loss(similarity, erased_similarity, temperature: float = 0.07):
    """The erased frame as its own audio's negative: mean_b softplus((s~_b - s_b) / tau), with
    s = tau logsumexp_ij(S_ij / tau) the smooth best cell of a frame's own similarity map.

    Args:
      similarity, erased_similarity: `[B, h, w]` cos(V_b,ij, a_b) of the frame and of its erased
        copy.
    """
    def best_cell(cells):
        return temperature * tf.reduce_logsumexp(cells / temperature, axis=[1, 2])

    return tf.reduce_mean(tf.math.softplus(
        (best_cell(erased_similarity) - best_cell(similarity)) / temperature))


# === Objectives ===


class PointingObjective(LocalizationObjective):
    """A pointing objective: reads the cell similarity S or the map A of the batch.

    `LocalizationModel` gives it the batch encoded once (`EncodedBatch`, with `audio_feature`,
    the head's a, and the extra encodings it `needs`) and `temperature`, the attention's tau.
    """

    def __init__(self, temperature: float = 0.07, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature

    def needs(self, training: bool) -> frozenset[str]:
        return frozenset({"audio_feature"})

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="keras_binaural")
class MultipleInstanceObjective(PointingObjective):
    """EZ-VSL's best-cell InfoNCE (`mil_loss`); term `mil_loss`.

    Args:
      mil_temperature: tau_mil of the cell scores.
      temperature: the attention's tau (unused here; every pointing objective takes it).
    """

    loss_names = ("mil_loss",)

    def __init__(self, mil_temperature: float = 0.03, **kwargs):
        super().__init__(**kwargs)
        self.mil_temperature = mil_temperature

    def needs(self, training: bool) -> frozenset[str]:
        return frozenset({"audio_feature", "negative_visual"})

    def losses(self, batch: EncodedBatch, training: bool = False) -> ObjectiveLosses:
        candidates = tf.concat([batch.visual, batch.negative_visual], 0)
        similarity = cell_similarity(candidates, batch.audio_feature)
        valid = candidate_mask(batch.other_clip, 2 * batch.batch_size)
        valid = without_false_negatives(tf.reduce_max(similarity, axis=[2, 3]), valid,
                                        batch.false_negative_fraction)
        return ObjectiveLosses({"mil_loss": mil_loss(similarity, valid, self.mil_temperature)})

    def get_config(self):
        return {**super().get_config(), "mil_temperature": self.mil_temperature}


@keras.saving.register_keras_serializable(package="keras_binaural")
class BackgroundObjective(PointingObjective):
    """LVS's background-as-hard-negative loss (`background_loss`); term `background_loss`."""

    loss_names = ("background_loss",)

    def needs(self, training: bool) -> frozenset[str]:
        return frozenset({"audio_feature", "negative_visual"})

    def losses(self, batch: EncodedBatch, training: bool = False) -> ObjectiveLosses:
        candidates = tf.concat([batch.visual, batch.negative_visual], 0)
        similarity = cell_similarity(candidates, batch.audio_feature)
        valid = candidate_mask(batch.other_clip, 2 * batch.batch_size)
        valid = without_false_negatives(tf.reduce_max(similarity, axis=[2, 3]), valid,
                                        batch.false_negative_fraction)
        return ObjectiveLosses({"background_loss": background_loss(similarity, valid)})


@keras.saving.register_keras_serializable(package="keras_binaural")
class MosaicObjective(PointingObjective):
    """DSOL-style 2 x 2 mosaics (`make_mosaic`, `mosaic_loss`); term `mosaic_loss`.

    The model encodes the mosaics with the frames (`EncodedBatch.mosaic_visual`, `mosaic_target`).
    """

    loss_names = ("mosaic_loss",)

    def needs(self, training: bool) -> frozenset[str]:
        return frozenset({"audio_feature", "mosaic"})

    def losses(self, batch: EncodedBatch, training: bool = False) -> ObjectiveLosses:
        attention = object_attention(batch.mosaic_visual, batch.audio_feature, self.temperature)
        return ObjectiveLosses({"mosaic_loss": mosaic_loss(
            attention, batch.mosaic_target, batch.mosaic_cell_tiles)})


@keras.saving.register_keras_serializable(package="keras_binaural")
class BinauralCueObjective(PointingObjective):
    """The map's column profile predicts the binaural chunk's per-band ILD; term `cue_loss`.

    Args:
      cue_bins: columns of the profile.
      cue_bands: ILD bands (`band_ild`).
      temperature: the attention's tau.
    """

    loss_names = ("cue_loss",)
    required_keys = ("binaural",)

    def __init__(self, cue_bins: int = 8, cue_bands: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.cue_bins = cue_bins
        self.cue_bands = cue_bands

    def build(self, input_shape=None):
        # Zero: an untrained head predicts 0 dB everywhere, the mono-mono guess.
        self.kernel = self.add_weight((self.cue_bins, self.cue_bands), initializer="zeros",
                                      name="kernel")
        self.built = True

    def predict_ild(self, cell_map):
        """ILD^ `[B, cue_bands]` (units of 10 dB) from a map `[B, h, w]` over the cells.

        W = CUE_GAIN x the kernel: Adam moves a weight by about the learning rate per step, and
        W must reach order 1; the gain gives it ten times the model's learning rate.
        """
        odd = odd_part(column_profile(cell_map, self.cue_bins))
        return tf.matmul(odd, CUE_GAIN * tf.cast(self.kernel, odd.dtype))

    def losses(self, batch: EncodedBatch, training: bool = False) -> ObjectiveLosses:
        attention = object_attention(batch.visual, batch.audio_feature, self.temperature)
        ild, loud = band_ild(batch.data["binaural"], self.cue_bands)
        error = tf.reduce_mean(tf.square(self.predict_ild(attention) - ild), axis=-1)
        return ObjectiveLosses({"cue_loss": weighted_mean(error, loud)})

    def get_config(self):
        return {**super().get_config(), "cue_bins": self.cue_bins, "cue_bands": self.cue_bands}


@keras.saving.register_keras_serializable(package="keras_binaural")
class ResponseObjective(PointingObjective):
    """The map's column mass, through each column's response, explains the differential; term
    `response_loss` (`ColumnResponses`, least-squares R_k(f) from running sums).

    Args:
      response_columns: K, the column bins of the map's mass.
      temperature: the attention's tau.
    """

    loss_names = ("response_loss",)
    required_keys = ("binaural",)

    def __init__(self, response_columns: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.response_columns = response_columns
        self.responses = ColumnResponses(response_columns, name="responses")

    def build(self, input_shape=None):
        self.responses.build()
        self.built = True

    def losses(self, batch: EncodedBatch, training: bool = False) -> ObjectiveLosses:
        attention = object_attention(batch.visual, batch.audio_feature, self.temperature)
        mass = column_profile(tf.cast(attention, tf.float32), self.response_columns)
        return ObjectiveLosses({"response_loss": self.response_loss(
            mass, batch.data["binaural"], training)})

    def response_loss(self, mass, binaural, training: bool = False):
        """mean |M sum_k a_k R_k - D|^2 / mean |M|^2 of chunks at unit mono power (scalar);
        in training, the chunks then update R.

        Args:
          mass: `[B, K]` the map's mass per column bin a_k.
          binaural: `[B, time, 2]` the chunks (left, right).
        """
        share, estimate, spectrum, diff_spectrum = self._estimate(mass, binaural)
        if training:
            self.responses.update(share, spectrum, diff_spectrum)
        return prior_loss(estimate, spectrum, diff_spectrum)

    def response_errors(self, mass, binaural):
        """The same error chunk by chunk, `[B]`: how far the map's columns, through the learnt
        responses, are from explaining each chunk's differential (d^ = 0 scores mean |D|^2 / mean
        |M|^2)."""
        _, estimate, spectrum, diff_spectrum = self._estimate(mass, binaural)
        error = tf.reduce_mean(tf.square(tf.abs(estimate - diff_spectrum)), axis=[1, 2])
        return error / tf.maximum(tf.reduce_mean(tf.square(tf.abs(spectrum)), axis=[1, 2]), 1e-8)

    def _estimate(self, mass, binaural):
        """(p, M sum_k a_k R_k, M, D) of chunks at unit mono power."""
        binaural = tf.cast(binaural, tf.float32)
        # Each chunk at unit mono power, so that loud chunks do not outweigh the rest.
        mono = (binaural[..., 0] + binaural[..., 1]) / 2
        scale = tf.sqrt(tf.reduce_mean(tf.square(mono), axis=1, keepdims=True)) + _EPSILON
        spectrum, diff_spectrum = (
            stft(signal / scale) for signal in (mono, (binaural[..., 0] - binaural[..., 1]) / 2))
        share = mass[:, None, None, :]  # every bin of a chunk from the map's columns
        return share, self.responses.estimate(share, spectrum), spectrum, diff_spectrum

    def get_config(self):
        return {**super().get_config(), "response_columns": self.response_columns}


@keras.saving.register_keras_serializable(package="keras_binaural")
class FlipObjective(PointingObjective):
    """The mirrored frame's map is the mirrored map (`flip_loss`); term `flip_loss`."""

    loss_names = ("flip_loss",)

    def needs(self, training: bool) -> frozenset[str]:
        return frozenset({"audio_feature", "mirrored_visual"})

    def losses(self, batch: EncodedBatch, training: bool = False) -> ObjectiveLosses:
        attention = object_attention(batch.visual, batch.audio_feature, self.temperature)
        mirrored = object_attention(batch.mirrored_visual, batch.audio_feature, self.temperature)
        return ObjectiveLosses({"flip_loss": flip_loss(attention, mirrored)})


@keras.saving.register_keras_serializable(package="keras_binaural")
class ErasureObjective(PointingObjective):
    """Erasing the map's region must remove what matches the audio (`erase_attended`,
    `erasure_loss`); term `erasure_loss`.

    The model encodes the erased frames after the frames (`EncodedBatch.erased_visual`; their
    map A comes from the first pass), so the gradient reaches the map through the erased pixels.
    That second pass encodes the frames again beside their erased copies, and the term compares
    the two halves of it (`EncodedBatch.unerased_visual`): BatchNorm normalises both with the
    same batch statistics in training. Compared across passes with statistics of their own, the
    erased frames were told apart by those statistics, and the term fell to 0.001 in training
    while it stayed at 0.3-0.6 on the same batches in inference mode (BENCHMARKS.md, issue 12).
    """

    loss_names = ("erasure_loss",)

    def needs(self, training: bool) -> frozenset[str]:
        return frozenset({"audio_feature", "erased_visual"})

    def losses(self, batch: EncodedBatch, training: bool = False) -> ObjectiveLosses:
        return ObjectiveLosses({"erasure_loss": erasure_loss(
            own_cell_similarity(batch.unerased_visual, batch.audio_feature),
            own_cell_similarity(batch.erased_visual, batch.audio_feature), self.temperature)})


POINTING_OBJECTIVES = {
    "lambda_mil": MultipleInstanceObjective,
    "lambda_background": BackgroundObjective,
    "lambda_mosaic": MosaicObjective,
    "lambda_cue": BinauralCueObjective,
    "lambda_response": ResponseObjective,
    "lambda_flip": FlipObjective,
    "lambda_erase": ErasureObjective,
}
