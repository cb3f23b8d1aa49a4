r"""Writes a synthetic binaural dataset in the FAIR-Play layout (SPEC section 2).

Sound sources at azimuths, rendered to binaural with measured HRIRs and drawn into 10 fps frames
at the matching image position; see keras_binaural/data/synthetic.py for what is in a clip and
the metadata schema. Rerunning the same command completes an interrupted run (finished clips
are skipped, and the temporary files of a killed run are removed); the same --seed gives the
same files. The output folder is checked first (it can be created, is writable, has room for the
clips' WAVs at least); a full disk while writing ends with one line and no partial clip.

Usage:
  python tools/make_dataset.py --output_dir data/synthetic --num_clips 1000 --workers 2
  python tools/make_dataset.py --output_dir data/pano --camera equirect --hrtf my_head.sofa \
      --max_sources 2 --distractors 3 --moving 0.5 --frame_size 448x224 --clip_seconds 10

Output:
  binaural_audios/<id>.wav  frames/<id>.mp4/000001.png ...  videos/<id>.mp4  metadata/<id>.json
  splits/{train,val,test}.txt  splits/splitK/{train,val,test}.{txt,h5}  dataset.json
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("test")  # before TensorFlow starts: it reads these once

from absl import app, flags

from keras_binaural import cli, files
from keras_binaural.data import scenes, synthetic
from keras_binaural.data.hrtf import HrtfError
from keras_binaural.data.sources import SourceError

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder of the dataset (created if missing).")
_NUM_CLIPS = flags.DEFINE_integer("num_clips", 100, "Number of clips (ids 000001 ...).")
_CLIP_SECONDS = flags.DEFINE_float("clip_seconds", 10.0, "Length of each clip in seconds.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed: the same seed gives the same files.")
_HRTF = flags.DEFINE_string(
    "hrtf", "kemar", "'kemar' (MIT KEMAR, from the slab package) or a .sofa file."
)
_CAMERA = flags.DEFINE_string(
    "camera", "pinhole:90", "pinhole:FOV_DEG (horizontal field of view) or equirect."
)
_MAX_SOURCES = flags.DEFINE_integer(
    "max_sources", 3, "Each clip has 1..max_sources sounding objects."
)
_DISTRACTORS = flags.DEFINE_integer(
    "distractors", 2, "Each clip has 0..distractors silent, visible objects."
)
_DISTRACTOR_CLASSES = flags.DEFINE_enum(
    "distractor_classes", "other", ["other", "any"],
    "Silent objects are of classes no sounding object of the clip has (other), or any class.",
)
_MOVING = flags.DEFINE_float(
    "moving", 0.25, "Probability that an object moves during the clip (0: none)."
)
_FRAME_SIZE = flags.DEFINE_string(
    "frame_size", "224x224", "Frame size WxH in pixels (even numbers)."
)
_SOURCES_DIR = flags.DEFINE_string(
    "sources_dir",
    None,
    "Optional folder of mono recordings <class>/*.wav used instead of the synthesizer.",
)
_WORKERS = flags.DEFINE_integer("workers", 1, "Processes rendering clips in parallel.")
_NUM_SPLITS = flags.DEFINE_integer(
    "num_splits", 1, "Number of train/val/test splits (splits/splitK)."
)
_PEAK = flags.DEFINE_float("peak", 0.9, "Peak absolute sample value of each binaural clip.")


def main(argv):
    del argv
    if not _OUTPUT_DIR.value:
        raise app.UsageError("--output_dir is required")
    try:
        settings = scenes.SceneSettings(
            clip_seconds=_CLIP_SECONDS.value,
            frame_size=cli.parse_size_wh(_FRAME_SIZE.value, "--frame_size", scenes.SceneError,
                                         example="224x224"),
            camera=_CAMERA.value,
            hrtf=_HRTF.value,
            max_sources=_MAX_SOURCES.value,
            distractors=_DISTRACTORS.value,
            distractor_classes=_DISTRACTOR_CLASSES.value,
            moving=_MOVING.value,
            sources_dir=_SOURCES_DIR.value,
            peak=_PEAK.value,
        )
        summary = synthetic.make_dataset(
            _OUTPUT_DIR.value,
            settings,
            num_clips=_NUM_CLIPS.value,
            seed=_SEED.value,
            workers=_WORKERS.value,
            num_splits=_NUM_SPLITS.value,
            progress=True,
        )
    except (scenes.SceneError, HrtfError, SourceError, files.OutputError) as error:
        raise SystemExit(f"make_dataset: error: {error}")
    print(
        f"{_OUTPUT_DIR.value}: {summary['made']} clips made, {summary['skipped']} already there, "
        f"{len(summary['ids'])} in total"
    )


if __name__ == "__main__":
    app.run(main)
