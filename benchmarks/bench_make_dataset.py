"""Synthetic dataset generation speed: clips per second written by `synthetic.make_dataset`.

Usage:
  python benchmarks/bench_make_dataset.py [--num_clips 24] [--workers 2] [--frame_size 224x224]

Writes `--num_clips` clips of 10 s at 16 kHz (default settings: up to 3 sources, up to 2
distractors, a quarter of the objects moving, KEMAR, pinhole 90 deg) into a fresh temporary
folder with `--workers` processes, and prints clips per second (wall clock, including the
worker start-up and the splits). Then it times the stages of one clip in this process. The
folder is removed at the end.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts: it reads these once

import shutil
import tempfile
import time

import numpy as np
from absl import app, flags

from keras_binaural import cli
from keras_binaural.data import hrtf, rendering, scenes, synthetic

flags.DEFINE_integer("num_clips", 24, "Clips to generate.")
flags.DEFINE_integer("workers", 2, "Worker processes.")
flags.DEFINE_float("clip_seconds", 10.0, "Clip length in seconds.")
flags.DEFINE_string("frame_size", "224x224", "Frame size WxH.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    settings = scenes.SceneSettings(
        clip_seconds=FLAGS.clip_seconds, frame_size=cli.parse_size_wh(FLAGS.frame_size)
    )
    hrtf.load_hrirs(settings.hrtf)
    folder = tempfile.mkdtemp(prefix="bench_make_dataset_")
    try:
        start = time.perf_counter()
        synthetic.make_dataset(folder, settings, FLAGS.num_clips, seed=0, workers=FLAGS.workers)
        seconds = time.perf_counter() - start
        megabytes = sum(
            os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files
        ) / (1 << 20)
        rate = FLAGS.num_clips / seconds
        print(
            f"make_dataset: {FLAGS.num_clips} clips of {settings.clip_seconds:g} s, "
            f"{settings.frame_size[0]}x{settings.frame_size[1]} frames, {FLAGS.workers} workers, "
            f"{os.cpu_count()} cores: {seconds:.1f} s, {rate:.2f} clips/s "
            f"({rate * settings.clip_seconds:.1f} s of audio per second), "
            f"{megabytes / FLAGS.num_clips:.2f} MB per clip"
        )

        # Stages of one clip, in this process.
        hrirs = hrtf.load_hrirs(settings.hrtf)
        bank = synthetic._source_bank(None, settings.sample_rate_hz)
        stages = {"scene + sound": [], "frames": [], "write (wav, png, mp4, json)": []}
        for index in range(1, 4):
            scene_seed, audio_seed, picture_seed = np.random.SeedSequence([1, index]).spawn(3)
            t0 = time.perf_counter()
            objects = scenes.sample_scene(
                np.random.default_rng(scene_seed), settings, bank.classes
            )
            rendering.render_audio(
                objects, settings, np.random.default_rng(audio_seed), hrirs, bank
            )
            t1 = time.perf_counter()
            rendering.render_frames(objects, settings, np.random.default_rng(picture_seed))
            t2 = time.perf_counter()
            clip = synthetic.make_clip(index, settings, seed=1)
            t3 = time.perf_counter()
            synthetic.write_clip(os.path.join(folder, "stages"), clip)
            t4 = time.perf_counter()
            stages["scene + sound"].append(t1 - t0)
            stages["frames"].append(t2 - t1)
            stages["write (wav, png, mp4, json)"].append(t4 - t3)
        for name, times in stages.items():
            print(f"  {name}: {1000 * np.median(times):.0f} ms per clip")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
