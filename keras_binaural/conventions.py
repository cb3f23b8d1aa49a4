"""The conventions every part of keras-binaural keeps, defined once (SPEC sections 1, 2, 5 and 7).

Every module takes these from here: the data reader and the synthetic scenes, the audio frontend,
the models, generation, serving, evaluation and the tools.

Timing (SPEC section 2): audio runs at `SAMPLE_RATE_HZ`; video at `FRAMES_PER_SECOND`, frame k
(1-based) showing [(k - 1) / 10, k / 10) s, so one frame holds `SAMPLES_PER_FRAME` samples of
audio (the step of the upmixer's per-frame guidance and of the evaluation's sliding windows).
A training example is a chunk of `CHUNK_SECONDS` (`CHUNK_SAMPLES`) with the frame at its centre.
"""

SAMPLE_RATE_HZ = 16000  # inside every model and metric; any input rate is resampled to it
FRAMES_PER_SECOND = 10  # video frames per second
SAMPLES_PER_FRAME = SAMPLE_RATE_HZ // FRAMES_PER_SECOND  # 1600: 0.1 s of audio per frame
CHUNK_SECONDS = 0.63  # a training example's audio
CHUNK_SAMPLES = round(CHUNK_SECONDS * SAMPLE_RATE_HZ)  # 10,080

# Samplers: "fast" is BinauralGrad's 6-step schedule, "few" its 3 noisiest levels (3 network
# evaluations), "full" all T training steps; with the upmixer's spatial prior
# (`spatial_prior=True`) also "prior", no diffusion at all, the prior's estimate alone, and
# "refine", that estimate noised to a low level and refined by a few reverse steps.
SAMPLERS = ("fast", "few", "full", "prior", "refine")
PRIOR_SAMPLERS = ("prior", "refine")
# The upmixer's guidance: "object" (the OSA localizer's), "baseline" (the additional baseline
# localizer's, supp. Eq. 1-3) or "none" (audio only).
GUIDANCES = ("object", "baseline", "none")
