"""Table 2 of trained upmixers under each sampler: quality against network evaluations and time.

Usage:
  python benchmarks/bench_samplers.py --model RUN [--model RUN ...] [--refine_steps 1,2,3,4]

For every model (a tools/train.py workdir or .keras file) and sampler, the test split's Table 2
means (the six metrics and the differential's correlation with the truth, as tools/evaluate.py
scores them) and the wall seconds per clip, one line each, written as they finish to
`--workdir`/results.json (a rerun skips what is there). Samplers (`conventions.SAMPLERS`):
"fast" (BinauralGrad's 6 steps), "few" (3 of its noise levels), "full" with --full, and for
models with the spatial prior "prior" (no network evaluation) and "refine" with each
`--refine_steps` (the prior's estimate noised to the k-th cleanest level of the fast schedule,
then k reverse steps).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_binaural import runtime

runtime.apply("generate")  # before TensorFlow starts

import time

import common
from absl import app, flags

from keras_binaural import files
from keras_binaural.data import fairplay
from keras_binaural.evaluation import trained_runs

flags.DEFINE_multi_string("model", None, "A tools/train.py workdir or .keras file (repeatable).")
flags.DEFINE_string("workdir", "/tmp/keras_binaural_bench_samplers", "Where results.json goes.")
flags.DEFINE_list("refine_steps", ["1", "2", "3", "4"], "Steps of the refine sampler to try.")
flags.DEFINE_bool("full", False, "Also the full 200-step sampler (slow).")
flags.DEFINE_integer("seed", 0, "The samplers' seed.")
flags.mark_flag_as_required("model")
FLAGS = flags.FLAGS


def variants(model) -> list[tuple[str, str, int | None]]:
    """(label, sampler, refine steps) to score for `model`."""
    found = [("fast", "fast", None), ("few", "few", None)]
    if FLAGS.full:
        found.append(("full", "full", None))
    if getattr(model, "prior", None) is not None:
        found.append(("prior", "prior", None))
        found += [(f"refine{k}", "refine", int(k)) for k in FLAGS.refine_steps]
    return found


def main(argv):
    del argv
    os.makedirs(FLAGS.workdir, exist_ok=True)
    path, results = common.previous_results(FLAGS.workdir)
    for model_path in FLAGS.model:
        system = trained_runs.make_system(os.path.basename(model_path.rstrip("/")), model_path,
                                          "--model")
        data = system.config.data
        clips = fairplay.list_clips(data.root, "test", data.split)
        for label, sampler, steps in variants(system.model):
            key = f"{system.path} {label}"
            if key in results:
                print(f"{key}: done before, {results[key]}")
                continue
            if steps is not None:
                system.model.refine_steps = steps
            started = time.perf_counter()
            table, _ = trained_runs.quality_table([system], clips, sampler, FLAGS.seed,
                                                  progress=False)
            seconds = time.perf_counter() - started
            results[key] = {**table["mean"][system.name],
                            "mono_mono": table["mean"][trained_runs.MONO_MONO],
                            "seconds_per_clip": seconds / len(clips)}
            scores = results[key]
            print(f"{system.name} {label:8s} STFT {scores['stft']:.4f} ENV {scores['env']:.4f} "
                  f"SNR {scores['snr']:.2f} dB d corr {scores['d_corr']:.3f} "
                  f"(mono-mono STFT {scores['mono_mono']['stft']:.4f} SNR "
                  f"{scores['mono_mono']['snr']:.2f}); {seconds / len(clips):.2f} s per clip, "
                  f"{common.load()}", flush=True)
            files.write_json(path, results)


if __name__ == "__main__":
    app.run(main)
