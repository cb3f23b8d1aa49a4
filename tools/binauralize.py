r"""Binauralizes a user's own clip with a trained model: mono sound + pictures -> binaural.

Usage:
  python tools/binauralize.py --model runs/demo/model.keras --video talk.mp4 \
      --output_wav talk_binaural.wav --output_video talk_binaural.mp4 --overlay
  python tools/binauralize.py --model runs/demo/model.keras --frames_dir frames/000001.mp4 \
      --audio mono.wav --output_wav out.wav [--output_video out.mp4] [--sampler full] [--seed 1]

--video: any container PyAV reads (mp4, mkv, mov, avi, ...) with a mono or stereo (any channel
count) sound track at any sample rate: downmixed to mono and resampled to 16 kHz; its pictures are
taken at 10 fps. --frames_dir: 10-fps pictures (000001.png, ... or .jpg, sorted by name) with
--audio, a recording in any format PyAV reads. The frames are prepared as the model was trained
(the run's config.json beside the model, or --frame_size WxH); any length (the model windows long
clips); progress bars on stderr.

Writes --output_wav (binaural, 16 kHz, 16-bit, left/right) and optionally --output_video: the
same video (its own size and frame rate; for --frames_dir the frames at 10 fps) with the binaural
track as its audio (H.264 + AAC), with --overlay the localization map drawn over the pictures as a
heat map. On bad input (a missing, truncated or undecodable file, sound and pictures of
different durations, an output folder that cannot be written or has too little space) the tool
prints one line naming the flag or file and the problem, exits with status 1 and writes nothing;
outputs appear only when both are complete (a full disk while writing: one line, nothing
written), and what a killed run left is removed by the next run.
The work is done by `keras_binaural.binauralize`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("generate")  # before TensorFlow starts: it reads these once

from absl import app, flags, logging

from keras_binaural import binauralize, cli, files, runs
from keras_binaural.conventions import SAMPLE_RATE_HZ
from keras_binaural.generation import GenerationInputError

_MODEL = flags.DEFINE_string("model", None, "The trained model, a .keras file.")
_VIDEO = flags.DEFINE_string("video", None, "Input video with sound (mp4, mkv, mov, ...).")
_FRAMES_DIR = flags.DEFINE_string("frames_dir", None, "Input folder of 10-fps frames (with --audio).")
_AUDIO = flags.DEFINE_string("audio", None, "Input recording for --frames_dir (wav, flac, mp3, ...).")
_OUTPUT_WAV = flags.DEFINE_string("output_wav", None, "Where to write the binaural WAV.")
_OUTPUT_VIDEO = flags.DEFINE_string(
    "output_video", None, "Where to write the video with the binaural track (.mp4, .mkv, .mov).")
_OVERLAY = flags.DEFINE_bool("overlay", False, "Draw the localization map over --output_video.")
_SAMPLER = flags.DEFINE_string(
    "sampler", None, "fast (6 diffusion steps), full (T steps) or prior (the spatial prior's "
    "estimate, for models with one). Default: the run's eval.sampler (config.json), else fast.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampler seed: the same seed gives the same audio.")
_FRAME_SIZE = flags.DEFINE_string(
    "frame_size", None, "Frame size WxH for the model (default: from the run's config.json).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show progress bars on stderr.")
flags.mark_flags_as_required(["model", "output_wav"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines would drown the bars
    request = {"video": _VIDEO.value, "frames_dir": _FRAMES_DIR.value, "audio": _AUDIO.value,
               "output_wav": _OUTPUT_WAV.value, "output_video": _OUTPUT_VIDEO.value,
               "overlay": _OVERLAY.value}
    try:
        # Everything that can be checked is checked before the (slow) model load.
        sampler = _SAMPLER.value or runs.run_sampler(_MODEL.value, binauralize.BinauralizeError)
        binauralize.check_request(**request, sampler=sampler)
        size = (cli.parse_size_wh(_FRAME_SIZE.value, "--frame_size",
                                   binauralize.BinauralizeError, minimum=32)
                if _FRAME_SIZE.value else None)
        geometry = runs.frame_geometry(_MODEL.value, size, binauralize.BinauralizeError)
        model = runs.load_model(_MODEL.value, "--model", binauralize.BinauralizeError,
                                generates=True)
        result = binauralize.binauralize(model, geometry, **request, sampler=sampler,
                                         seed=_SEED.value, progress=_PROGRESS.value)
    except (binauralize.BinauralizeError, files.OutputError) as error:
        raise SystemExit(f"binauralize: error: {error}")
    except GenerationInputError as error:
        raise SystemExit(f"binauralize: error: the model refused the input: {error}")
    seconds = len(result.binaural) / SAMPLE_RATE_HZ
    written = [p for p in (_OUTPUT_WAV.value, _OUTPUT_VIDEO.value) if p]
    print(f"binauralized {seconds:.1f} s; wrote {', '.join(written)}")


if __name__ == "__main__":
    app.run(main)
