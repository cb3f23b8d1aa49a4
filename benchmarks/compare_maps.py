"""Two trained localizers' maps side by side on the same test frames, as one PNG.

Usage:
  python benchmarks/compare_maps.py --runs before=runs/a,after=runs/b --output docs/maps.png

One row per run (named by its label), one column per test clip (the same clips and time for
every run: `evaluation.localization.localization_panels`): the frame, the map over it, the map's
peak (+), sounding objects' boxes (white) and silent ones' (red, dashed).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts: it reads these once

import matplotlib
import numpy as np
from absl import app, flags

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from keras_binaural.data import fairplay
from keras_binaural.evaluation import trained_runs
from keras_binaural.evaluation.localization import localization_panels

flags.DEFINE_list("runs", None, "label=run_dir pairs, one row each.", required=True)
flags.DEFINE_string("output", None, "The PNG to write.", required=True)
flags.DEFINE_integer("num_clips", 4, "Test clips (columns).")
flags.DEFINE_float("time_s", 2.0, "Time of the frame shown in each clip.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    runs = [item.split("=", 1) for item in FLAGS.runs]
    if any(len(item) != 2 for item in runs):
        raise app.UsageError(f"--runs takes label=run_dir pairs; got {FLAGS.runs}.")
    figure, axes = plt.subplots(len(runs), FLAGS.num_clips, squeeze=False,
                                figsize=(2.5 * FLAGS.num_clips, 2.7 * len(runs)))
    for row, (label, run) in enumerate(runs):
        system = trained_runs.make_system(label, run, "--runs")
        clips = fairplay.list_clips(system.config.data.root, "test", system.config.data.split)
        panels = localization_panels(system.localizer, clips, system.resize_hw, system.crop_hw,
                                     num_clips=FLAGS.num_clips, times_s=(FLAGS.time_s,))
        for column, axis in enumerate(axes[row]):
            cell_map = panels["maps"][column]
            axis.imshow(panels["frames"][column])
            axis.imshow((cell_map - cell_map.min()) / (np.ptp(cell_map) + 1e-9), cmap="jet",
                        alpha=0.45)
            for (x0, y0, x1, y1), sounding in panels["boxes"][column] or []:
                axis.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False,
                                             edgecolor="white" if sounding else "red",
                                             linestyle="-" if sounding else "--"))
            axis.plot(panels["peaks"][column][1], panels["peaks"][column][0], "w+", ms=12, mew=2)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row, 0].set_ylabel(label)
    figure.tight_layout()
    figure.savefig(FLAGS.output, dpi=80)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
