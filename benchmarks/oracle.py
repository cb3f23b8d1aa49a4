"""An upper reference for the guided upmixers: guidance from where the sounding object truly is.

`mask_root(root, workdir)` copies a synthetic root with every frame replaced by a mask of the
sounding objects' boxes (white on black, from the clip's metadata); audio, metadata and splits are
linked, not copied. `OracleUpmixer` is an object-guided `Upmixer` whose guidance is the horizontal
profile of that mask alone (object and scene features zero, the localizer and the generation
encoder unused and frozen): the guidance a perfect localizer would give. It trains with l_diff
only and generates with `generate` like any upmixer, so it runs through the same training and
evaluation as the models it is a reference for.
"""

import glob
import json
import os
import shutil

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from keras_binaural.models.guidance import horizontal_profile
from keras_binaural.models.localization_heads import FEATURE_SIZE
from keras_binaural.models.upmixer import Upmixer

LINKED = ("binaural_audios", "metadata", "splits", "videos", "dataset.json")


def write_masks(metadata_path: str, frames_dir: str) -> None:
    """Writes one mask PNG per frame of a clip into `frames_dir` (the frames' own names)."""
    with open(metadata_path) as file:
        metadata = json.load(file)
    width, height = metadata["frame_size"]
    boxes = [o["boxes_xyxy"] for o in metadata["objects"] if o["sounding"]]
    partial = frames_dir + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    for index in range(metadata["num_frames"]):
        mask = np.zeros((height, width, 3), np.uint8)
        for box in boxes:
            x0, y0, x1, y1 = box[index]
            mask[y0:y1, x0:x1] = 255
        Image.fromarray(mask).save(os.path.join(partial, f"{index + 1:06d}.png"))
    os.replace(partial, frames_dir)


def mask_root(root: str, workdir: str) -> str:
    """The mask copy of `root` in `workdir` (reused when it is already complete)."""
    masks = os.path.join(workdir, "oracle_" + os.path.basename(os.path.normpath(root)))
    os.makedirs(os.path.join(masks, "frames"), exist_ok=True)
    for name in LINKED:
        link = os.path.join(masks, name)
        if os.path.exists(os.path.join(root, name)) and not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(root, name)), link)
    for frames in sorted(glob.glob(os.path.join(root, "frames", "*"))):
        clip = os.path.basename(frames)
        target = os.path.join(masks, "frames", clip)
        if not os.path.isdir(target):
            clip_id = clip.split(".")[0]
            write_masks(os.path.join(root, "metadata", clip_id + ".json"), target)
    return masks


@keras.saving.register_keras_serializable(package="keras_binaural_benchmarks")
class OracleUpmixer(Upmixer):
    """`Upmixer(guidance="object")` guided by the true position: frames are box masks."""

    def __init__(self, **kwargs):
        kwargs.pop("guidance", None)
        super().__init__(guidance="object", **kwargs)
        self.localizer.trainable = False
        self.visual_encoder.trainable = False

    def _term_names(self) -> list[str]:
        return ["diff_loss"]

    def frame_guidance(self, frames, mono_patch, training=False, visual=None):
        profile = horizontal_profile(tf.reduce_mean(frames, axis=-1), self.profile_bins)
        zeros = tf.zeros([tf.shape(frames)[0], FEATURE_SIZE])
        return self.guidance_network(
            {
                "object_feature": zeros,
                "profile": profile,
                "scene_feature": tf.tile(zeros, [1, self.scene_columns]),
            }
        )

    def compute_losses(self, data, training=False) -> dict:
        diff_loss = self.diffusion_terms(data, training)["diff_loss"]
        return {"diff_loss": diff_loss, "loss": diff_loss}

    def get_config(self):
        config = super().get_config()
        config.pop("guidance")
        return config
