"""Sounding-object localization on synthetic scenes: supp. Table 1, the pointing game, ablations.

Usage:
  python benchmarks/bench_localization.py                       # make data, train, evaluate
  python benchmarks/bench_localization.py --root DIR            # an existing synthetic root
  python benchmarks/bench_localization.py --variants paper,mosaic,pointing --steps 1500
  python benchmarks/bench_localization.py --reuse               # evaluate the saved models again

Without --root it first writes a synthetic dataset with tools/make_dataset.py (the generator's
default scenes: 1-3 sounding objects of distinct classes and 0-2 silent distractors among 7
classes, 25 % moving, pinhole camera, MIT KEMAR; here 1,200 clips of 6 s with 128 x 128 frames,
seed 0, kept in --workdir for reruns; split 1 is 960 / 120 / 120 train / val / test clips). Many
short clips rather than few long ones: each clip has its own random room, and with 200 clips the
model learnt to recognise clips by their room instead of matching sounds to objects.

It trains each localizer of --variants (VARIANTS below: the paper's loss set with ResNet-18 or
the compact encoder, each pointing objective of `keras_binaural.models.pointing` alone, all
together, and the additional baseline) with the compact audio encoder (no pre-trained VGGish
exists here), in-batch negatives and Adam (5 % warm-up, cosine decay, global norm 1) for --steps
steps of 16 examples (the same examples for all), frames resized to 136 x 136 and cropped to
128 x 128 (random crop in training, central in evaluation).

Evaluation on the test split (`keras_binaural.evaluation.localization.evaluate_localization`):
supp. Table 1's distance and accuracy over every 0.1 s window (with another clip's frame, and
with another clip's audio, as the negative), the fraction of ambiguous negatives (the other
clip's frame shows every class that sounds here: no appearance can tell them apart) and the
pointing game (the map's peak inside a sounding object's box, per window and per clip, and its
column inside a sounding object's columns). Writes to --workdir: results.json,
correlation_<name>.png (supp. Fig. 1-2), maps_<name>.png (supp. Fig. 5) and the models
(<name>.keras).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("train")  # before TensorFlow starts: it reads these once

import json
import math
import time

import common
import keras
import tensorflow as tf
from absl import app, flags

from keras_binaural import files
from keras_binaural.data import fairplay
from keras_binaural.evaluation import localization as localization_eval
from keras_binaural.evaluation import plots
from keras_binaural.models.localization import LocalizationModel

common.define_data_flags("localization", num_clips=1200, clip_seconds=6.0, frame_size=128,
                         frame_size_help="Square frame size in pixels (generated; the crop).")
common.define_training_flags(16, 3e-4, "5 % warm-up, cosine decay to 0", steps=1500)
common.define_run_flags()
flags.DEFINE_integer("resize", 136, "Frames are resized to this square, then cropped to "
                     "--frame_size (random crop in training, central in evaluation).")
flags.DEFINE_list("variants", ["paper_resnet", "paper", "pointing"],
                  "Localizers to train and evaluate, by name (see VARIANTS).")
flags.DEFINE_integer("max_test_clips", 0, "Evaluate at most this many test clips (0: all).")
FLAGS = flags.FLAGS

STEPS_PER_EPOCH = 50
COMPACT = {"visual_encoder": "compact"}
POINTING = {"lambda_background": 1.0, "lambda_mosaic": 1.0, "lambda_cue": 1.0}
# name -> (LocalizationModel arguments, mirror augmentation). The paper's loss set is OSA's
# l_sce_loc + l_obj_loc (the LocalizationModel defaults); each pointing term is added alone, then
# together (`pointing`, what configs/clup.py trains).
VARIANTS = {
    "paper_resnet": ({}, False),
    "baseline_resnet": ({"localizer": "baseline"}, False),
    "paper": (COMPACT, False),
    "paper_mirror": (COMPACT, True),
    "mil": ({**COMPACT, "lambda_mil": 1.0}, True),
    "background": ({**COMPACT, "lambda_background": 1.0}, True),
    "mosaic": ({**COMPACT, "lambda_mosaic": 1.0}, True),
    "cue": ({**COMPACT, "lambda_cue": 1.0}, True),
    "flip": ({**COMPACT, "lambda_flip": 1.0}, True),
    "pointing": ({**COMPACT, **POINTING}, True),
    "paper_fn": ({**COMPACT, "false_negative_fraction": 0.25}, True),
    "pointing_fn": ({**COMPACT, **POINTING, "false_negative_fraction": 0.25}, True),
    "pointing_resnet": (POINTING, True),
    "baseline": ({**COMPACT, **POINTING, "localizer": "baseline"}, True),
}


class StepTimer(keras.callbacks.Callback):
    """Counts steps and training time (the first step, which traces the graph, included)."""

    def __init__(self):
        super().__init__()
        self.steps, self.start, self.seconds = 0, None, 0.0

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_train_end(self, logs=None):
        self.seconds = time.time() - self.start


def train(name: str, train_clips, resize_hw, crop_hw):
    arguments, mirror = VARIANTS[name]
    keras.utils.set_random_seed(FLAGS.seed)
    model = LocalizationModel(seed=FLAGS.seed, name=f"{name}_localizer", **arguments)
    model.compile(optimizer=common.warmup_cosine_adam(FLAGS.steps, FLAGS.learning_rate))
    dataset = fairplay.training_dataset(train_clips, seed=FLAGS.seed, chunks_per_clip=4,
                                        resize_hw=resize_hw, crop_hw=crop_hw, augment=True,
                                        mirror=mirror)
    # The reader interleaves 4 clips at a time: shuffle wider so that a batch mixes many clips.
    dataset = dataset.shuffle(512, seed=FLAGS.seed).batch(FLAGS.batch_size, drop_remainder=True)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    timer = StepTimer()
    history = model.fit(dataset, steps_per_epoch=STEPS_PER_EPOCH,
                        epochs=math.ceil(FLAGS.steps / STEPS_PER_EPOCH), callbacks=[timer],
                        verbose=2)
    examples = timer.steps * FLAGS.batch_size
    stats = {"train_seconds": timer.seconds, "steps": timer.steps, "examples": examples,
             "examples_per_second": examples / timer.seconds, "load": common.load(),
             "final_logs": {k: float(v[-1]) for k, v in history.history.items()}}
    print(f"{name}: {timer.steps} steps, {examples} examples in {timer.seconds / 60:.1f} min = "
          f"{examples / timer.seconds:.1f} examples/s ({common.load()})", flush=True)
    return model, stats


def main(argv):
    del argv
    os.makedirs(FLAGS.workdir, exist_ok=True)
    root = FLAGS.root or common.synthetic_root(FLAGS.workdir, FLAGS.num_clips, FLAGS.clip_seconds,
                                   FLAGS.frame_size)
    hw, resize_hw = (FLAGS.frame_size, FLAGS.frame_size), (FLAGS.resize, FLAGS.resize)
    train_clips = fairplay.list_clips(root, "train")
    test_clips = fairplay.list_clips(root, "test")
    if FLAGS.max_test_clips:
        test_clips = test_clips[: FLAGS.max_test_clips]
    print(f"{root}: {len(train_clips)} train clips, {len(test_clips)} test clips", flush=True)
    results_path, results = common.previous_results(FLAGS.workdir)

    correlation_inputs = localization_eval.centre_windows(test_clips, resize_hw, hw,
                                                          num_clips=min(10, len(test_clips)))
    for name in FLAGS.variants:
        if name not in VARIANTS:
            raise app.UsageError(f"--variants: unknown {name!r}; choose from {sorted(VARIANTS)}")
        model_path = os.path.join(FLAGS.workdir, f"{name}.keras")
        if FLAGS.reuse:
            model = keras.saving.load_model(model_path)
            stats = results.get(name, {}).get("training")
        else:
            model, stats = train(name, train_clips, resize_hw, hw)
            model.save(model_path)
        start = time.time()
        scores = localization_eval.evaluate_localization(model, test_clips, resize_hw, hw, seed=0)
        scores["eval_seconds"] = time.time() - start
        audio_scores = localization_eval.evaluate_localization(
            model, test_clips, resize_hw, hw, seed=0, negatives="audio", pointing_game=False)
        correlation = localization_eval.correlation_matrix(
            model, correlation_inputs["mono_patch"], correlation_inputs["frame"])
        plots.plot_correlation_matrix(
            correlation["correlation"], os.path.join(FLAGS.workdir, f"correlation_{name}.png"),
            title=f"{name}: audio-visual correlation (1 - D), 10 test clips",
            labels=correlation_inputs["clip_id"])
        panels = localization_eval.localization_panels(model, test_clips, resize_hw, hw,
                                                       num_clips=min(4, len(test_clips)),
                                                       times_s=(0.5, 2.5, 4.5))
        plots.plot_localization_maps(
            panels["frames"], panels["maps"], os.path.join(FLAGS.workdir, f"maps_{name}.png"),
            titles=panels["titles"], boxes=panels["boxes"], peaks=panels["peaks"])
        scores["correlation_diagonal_mean"] = float(correlation["correlation"].diagonal().mean())
        results[name] = {"arguments": VARIANTS[name][0], "mirror": VARIANTS[name][1],
                         "training": stats, "scores": scores, "scores_audio": audio_scores}
        files.write_json(results_path, results)
        for shown in (scores, audio_scores):
            print(json.dumps({k: v for k, v in shown.items() if not k.startswith("per_clip")},
                             indent=1), flush=True)

    def percent(entry, key):
        return f"{100 * entry[key]:.1f} %" if key in entry else "-"

    print("\n| localizer | negatives | distance (Eq. 10) | accuracy (Eq. 11) | accuracy w/o "
          "ambiguous | pointing: clips | pointing: windows | pointing: columns | examples seen "
          "| examples/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, entry in results.items():
        t = entry.get("training") or {}
        for s in (entry["scores"], entry.get("scores_audio")):
            if s is None:
                continue
            print(f"| {name} | {s.get('negatives', 'frame')} | {s['distance']:.4f} | "
                  f"{percent(s, 'accuracy')} | {percent(s, 'accuracy_unambiguous')} | "
                  f"{percent(s, 'pointing_clip_hit_rate')} | "
                  f"{percent(s, 'pointing_window_hit_rate')} | "
                  f"{percent(s, 'pointing_column_hit_rate')} | {t.get('examples', '-')} | "
                  f"{format(t['examples_per_second'], '.1f') if t else '-'} |")
    print("paper (FAIR-Play): baseline 0.083 / 92.8 %, CLUP 0.028 / 96.1 %")
    first = next(iter(results.values()))
    print(f"test windows: {first['scores']['num_windows']} of {first['scores']['num_clips']} "
          f"clips; ambiguous negatives: {percent(first['scores'], 'ambiguous_fraction')} "
          f"(frames), {percent(first.get('scores_audio') or {}, 'ambiguous_fraction')} (audio)")


if __name__ == "__main__":
    app.run(main)
