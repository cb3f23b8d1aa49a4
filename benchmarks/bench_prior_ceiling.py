"""How close the spatial prior can come to the true differential, given the true positions.

Usage:
  python benchmarks/bench_prior_ceiling.py --root DIR [--columns 16]

The spatial prior (keras_binaural/models/spatial_prior.py) models the differential as
D^(f, t) = M(f, t) sum_k p_k(t) R_k(f): the mono's spectrum through one response per image
column. Here p comes from the synthetic clips' metadata instead of a localizer: each sounding
object's box centre at that 0.1 s frame, its position between two of the K column bins shared
linearly between them, the sounding objects of a clip weighted equally. R is the least-squares
answer over the train split (per frequency, the K x K normal equations), scored on the test
split as the gain over mono-mono, -10 log10(sum |D - D^|^2 / sum |D|^2) (dB), per number of
sounding objects: the ceiling of the prior with a perfect map, and of how much a map that points
can give the upmixer. Numpy only (the metrics' STFT), a few seconds.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts (the audio reader imports it)

import json

import numpy as np
from absl import app, flags

from keras_binaural.audio import load_audio
from keras_binaural.conventions import SAMPLES_PER_FRAME
from keras_binaural.data import fairplay
from keras_binaural.metrics import HOP_SAMPLES, stft_numpy

flags.DEFINE_string("root", None, "A synthetic FAIR-Play-layout root (with metadata/).")
flags.DEFINE_string("split", "split1", "Split folder.")
flags.DEFINE_integer("columns", 16, "K, the column bins of the prior.")
flags.mark_flag_as_required("root")
FLAGS = flags.FLAGS


def clip_terms(clip: fairplay.Clip, root: str, columns: int):
    """(M, D `[frames, bins]`, p `[frames, K]`, sounding objects) of one clip."""
    binaural = load_audio(clip.audio_path, channels=2)  # [time, 2] at 16 kHz
    mono = stft_numpy((binaural[:, 0] + binaural[:, 1]) / 2)
    diff = stft_numpy((binaural[:, 0] - binaural[:, 1]) / 2)
    with open(os.path.join(root, "metadata", clip.clip_id + ".json")) as file:
        metadata = json.load(file)
    width = metadata["frame_size"][0]
    frames = len(mono)
    video_frame = np.arange(frames) * HOP_SAMPLES // SAMPLES_PER_FRAME
    share = np.zeros((frames, columns))
    sounding = [o for o in metadata["objects"] if o["sounding"]]
    for obj in sounding:
        boxes = np.asarray(obj["boxes_xyxy"], np.float64)
        centre = (boxes[:, 0] + boxes[:, 2]) / 2
        position = np.clip(centre[np.minimum(video_frame, len(centre) - 1)] / width * columns
                           - 0.5, 0, columns - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, columns - 1)
        rows = np.arange(frames)
        np.add.at(share, (rows, low), 1 - (position - low))
        np.add.at(share, (rows, high), position - low)
    share /= max(len(sounding), 1)
    return mono, diff, share, len(sounding)


def main(argv):
    del argv
    k = FLAGS.columns
    terms = {subset: [clip_terms(clip, FLAGS.root, k)
                      for clip in fairplay.list_clips(FLAGS.root, subset, FLAGS.split)]
             for subset in ("train", "test")}
    normal = np.zeros((257, k, k))
    cross = np.zeros((257, k), complex)
    for mono, diff, share, _ in terms["train"]:
        normal += np.einsum("tk,tj,tf->fkj", share, share, np.abs(mono) ** 2)
        cross += np.einsum("tk,tf->fk", share, np.conj(mono) * diff)
    response = np.linalg.solve(normal + 1e-6 * np.eye(k), cross[..., None])[..., 0]  # [f, K]
    print(f"{FLAGS.root}: R from {len(terms['train'])} train clips, K = {k}")
    print("| sounding objects | test clips | prior with the true positions vs mono-mono (dB) |")
    print("|---|---:|---:|")
    for count in (1, 2, 3, None):
        chosen = [t for t in terms["test"] if count is None or t[3] == count]
        if not chosen:
            continue
        error = sum(np.sum(np.abs(d - m * (p @ response.T)) ** 2) for m, d, p, _ in chosen)
        total = sum(np.sum(np.abs(d) ** 2) for _, d, _, _ in chosen)
        print(f"| {count or 'all'} | {len(chosen)} | {-10 * np.log10(error / total):+.2f} |")


if __name__ == "__main__":
    app.run(main)
