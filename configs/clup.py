r"""CLUP experiments: the full model, its ablations, a CPU demo and the paper-sized run.

The variant string is `SIZE[,ABLATION]`, given after the file name:

  SIZE      demo   CPU, minutes: the synthetic set `make demo` writes (data/demo), 128 x 128
                   frames, compact audio encoder, a small denoiser (C = 16).
            paper  GPU: FAIR-Play (tools/prepare_fairplay.py output), 224 x 448 frames, frozen
                   VGGish, ResNet-18, denoiser C = 64 with 3 x 10 layers, T = 200.
            tiny   seconds: 64 x 64 frames, a few steps; what the tests and smoke checks run.
  ABLATION  clup        (default) localizer + object-aware upmixer, every loss term, the
                        pointing objectives and the spatial prior (below).
            audio_only  the upmixer without visual guidance (no localizer).
            baseline    the upmixer guided by the additional-baseline localizer (supp. Eq. 1-3),
                        trained jointly with the localizer's own loss (no cyclic term).
            sce_only    l_sce_loc without l_obj_loc: lambda_obj = lambda_cyc = 0.
            obj_only    l_obj_loc without l_sce_loc: lambda_sce = lambda_cyc = 0.
            no_cyc      no cyclic term: lambda_cyc = 0.
            paper_losses  the paper's localizer terms only (every pointing λ 0) and no spatial
                        prior: the paper's CLUP with our encoders.
            no_prior    CLUP without the spatial prior (the diffusion alone, fast sampler).
            localizer   the localization model alone (OSA, and SSM on real binaural audio).
            (lambda_ssm, the SSM loss on real binaural audio, stays 1 in every ablation; see
            keras_binaural/models/clup.py for why it exists.)

Usage:
  python tools/train.py --config configs/clup.py:demo --workdir runs/demo
  python tools/train.py --config configs/clup.py:demo,audio_only --workdir runs/demo_audio_only
  python tools/train.py --config configs/clup.py:paper,no_cyc --workdir runs/paper_no_cyc \
      --config.data.root /data/fairplay16k --config.model.vggish_weights vggish.weights.h5 \
      --config.model.resnet_weights resnet18.weights.h5 --strategy mirrored
  python tools/evaluate.py --model runs/demo --baseline audio_only=runs/demo_audio_only --plots

Any value can be overridden on the command line (`--config.train.epochs 20`); a key that does not
exist is an error (the tools load this file with `lock_config=True`).

The model section is the constructor's keyword arguments, as they are: `config.model_kind` names
the class ("clup": `CLUP`; "upmixer": `Upmixer`; "localizer": `LocalizationModel`) and
`training.build_model` calls it with `**config.model` (google-research/big_vision passes
`config.model` to its model the same way). So the keys of `config.model` depend on the variant:
  clup       CLUP's: the denoiser sizes, `lambda_cyc`, `seed` and `localizer_config` (the
             localizer's arguments and its λs: lambda_sce, lambda_obj, lambda_ssm)
  upmixer    Upmixer's: the same plus `guidance` ("object" | "baseline" | "none") and `lambda_loc`
  localizer  LocalizationModel's: `localizer` ("osa" | "baseline"), `audio_encoder` ("compact" |
             "vggish"), the λs, ...
`config.model_init` names pre-trained weights loaded after building. Other components are chosen
by name too: `eval.sampler` ("fast" | "full" | "prior"), `train.lr_schedule` ("constant" |
"cosine").

Paper-size choices. From the supplement: frozen pre-trained VGGish, ResNet-18 (not frozen, separate
encoders for localization and generation), 3 residual blocks x 10 dilated layers, T = 200 with beta
linear 1e-4 -> 0.02, the fast 6-step sampler at test time. Ours, where it is silent (as a GPU run
would set them): C = 64 (SPEC: 64-128), global batch 64 chunks of 0.63 s, Adam 2e-4 with 1,000
warm-up steps and cosine decay, gradient norm clipped to 1, 200 epochs of 500 steps (100 k steps,
the order of BinauralGrad's), every lambda 1, FAIR-Play's frame preparation (resize 240 x 480,
random crop 224 x 448, colour jitter), validation on 10 batches of the split's val set each epoch
(held in memory: about 1.6 GB at this frame size).
No pre-trained weights can be downloaded here: convert them once (tools/convert_vggish_checkpoint.py,
tools/convert_resnet18_weights.py) and name the files in model_init.vggish_weights /
model_init.resnet_weights.

Beyond the paper (issue 12; BENCHMARKS.md has the ablation): at demo and tiny size the
localizer's visual encoder is the compact CNN whose cells see about one object, and it trains
with the pointing objectives of keras_binaural/models/pointing.py (background as a negative,
mosaics, binaural cues, the columns' acoustic responses, erasing the evidence; the best-matching
in-batch negatives left out), so that its map points at the sounding object; the upmixer
conditions on the spatial prior (models/spatial_prior.py: the mono's time-frequency bins assigned to image columns, each
column's least-squares response to the differential), and Table 2 scores that prior itself
(`eval.sampler = "prior"`): after a CPU budget of steps it is far closer to the truth than the
diffusion sample, which needs many more steps to refine it. The localizer is cheap to train
(~0.3 s a step against CLUP's ~0.9 s): `make demo` trains it alone first and starts CLUP from it
(`model_init.localizer`). The paper size keeps ResNet-18 and the fast sampler.

Demo choices, sized for `make demo` on 2 CPU cores: 128 x 128 crops of 136 x 136 frames (16 x 16
cells of the compact encoder's map), denoiser C = 16 with 2 x 10 layers (a 2,047-sample receptive
field per cycle covers every interaural delay), the spatial prior's audio CNN in bfloat16 on CPUs
that have it in hardware (`prior_audio_dtype = "auto"`: 1.1-1.2x the step, Table 2 unchanged),
global batch 8, Adam 5e-4 with 20 warm-up steps and cosine decay, 8 epochs of 25 steps (the
localizer alone: 24 epochs, 50 warm-up steps), 2 validation batches per epoch. Measured in `make
demo` on 2 idle cores (BENCHMARKS.md, Intel Xeon with AMX, 2026-12-04): the localizer 290 s, CLUP
holding it 219 s, the audio-only upmixer 127 s; the whole demo 12.3 min (14.8 min on an AMD EPYC
with AVX512-BF16, 2026-12-04, before the prior's bfloat16).
"""

from __future__ import annotations

import ml_collections

SIZES = ("demo", "paper", "tiny")
ABLATIONS = ("clup", "audio_only", "baseline", "sce_only", "obj_only", "no_cyc", "paper_losses",
             "no_prior", "localizer")


POINTING_LAMBDAS = ("lambda_mil", "lambda_background", "lambda_mosaic", "lambda_cue",
                    "lambda_response", "lambda_flip", "lambda_erase")


def parse_variant(variant: str) -> tuple[str, str]:
    """"SIZE[,ABLATION]" -> (size, ablation); raises ValueError naming the valid choices."""
    parts = [part.strip() for part in (variant or "").split(",")]
    if len(parts) > 2 or parts[0] not in SIZES or (len(parts) == 2 and parts[1] not in ABLATIONS):
        raise ValueError(
            f"configs/clup.py: unknown variant {variant!r}; use SIZE[,ABLATION] with SIZE one of "
            f"{', '.join(SIZES)} and ABLATION one of {', '.join(ABLATIONS)} "
            "(e.g. --config configs/clup.py:demo,no_cyc)"
        )
    return parts[0], parts[1] if len(parts) == 2 else "clup"


def localizer_arguments(size: str) -> ml_collections.ConfigDict:
    """`LocalizationModel`'s arguments but `localizer` (an upmixer's guidance chooses it) and
    `use_ssm` (CLUP's localizer always has the SSM head)."""
    arguments = ml_collections.ConfigDict()
    arguments.audio_encoder = "compact"  # "compact" | "vggish"
    arguments.audio_encoder_trainable = True
    arguments.audio_width_multiplier = 0.125
    arguments.temperature = 0.07
    arguments.lambda_sce = 1.0  # l_sce_loc
    arguments.lambda_obj = 1.0  # l_obj_loc
    arguments.lambda_ssm = 1.0  # SSM on the real binaural audio
    arguments.distance_feature = "auto"  # the sum of the OSA terms whose lambda > 0
    arguments.negatives = "batch"
    # Pointing (models/pointing.py): cell-level objectives from frames, mono and binaural audio.
    arguments.visual_encoder = "compact"  # "compact" (cells see about one object) | "resnet18"
    arguments.lambda_mil = 0.0  # multiple-instance matching (EZ-VSL)
    arguments.lambda_background = 1.0  # the frame's own background as a negative (LVS)
    arguments.lambda_mosaic = 1.0  # 2 x 2 mosaics of different clips' frames (DSOL)
    arguments.lambda_cue = 1.0  # the map's column profile predicts the binaural ILD
    arguments.lambda_response = 1.0  # the map's columns' responses explain the differential
    arguments.lambda_flip = 0.0  # mirrored frame -> mirrored profile
    arguments.lambda_erase = 1.0  # erasing the map's region must remove the match
    arguments.erase_cells = 16.0  # the erased area's bound, in cells
    arguments.false_negative_fraction = 0.25  # best-matching in-batch negatives left out
    if size == "paper":
        arguments.audio_encoder = "vggish"
        arguments.audio_encoder_trainable = False
        arguments.audio_width_multiplier = 1.0
        arguments.visual_encoder = "resnet18"
    elif size == "tiny":
        arguments.audio_width_multiplier = 0.0625
    return arguments


def denoiser_arguments(size: str) -> ml_collections.ConfigDict:
    """The `Upmixer` (and `CLUP`) arguments of the denoiser, the guidance and the diffusion."""
    arguments = ml_collections.ConfigDict()
    arguments.residual_channels = 16  # C
    arguments.num_cycles = 2  # 20 layers: a 2,047-sample receptive field each cycle
    arguments.layers_per_cycle = 10
    arguments.conditioner_channels = 16
    arguments.conditioner_layers = 2
    arguments.step_hidden_channels = 512
    arguments.guidance_channels = 64
    arguments.guidance_hidden_channels = 256
    arguments.profile_bins = 16
    arguments.num_train_steps = 200  # T
    arguments.beta_start = 1e-4
    arguments.beta_end = 0.02
    arguments.min_scale = 1e-3  # level normalisation: floor of the mono's peak
    arguments.normalized_peak = 2.5  # peak of the normalised mono
    arguments.clip_value = 5.0  # the sampler's clamp, in normalised units
    arguments.spatial_prior = True  # d_prior from the mono and the image columns (spatial_prior.py)
    # The localizer learns from its own losses; the generation losses do not reach it.
    arguments.localizer_gradients = False
    arguments.prior_columns = 16
    arguments.prior_embedding_size = 32  # E of u(f, t) and z_k
    arguments.prior_channels = 32  # the width of the prior's audio CNN
    # The prior's audio CNN in bfloat16 where the CPU has it in hardware ("auto"; 1.7x on it).
    arguments.prior_audio_dtype = "auto" if size == "demo" else None
    # The prior's per-bin assignment against the binaural responsibilities (several sources).
    arguments.lambda_assignment = 0.0
    arguments.update_responses = True  # False: keep the responses of model_init.responses
    arguments.update_localizer = True  # False: hold the localizer of model_init.localizer
    if size == "paper":
        arguments.residual_channels = 64
        arguments.num_cycles = 3
        arguments.conditioner_channels = 64
    elif size == "tiny":
        arguments.residual_channels = 8
        arguments.num_cycles = 1
        arguments.conditioner_channels = 8
    return arguments


def get_config(variant: str = "demo") -> ml_collections.ConfigDict:
    """The experiment `variant` ("SIZE[,ABLATION]", see the module docstring)."""
    size, ablation = parse_variant(variant)
    config = ml_collections.ConfigDict()
    config.variant = f"{size},{ablation}"
    config.name = ablation  # the system's name in evaluation tables
    config.seed = 0

    # === Data (keras_binaural.data.fairplay) ===
    config.data = ml_collections.ConfigDict()
    config.data.root = "data/demo"  # a FAIR-Play-layout root (synthetic or prepared FAIR-Play)
    config.data.split = "split1"
    config.data.train_subset = "train"
    config.data.val_subset = "val"
    config.data.test_subset = "test"
    config.data.resize_hw = (136, 136)  # frames are resized, then cropped (random in training)
    config.data.crop_hw = (128, 128)
    config.data.augment = True
    config.data.mirror = True  # half the examples mirrored: frame flipped, ears swapped
    config.data.chunks_per_clip = 4  # random 0.63 s chunks drawn per decoded clip

    # === Model: the constructor's arguments (module docstring) ===
    config.model_kind = "clup"
    config.model = denoiser_arguments(size)
    config.model.lambda_cyc = 1.0  # l_cyc (SSM on the generated binaural audio)
    config.model.localizer_config = localizer_arguments(size)
    config.model.seed = config.get_ref("seed")
    config.model_init = ml_collections.ConfigDict()
    config.model_init.resnet_weights = ""  # ResNet-18 .weights.h5 for every visual encoder
    config.model_init.vggish_weights = ""  # VGGish .weights.h5 for audio_encoder "vggish"
    # A trained localizer (a configs/clup.py:SIZE,localizer run or its model.keras) to start
    # from: its cheap steps learn to point before the upmixer reads the map (the demo does this).
    config.model_init.localizer = ""
    # A trained upmixer or CLUP run with the spatial prior whose column responses to start from
    # (e.g. learnt on single-source clips, held with model.update_responses = False).
    config.model_init.responses = ""

    # === Training (keras_binaural.training) ===
    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 8  # global: split over the replicas of a distribution strategy
    config.train.epochs = 8
    config.train.steps_per_epoch = 25
    config.train.validation_steps = 2  # batches of the val split each epoch (0: no validation)
    config.train.optimizer = "adam"  # "adam" | "adamw"
    config.train.learning_rate = 5e-4
    config.train.weight_decay = 0.0  # adamw only
    config.train.lr_schedule = "cosine"  # "constant" | "cosine" (decay to 0 over all steps)
    config.train.warmup_steps = 20
    config.train.clipnorm = 1.0  # each variable's gradient norm (0: no clipping)
    config.train.keep_checkpoints = 3  # newest per-epoch checkpoints kept in workdir/checkpoints
    # XLA for the whole train step. Off: TF 2.16 failed to convert the upmixer's step here, and
    # the denoiser's residual chain compiles badly as one cluster (models/denoiser.py).
    config.train.jit_compile = False

    # === Evaluation (keras_binaural.evaluation.trained_runs) ===
    config.eval = ml_collections.ConfigDict()
    config.eval.sampler = "fast"  # "fast" (BinauralGrad's 6 steps) | "full" (T steps) | "prior"
    config.eval.seed = 0
    config.eval.max_clips = 0  # clips of the test split to score (0: all)
    config.eval.negative_pool_size = 256  # supp. Table 1 negatives
    config.eval.correlation_clips = 10  # supp. Fig. 1-2: n x n matrix
    config.eval.plot_clips = 3  # clips drawn in the spectrogram / envelope / map figures
    config.eval.normalize = False  # peak-normalise before the metrics

    if size == "paper":
        config.data.root = "/data/fairplay16k"
        config.data.resize_hw = (240, 480)
        config.data.crop_hw = (224, 448)
        config.train.batch_size = 64
        config.train.epochs = 200
        config.train.steps_per_epoch = 500
        config.train.validation_steps = 10
        config.train.learning_rate = 2e-4
        config.train.warmup_steps = 1000
        config.train.keep_checkpoints = 5
    elif size == "tiny":
        config.data.root = "data/tiny"
        config.data.resize_hw = (72, 72)
        config.data.crop_hw = (64, 64)
        config.data.chunks_per_clip = 2
        config.train.batch_size = 4
        config.train.epochs = 2
        config.train.steps_per_epoch = 2
        config.train.validation_steps = 1
        config.train.warmup_steps = 0
        config.eval.negative_pool_size = 16
        config.eval.correlation_clips = 2
        config.eval.plot_clips = 2

    if ablation in ("audio_only", "baseline"):
        guided = ablation == "baseline"
        config.model_kind = "upmixer"
        config.model = denoiser_arguments(size)
        config.model.guidance = "baseline" if guided else "none"
        config.model.spatial_prior = guided  # the prior needs a localizer's columns
        config.model.lambda_loc = 1.0
        if guided:  # the baseline localizer, trained with its own loss (no cyclic term)
            config.model.localizer_config = localizer_arguments(size)
            config.model.localizer_config.use_ssm = True
        config.model.seed = config.get_ref("seed")
    elif ablation == "sce_only":
        config.model.localizer_config.lambda_obj = 0.0
        config.model.lambda_cyc = 0.0
    elif ablation == "obj_only":
        config.model.localizer_config.lambda_sce = 0.0
        config.model.lambda_cyc = 0.0
    elif ablation == "no_cyc":
        config.model.lambda_cyc = 0.0
    elif ablation == "paper_losses":  # the paper's localizer terms only, and its guidance alone
        for key in POINTING_LAMBDAS:
            config.model.localizer_config[key] = 0.0
        config.model.localizer_config.false_negative_fraction = 0.0
        config.model.spatial_prior = False
    elif ablation == "no_prior":
        config.model.spatial_prior = False
    elif ablation == "localizer":
        config.model_kind = "localizer"
        config.model = localizer_arguments(size)
        config.model.localizer = "osa"  # "osa" | "baseline"
        config.model.use_ssm = True
        if size == "demo":  # its steps are cheap: 600 of them, before CLUP starts from it
            config.train.epochs = 24
            config.train.warmup_steps = 50
    # A model with the spatial prior is scored by the prior's d_prior at CPU sizes: what a CPU
    # budget learns well; the diffusion needs far more steps to refine it.
    if config.model.get("spatial_prior") and size != "paper":
        config.eval.sampler = "prior"
    return config
