"""One reader for FAIR-Play-layout roots, real or synthetic, on `tf.data`.

Layout (SPEC section 2)::

    ROOT/binaural_audios/<id>.wav          stereo, (left, right), any sample rate
    ROOT/frames/<id>.mp4/000001.png ...    10 fps; frame k shows [(k - 1) / 10, k / 10) s
    ROOT/splits/<split>/<subset>.txt       one clip id per line (or the FAIR-Play <subset>.h5)
    ROOT/metadata/<id>.json                synthetic scenes only

Training examples are random 0.63 s chunks (10,080 samples at 16 kHz) with the frame at the chunk's
centre, a negative frame from another clip and the VGGish patches; evaluation examples are whole
clips with all their frames. Decoding happens inside the tf.data graph.

Bad data: a clip listed in a split whose WAV or frames are missing stops `list_clips` with an
error naming every such clip (or, with `skip_missing=True`, each is logged and skipped, and the count
is logged at the end). `check_files` reads every WAV header and PNG signature of a split in seconds
and names the first truncated or corrupt file: training and evaluation call it before any work.
The pipeline checks the files again in the graph before decoding them (an error naming the file).
"""

from __future__ import annotations

import dataclasses
import os
import re

import h5py
import tensorflow as tf
from absl import logging

from keras_binaural.audio import frontend, io
from keras_binaural.conventions import CHUNK_SECONDS, FRAMES_PER_SECOND, SAMPLE_RATE_HZ


class DatasetError(ValueError):
    """A dataset root that does not fit the FAIR-Play layout; the message names what is wrong."""


@dataclasses.dataclass(frozen=True)
class Clip:
    """One clip of a FAIR-Play-layout root."""

    clip_id: str
    audio_path: str
    frames_dir: str
    num_frames: int

    def frame_path(self, index: int) -> str:
        """Path of 1-based frame `index`."""
        return os.path.join(self.frames_dir, f"{index:06d}.png")


def split_ids(root: str, subset: str, split: str = "split1") -> list[str]:
    """The clip ids of `subset` ("train", "val", "test") in `split`, in file order.

    Reads `splits/<split>/<subset>.txt` (one id or file name per line), else the FAIR-Play
    `splits/<split>/<subset>.h5` (dataset `audio` of wav paths; only the file names are used, so
    the authors' path prefix does not matter).
    """
    folder = os.path.join(root, "splits", split)
    text, h5 = os.path.join(folder, f"{subset}.txt"), os.path.join(folder, f"{subset}.h5")
    if os.path.isfile(text):
        with open(text) as lines:
            names = [line.strip() for line in lines if line.strip()]
    elif os.path.isfile(h5):
        try:
            with h5py.File(h5, "r") as file:
                names = [os.fsdecode(p).replace("\\", "/") for p in file["audio"][:]]
        except (OSError, KeyError) as error:
            raise DatasetError(f"{h5}: not a FAIR-Play split file (h5 dataset 'audio'): {error}")
    else:
        raise DatasetError(f"{root}: split '{split}' has no {subset}.txt or {subset}.h5 in {folder}")
    ids = [re.sub(r"\.(wav|mp4)$", "", os.path.basename(name)) for name in names]
    if not ids:
        raise DatasetError(f"{text if os.path.isfile(text) else h5}: the split lists no clips")
    return ids


def list_clips(
    root: str,
    subset: str = "train",
    split: str = "split1",
    skip_missing: bool = False,
) -> list[Clip]:
    """The clips of a split, checked: each has its WAV and at least one frame.

    Raises:
      DatasetError: naming every listed clip whose WAV or frames are missing (unless
        `skip_missing`, which logs them and the count and goes on with the rest).
    """
    clips, problems = [], []
    for clip_id in split_ids(root, subset, split):
        audio_path = os.path.join(root, "binaural_audios", f"{clip_id}.wav")
        frames_dir = os.path.join(root, "frames", f"{clip_id}.mp4")
        num_frames = 0
        if os.path.isdir(frames_dir):
            num_frames = sum(name.endswith(".png") for name in os.listdir(frames_dir))
        if not os.path.isfile(audio_path):
            problems.append(f"{clip_id}: missing {audio_path}")
        elif num_frames == 0:
            problems.append(f"{clip_id}: no frames in {frames_dir} (run tools/prepare_fairplay.py)")
        elif not os.path.isfile(os.path.join(frames_dir, f"{num_frames:06d}.png")):
            problems.append(f"{clip_id}: frames in {frames_dir} are not numbered 000001..{num_frames:06d}")
        else:
            clips.append(Clip(clip_id, audio_path, frames_dir, num_frames))
    if problems and not skip_missing:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise DatasetError(
            f"{root}: {len(problems)} clip(s) of {split}/{subset} are incomplete:\n  {shown}{more}"
        )
    for problem in problems:
        logging.warning("skipping clip %s", problem)
    if problems:
        logging.warning("skipped %d of %d clips of %s/%s", len(problems), len(problems) + len(clips),
                        split, subset)
    if not clips:
        raise DatasetError(f"{root}: no usable clips in {split}/{subset}")
    return clips


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def file_problem(clip: Clip) -> str | None:
    """What is wrong with a clip's files, or None: its WAV's header (RIFF/WAVE, 2 channels,
    16-bit PCM or 32-bit float, as many bytes of samples as the header says) and every frame's
    PNG signature and final IEND chunk. Reads a few bytes per file, no samples or pixels."""
    try:
        header = io.read_wav_header(clip.audio_path)
    except io.AudioError as error:
        return str(error)
    if (header.format_tag, header.bits) not in ((1, 16), (3, 32)):
        return (f"{clip.audio_path}: a WAV of format {header.format_tag} with {header.bits}-bit "
                "samples; the reader takes 16-bit PCM or 32-bit float (convert it, e.g. with "
                "keras_binaural.audio.write_wav)")
    if header.channels != 2:
        return (f"{clip.audio_path}: {header.channels}-channel WAV; binaural (left, right) "
                "audio has 2 channels")
    for index in range(1, clip.num_frames + 1):
        path = clip.frame_path(index)
        try:
            with open(path, "rb") as stream:
                start = stream.read(8)
                stream.seek(max(0, os.fstat(stream.fileno()).st_size - 12))
                end = stream.read(12)
        except OSError as error:
            return f"{path}: cannot read ({error.strerror or error})"
        if start != PNG_SIGNATURE:
            return f"{path}: not a PNG file (no PNG signature); extract the frame again"
        if end[4:8] != b"IEND":
            return f"{path}: truncated PNG (no IEND chunk at its end); extract the frame again"
    return None


def check_files(clips: list[Clip]) -> None:
    """Checks the files of `clips` before any of them is decoded (`file_problem`), in seconds.

    Raises:
      DatasetError: one line naming the first bad file, what is wrong and what would be right,
        and how many other clips are bad.
    """
    problems = [problem for problem in map(file_problem, clips) if problem]
    if problems:
        more = f" (and {len(problems) - 1} more bad clip(s))" if len(problems) > 1 else ""
        raise DatasetError(problems[0] + more)


def frame_index(start_seconds, end_seconds, num_frames):
    """The 1-based frame shown at a chunk's centre: round((t_centre + 0.05) * 10), clamped.

    Works on Python numbers and tensors (SPEC section 2).
    """
    index = tf.round(((start_seconds + end_seconds) / 2 + 0.05) * FRAMES_PER_SECOND)
    return tf.clip_by_value(tf.cast(index, tf.int32), 1, num_frames)


# === Decoding in the graph ===


def _checked(contents, path, ok, what):
    check = tf.debugging.Assert(ok, [f"corrupt or truncated {what}:", path])
    with tf.control_dependencies([check]):
        return tf.identity(contents)


def read_binaural(path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> tf.Tensor:
    """Reads a 2-channel WAV to `[time, 2]` float32 at 16 kHz, checking its header first.

    A WAV whose RIFF size does not match the file's length (truncated), with another channel
    count, or not 16-bit PCM or 32-bit float stops with an error naming the file. Decoding is
    stateless (`io.decode_wav`), so parallel maps never mix clips up.
    """
    contents = tf.io.read_file(path)
    riff_size = io.little_endian(contents, 4, 4)
    ok = tf.logical_and(
        tf.logical_and(tf.strings.substr(contents, 0, 4) == "RIFF",
                       tf.strings.substr(contents, 8, 4) == "WAVE"),
        riff_size + 8 <= tf.cast(tf.strings.length(contents), tf.int64),
    )
    contents = _checked(contents, path, ok, "WAV")
    stereo = tf.equal(io.wav_header(contents)["channels"], 2)
    with tf.control_dependencies([tf.debugging.Assert(stereo, ["not a 2-channel WAV:", path])]):
        return io.decode_wav(tf.identity(contents), sample_rate_hz, name=path)


def read_frame(path) -> tf.Tensor:
    """Reads a PNG frame to `[height, width, 3]` float32 in [0, 1], checking it is complete."""
    contents = tf.io.read_file(path)
    ok = tf.logical_and(
        tf.strings.substr(contents, 0, 8) == b"\x89PNG\r\n\x1a\n",
        tf.strings.substr(contents, -8, 4) == "IEND",  # the last chunk, before its CRC
    )
    contents = _checked(contents, path, ok, "PNG")
    image = tf.io.decode_png(contents, channels=3)
    return tf.image.convert_image_dtype(image, tf.float32)


def _frame_path(frames_dir, index):
    return tf.strings.join([frames_dir, "/", tf.strings.as_string(index, width=6, fill="0"), ".png"])


# === Augmentation (FAIR-Play's: resize, random crop, brightness and colour jitter) ===


def prepare_frame(image, seed, resize_hw, crop_hw, augment: bool, jitter: float = 0.4):
    """Resizes a frame, crops it (random with `augment`, else central) and jitters it.

    Brightness scales the pixels and colour blends with the grey image, each by a factor drawn
    from [1 - jitter, 1 + jitter] (as PIL's ImageEnhance in the original FAIR-Play code).

    Args:
      image: `[height, width, 3]` float32 in [0, 1].
      seed: `[2]` int32 stateless seed.
    """
    image = tf.image.resize(image, resize_hw, antialias=True)
    if augment:
        seeds = tf.random.experimental.stateless_split(seed, 3)
        image = tf.image.stateless_random_crop(image, [*crop_hw, 3], seeds[0])
        brightness = tf.random.stateless_uniform([], seeds[1], 1 - jitter, 1 + jitter)
        colour = tf.random.stateless_uniform([], seeds[2], 1 - jitter, 1 + jitter)
        image = image * brightness
        grey = tf.image.rgb_to_grayscale(image)
        image = grey + colour * (image - grey)
    else:
        top = (resize_hw[0] - crop_hw[0]) // 2
        left = (resize_hw[1] - crop_hw[1]) // 2
        image = image[top : top + crop_hw[0], left : left + crop_hw[1]]
    return tf.clip_by_value(image, 0.0, 1.0)


# === Datasets ===


def _clip_table(clips: list[Clip]):
    return (
        tf.constant([c.audio_path for c in clips]),
        tf.constant([c.frames_dir for c in clips]),
        tf.constant([c.num_frames for c in clips], tf.int32),
    )


def training_dataset(
    clips: list[Clip],
    seed: int = 0,
    chunks_per_clip: int = 4,
    resize_hw: tuple[int, int] = (240, 480),
    crop_hw: tuple[int, int] = (224, 448),
    augment: bool = True,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    chunk_seconds: float = CHUNK_SECONDS,
    mirror: bool = False,
) -> tf.data.Dataset:
    """Random training chunks, endless, deterministic given `seed` (unbatched).

    Each clip is decoded once for `chunks_per_clip` random chunks (the clips are shuffled; the
    chunks of one clip are spread by a shuffle buffer).

    With `mirror`, half of the examples (drawn per example) are mirrored: the frame left-right
    and the ears swapped (L <-> R, so d -> -d; the mono is unchanged), which is the same scene
    seen and heard from its mirror image (exact for a left-right symmetric head). It doubles the
    directions seen in training and teaches the localizer and upmixer that symmetry. The
    negative frame is not mirrored (it only has to be another clip).

    Returns:
      A dataset of dicts:
        mono: `[chunk]` float32, m = (L + R) / 2; diff: `[chunk]`, d = (L - R) / 2;
        binaural: `[chunk, 2]` (left, right); chunk = 10,080 samples at 16 kHz.
        frame, negative_frame: `[crop_h, crop_w, 3]` float32 in [0, 1]: the frame at the chunk's
          centre, and a random frame of another clip.
        mono_patch: `[96, 64]` VGGish log-mel patch of the mono centred on the chunk;
        binaural_patch: `[2, 96, 64]` the same for the left and the right channel.
        binaural_context: `[15600, 2]` the binaural audio those patches are computed from; the
          chunk is `binaural_context[offset : offset + chunk]`, offset =
          `frontend.context_offset(chunk)`.
        clip_id: string; start_sample: int32.
    """
    if len(clips) < 2:
        raise DatasetError("training needs at least two clips (negative frames come from another)")
    audio_paths, frames_dirs, frame_counts = _clip_table(clips)
    num_clips = len(clips)
    chunk_samples = round(chunk_seconds * sample_rate_hz)
    clip_ids = tf.constant([c.clip_id for c in clips])

    def load_clip(index, clip_seed):
        audio = read_binaural(audio_paths[index], sample_rate_hz)
        seeds = tf.random.experimental.stateless_split(clip_seed, chunks_per_clip)
        return tf.data.Dataset.from_tensor_slices(seeds).map(
            lambda seed: make_example(index, audio, seed)
        )

    def make_example(index, audio, seed):
        seeds = tf.random.experimental.stateless_split(seed, 5)
        if mirror:  # a separate stream, so that `mirror=False` keeps its examples
            flip = tf.random.stateless_uniform(
                [], tf.random.experimental.stateless_fold_in(seed, 1)) < 0.5
            audio = tf.cond(flip, lambda: tf.reverse(audio, [1]), lambda: audio)
        length = tf.shape(audio)[0]
        padded = tf.pad(audio, [[0, tf.maximum(0, chunk_samples - length)], [0, 0]])
        max_start = tf.maximum(1, tf.shape(padded)[0] - chunk_samples + 1)
        start = tf.random.stateless_uniform([], seeds[0], 0, max_start, tf.int32)
        binaural = padded[start : start + chunk_samples]
        binaural.set_shape([chunk_samples, 2])
        mono, diff = io.to_mono_diff(binaural)

        start_s = tf.cast(start, tf.float32) / sample_rate_hz
        index_frame = frame_index(start_s, start_s + chunk_seconds, frame_counts[index])
        frame = read_frame(_frame_path(frames_dirs[index], index_frame))
        other = tf.random.stateless_uniform([], seeds[1], 0, num_clips - 1, tf.int32)
        other = tf.where(other >= index, other + 1, other)  # any clip but this one
        other_frame = tf.random.stateless_uniform([], seeds[2], 1, frame_counts[other] + 1, tf.int32)
        negative = read_frame(_frame_path(frames_dirs[other], other_frame))

        # The 0.96 s of binaural audio centred on the chunk (zero-padded at the clip's edges).
        centre = start + chunk_samples // 2
        half = frontend.PATCH_SAMPLES // 2
        context = tf.pad(audio, [[half, half], [0, 0]])[centre : centre + frontend.PATCH_SAMPLES]
        context.set_shape([frontend.PATCH_SAMPLES, 2])
        context_mono, _ = io.to_mono_diff(context)
        patches = frontend.log_mel_spectrogram(
            tf.stack([context_mono, context[:, 0], context[:, 1]])
        )
        frame = prepare_frame(frame, seeds[3], resize_hw, crop_hw, augment)
        if mirror:
            frame = tf.cond(flip, lambda: tf.reverse(frame, [1]), lambda: frame)
        return {
            "mono": mono,
            "diff": diff,
            "binaural": binaural,
            "frame": frame,
            "negative_frame": prepare_frame(negative, seeds[4], resize_hw, crop_hw, augment),
            "mono_patch": patches[0],
            "binaural_patch": patches[1:],
            "binaural_context": context,
            "clip_id": clip_ids[index],
            "start_sample": start,
        }

    clip_seeds = tf.data.Dataset.random(seed=seed).batch(2).map(
        lambda pair: tf.cast(pair % (2**31 - 1), tf.int32)
    )
    indices = tf.data.Dataset.range(num_clips).map(lambda i: tf.cast(i, tf.int32))
    indices = indices.shuffle(num_clips, seed=seed, reshuffle_each_iteration=True).repeat()
    dataset = tf.data.Dataset.zip(indices, clip_seeds).interleave(
        load_clip,
        cycle_length=4,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset.shuffle(4 * chunks_per_clip, seed=seed)


def evaluation_dataset(
    clips: list[Clip],
    resize_hw: tuple[int, int] = (240, 480),
    crop_hw: tuple[int, int] = (224, 448),
    sample_rate_hz: int = SAMPLE_RATE_HZ,
) -> tf.data.Dataset:
    """Whole clips, in order (unbatched: clips differ in length).

    Returns:
      A dataset of dicts: clip_id; binaural `[time, 2]`; mono `[time]`; diff `[time]`;
      frames `[num_frames, crop_h, crop_w, 3]` float32 in [0, 1] (central crop), frame k at
      [(k - 1) / 10, k / 10) s.
    """
    audio_paths, frames_dirs, frame_counts = _clip_table(clips)
    clip_ids = tf.constant([c.clip_id for c in clips])

    def load(index):
        binaural = read_binaural(audio_paths[index], sample_rate_hz)
        mono, diff = io.to_mono_diff(binaural)
        paths = _frame_path(frames_dirs[index], tf.range(1, frame_counts[index] + 1))
        frames = tf.map_fn(
            lambda path: prepare_frame(read_frame(path), tf.zeros([2], tf.int32), resize_hw,
                                       crop_hw, augment=False),
            paths,
            fn_output_signature=tf.TensorSpec([*crop_hw, 3], tf.float32),
        )
        return {"clip_id": clip_ids[index], "binaural": binaural, "mono": mono, "diff": diff,
                "frames": frames}

    return tf.data.Dataset.range(len(clips)).map(
        lambda i: load(tf.cast(i, tf.int32)), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
