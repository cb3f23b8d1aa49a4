"""The WaveNet/DiffWave denoiser ε_θ of the object-aware diffusion upmixer (SPEC section 5).

The denoiser predicts the noise ε in a noisy differential x_t (d = (L - R) / 2 noised to step t),
given the diffusion step, the mono m at audio rate and, optionally, the object-aware guidance
(one vector per 0.1 s, or one per clip). Its residual stack is DiffWave's: 3 cycles of 10
residual layers with dilations 1, 2, ..., 512, each adding a step embedding before its dilated
convolution and the conditioning after it, gated by sigmoid · tanh.

Everything that does not depend on the diffusion step (the mono pre-net, its per-layer 1x1
projections, the guidance projections and their upsampling) is computed once per clip by
`WaveNetDenoiser.condition`, and each sampler step runs only `WaveNetDenoiser.denoise`:

    conditioning = denoiser.condition(mono, guidance)          # once per clip
    eps = denoiser.denoise(x_t, step, conditioning)            # per sampler step

`denoiser(inputs)` composes the two (training, one-step use). For sampling on CPU,
`compiled_denoise_fn(denoiser)` runs `denoise` with the dilated convolutions in oneDNN and the rest
of each residual layer as one XLA cluster (see there why); benchmarks/bench_denoiser_speed.py
times it.

Weights live in standard Keras layers (a 1x1 convolution is a Dense layer on the channel axis, the
same map).

Guidance upsampling: the guidance frames are projected per layer at frame rate and then
interpolated *linearly* between frame centres (frame k sits at sample (k + 0.5) · hop), holding
the first and last frame at the clip edges. We chose linear over nearest/repeat so that a moving
source does not put a 10 Hz staircase (and clicks) into every residual layer; because the
projections are linear and bias-free, projecting then interpolating equals interpolating then
projecting, at a fraction of the cost.

Why one module of about 640 lines: `compiled_denoise_fn` re-runs `ResidualLayer`'s arithmetic
layer by layer for fast sampling and must stay in step with it; the layers, the network and
that path are read and changed together.

Reference: SPEC section 5; Kong et al., "DiffWave", ICLR 2021, section 3 and Fig. 2; Leng et al.,
"BinauralGrad", NeurIPS 2022 (the same stack for binaural audio).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from keras_binaural.conventions import SAMPLES_PER_FRAME


def upsample_frames(frames, num_samples, hop_samples: int):
    """Linear interpolation of per-frame vectors to audio rate.

    Frame k describes samples [k · hop, (k + 1) · hop) and sits at its centre, (k + 0.5) · hop;
    samples between two centres are interpolated linearly, samples before the first or after the
    last centre hold that frame. Any number of frames works (the expected count is
    ceil(num_samples / hop); extra frames are ignored, missing trailing frames hold the last).

    Args:
      frames: `[batch, frames, channels]`.
      num_samples: the number of audio samples (int or scalar tensor).
      hop_samples: samples per frame (1600 = 0.1 s at 16 kHz).

    Returns:
      `[batch, num_samples, channels]`, the dtype of `frames`.
    """
    num_frames = ops.shape(frames)[1]
    last = ops.cast(num_frames - 1, "float32")
    position = (ops.arange(num_samples, dtype="float32") + 0.5) / hop_samples - 0.5
    position = ops.clip(position, 0.0, last)
    lower = ops.floor(position)
    weight = ops.cast(position - lower, frames.dtype)[None, :, None]
    lower = ops.cast(lower, "int32")
    upper = ops.minimum(lower + 1, ops.cast(num_frames - 1, "int32"))
    before = ops.take(frames, lower, axis=1)
    after = ops.take(frames, upper, axis=1)
    return before + weight * (after - before)


@keras.saving.register_keras_serializable(package="keras_binaural")
class DiffusionStepEmbedding(keras.layers.Layer):
    """Embedding of the (possibly fractional) diffusion step.

    Sinusoids of the step at `embedding_channels / 2` frequencies, geometric from 1 down to
    1 / max_period radians per step (sin half, then cos half), then FC → SiLU → FC → SiLU.
    Because the highest frequency is 1 rad/step, a fractional step (fast sampling) lands smoothly
    between its neighbouring integer steps. The sinusoids are computed in float32 whatever the
    dtype policy: a bfloat16 step would round 137.4 to 137.

    Args:
      embedding_channels: int, number of sinusoids (even), 128 in DiffWave.
      hidden_channels: int, width of both FC layers, 512 in DiffWave.
      max_period: float, longest period of the sinusoids, in steps.

    Call arguments:
      step: `[batch]` float (or int) diffusion step in [0, T - 1].

    Returns:
      `[batch, hidden_channels]` in the compute dtype.

    Example:
      >>> embedding = DiffusionStepEmbedding()
      >>> embedding(keras.ops.convert_to_tensor([0.0, 12.5])).shape  # (2, 512)

    Reference: SPEC section 5; DiffWave section 3 (diffusion-step embedding).
    """

    def __init__(
        self,
        embedding_channels: int = 128,
        hidden_channels: int = 512,
        max_period: float = 10000.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if embedding_channels % 2:
            raise ValueError(f"embedding_channels must be even, got {embedding_channels}")
        # The step must reach `call` in float32 (see the class docstring); `call` converts.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

        # === Config ===
        self.embedding_channels = embedding_channels
        self.hidden_channels = hidden_channels
        self.max_period = max_period

        # === Layers ===
        self.hidden_dense = keras.layers.Dense(
            hidden_channels, activation="silu", dtype=self.dtype_policy, name="hidden_dense"
        )
        self.output_dense = keras.layers.Dense(
            hidden_channels, activation="silu", dtype=self.dtype_policy, name="output_dense"
        )

    def build(self, input_shape=None):
        self.hidden_dense.build((None, self.embedding_channels))
        self.output_dense.build((None, self.hidden_channels))
        self.built = True

    def call(self, step):
        step = ops.reshape(ops.cast(ops.convert_to_tensor(step), "float32"), (-1,))
        half = self.embedding_channels // 2
        exponent = ops.arange(half, dtype="float32") / max(half - 1, 1)
        frequencies = ops.exp(-math.log(self.max_period) * exponent)
        angles = step[:, None] * frequencies[None, :]
        sinusoids = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
        sinusoids = ops.cast(sinusoids, self.compute_dtype)
        return self.output_dense(self.hidden_dense(sinusoids))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.hidden_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "embedding_channels": self.embedding_channels,
            "hidden_channels": self.hidden_channels,
            "max_period": self.max_period,
        }


@keras.saving.register_keras_serializable(package="keras_binaural")
class ResidualLayer(keras.layers.Layer):
    """One DiffWave residual layer with mono conditioning and optional guidance.

    y = dilated_conv(x + FC(step_embedding)) + conditioning,
    conditioning = 1x1(conditioner) + guidance_projection(guidance)   (step-independent),
    h = sigmoid(y[:C]) · tanh(y[C:]), (r, s) = split(1x1(h)),
    outputs ((x + r) / √2, s).

    Args:
      residual_channels: int, C.
      dilation: int, dilation of the kernel-size-3 convolution ('same' padding, so the layer
        sees ±dilation samples).
      guidance_channels: int, G, the size of a guidance vector; 0 for no guidance input.
      kernel_size: int, odd kernel size of the dilated convolution (3 in DiffWave).

    Call arguments:
      inputs: dict with
        "x": `[batch, time, C]` residual stream;
        "step_embedding": `[batch, E]` from `DiffusionStepEmbedding`;
        "conditioner": `[batch, time, K]` the mono pre-net features;
        "guidance" (when guidance_channels > 0, optional): `[batch, time, G]` at audio rate or
          `[batch, G]` constant over time; absent means a zero vector.

    Returns:
      (residual `[batch, time, C]`, skip `[batch, time, C]`).

    Example:
      >>> layer = ResidualLayer(residual_channels=8, dilation=4)
      >>> out, skip = layer({"x": keras.ops.zeros((1, 100, 8)),
      ...                    "step_embedding": keras.ops.zeros((1, 512)),
      ...                    "conditioner": keras.ops.zeros((1, 100, 16))})

    Reference: SPEC section 5; DiffWave Fig. 2.
    """

    def __init__(
        self,
        residual_channels: int,
        dilation: int,
        guidance_channels: int = 0,
        kernel_size: int = 3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")

        # === Config ===
        self.residual_channels = residual_channels
        self.dilation = dilation
        self.guidance_channels = guidance_channels
        self.kernel_size = kernel_size

        # === Layers ===
        channels = residual_channels
        policy = self.dtype_policy
        self.step_projection = keras.layers.Dense(channels, dtype=policy, name="step_projection")
        self.dilated_conv = keras.layers.Conv1D(
            2 * channels,
            kernel_size,
            dilation_rate=dilation,
            padding="same",
            kernel_initializer="he_normal",
            dtype=policy,
            name="dilated_conv",
        )
        self.conditioner_projection = keras.layers.Dense(
            2 * channels, dtype=policy, name="conditioner_projection"
        )
        # Bias-free: an absent guidance is a zero vector, and projecting commutes with the
        # linear upsampling (see the module docstring).
        self.guidance_projection = (
            keras.layers.Dense(
                2 * channels, use_bias=False, dtype=policy, name="guidance_projection"
            )
            if guidance_channels
            else None
        )
        self.output_projection = keras.layers.Dense(
            2 * channels, kernel_initializer="he_normal", dtype=policy, name="output_projection"
        )

    def build(self, input_shape):
        channels = self.residual_channels
        self.step_projection.build((None, input_shape["step_embedding"][-1]))
        self.dilated_conv.build((None, None, channels))
        self.conditioner_projection.build((None, None, input_shape["conditioner"][-1]))
        if self.guidance_projection is not None:
            self.guidance_projection.build((None, None, self.guidance_channels))
        self.output_projection.build((None, None, channels))
        self.built = True

    def conditioning(self, conditioner, guidance=None, guidance_hop_samples: int | None = None):
        """The step-independent term added after the dilated convolution.

        Args:
          conditioner: `[batch, time, K]` mono pre-net features.
          guidance: None, `[batch, G]` (constant over time), or `[batch, frames, G]`: at audio
            rate when `guidance_hop_samples` is None, else one vector per hop, projected at
            frame rate and linearly upsampled (`upsample_frames`).
          guidance_hop_samples: samples per guidance frame, or None.

        Returns:
          `[batch, time, 2C]` in the compute dtype.
        """
        conditioning = self.conditioner_projection(conditioner)
        if guidance is None or self.guidance_projection is None:
            return conditioning
        projected = self.guidance_projection(guidance)
        if len(projected.shape) == 2:
            return conditioning + ops.expand_dims(projected, 1)
        if guidance_hop_samples is not None:
            projected = upsample_frames(projected, ops.shape(conditioning)[1], guidance_hop_samples)
        return conditioning + projected

    def step_input(self, x, step_embedding):
        """x + FC(step embedding): the input of the dilated convolution, `[batch, time, C]`."""
        return x + ops.expand_dims(self.step_projection(step_embedding), 1)

    def step_conv_term(self, step_embedding, time):
        """The dilated convolution (without bias) of the constant input FC(step embedding).

        conv(x + FC(e)) = conv(x) + this term, so the residual stream x itself can be convolved
        and the step enters after the convolution (no x + FC(e) tensor to store). With 'same'
        zero padding, a tap that falls outside the clip sees no step input, so the term differs
        within `dilation` samples of either edge.

        Args:
          step_embedding: `[batch, E]`; time: number of samples.

        Returns:
          `[batch, time, 2C]`.
        """
        projected = self.step_projection(step_embedding)  # [batch, C]
        kernel = ops.cast(self.dilated_conv.kernel, projected.dtype)  # [k, C, 2C]
        position = ops.arange(time)[None, :, None]
        half = (self.kernel_size - 1) // 2
        term = 0.0
        for tap in range(self.kernel_size):
            source = position + (tap - half) * self.dilation  # the sample this tap reads
            inside = ops.logical_and(source >= 0, source < time)
            tap_term = ops.matmul(projected, kernel[tap])[:, None, :]
            term = term + ops.where(inside, tap_term, ops.zeros_like(tap_term))
        return term

    def dilated_convolution(self, conv_input):
        """`dilated_conv` without its bias (added in `gated_output`), `[batch, time, 2C]`."""
        kernel = ops.cast(self.dilated_conv.kernel, conv_input.dtype)
        return ops.conv(conv_input, kernel, padding="same", dilation_rate=self.dilation)

    def gated_output(self, conv_output, x, conditioning):
        """Bias + conditioning, gate, 1x1: returns ((x + r) / √2, skip), both `[batch, time, C]`.

        Args:
          conv_output: `[batch, time, 2C]` from `dilated_convolution`; x: `[batch, time, C]` the
          layer's input; conditioning: `[batch, time, 2C]` from `conditioning`.
        """
        # Halves by `split`, not by slicing: a slice's gradient writes a zero tensor of the
        # whole input, a split's is one concatenation (slices were a third of the denoiser's
        # training time).
        y = conv_output + ops.cast(self.dilated_conv.bias, conv_output.dtype) + conditioning
        gate, signal = ops.split(y, 2, axis=-1)
        residual, skip = ops.split(
            self.output_projection(ops.sigmoid(gate) * ops.tanh(signal)), 2, axis=-1)
        return (x + residual) * ops.cast(1.0 / math.sqrt(2.0), x.dtype), skip

    def denoise(self, x, step_embedding, conditioning):
        """The step-dependent part: returns ((x + r) / √2, skip), both `[batch, time, C]`.

        Args:
          x: `[batch, time, C]`; step_embedding: `[batch, E]`; conditioning: `[batch, time, 2C]`
          from `conditioning`.
        """
        conv_output = self.dilated_convolution(self.step_input(x, step_embedding))
        return self.gated_output(conv_output, x, conditioning)

    def call(self, inputs):
        conditioning = self.conditioning(inputs["conditioner"], inputs.get("guidance"))
        return self.denoise(inputs["x"], inputs["step_embedding"], conditioning)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape["x"])
        return shape, shape

    def get_config(self):
        return {
            **super().get_config(),
            "residual_channels": self.residual_channels,
            "dilation": self.dilation,
            "guidance_channels": self.guidance_channels,
            "kernel_size": self.kernel_size,
        }


@keras.saving.register_keras_serializable(package="keras_binaural")
class WaveNetDenoiser(keras.Model):
    """ε_θ: predicts the noise in a noisy differential, conditioned on mono and guidance.

    noisy → 1x1 → ReLU → `num_cycles` × `layers_per_cycle` residual layers (dilation
    2^(i mod layers_per_cycle)) → Σ skip / √(layers) → 1x1 → ReLU → 1x1 (zero-initialised, so the
    untrained model outputs 0) → 1 channel. The mono passes a pre-net of `conditioner_layers`
    'same' convolutions (LeakyReLU 0.4) at audio rate; each residual layer projects it (1x1) and
    the guidance (bias-free FC) to 2C.

    Under a "mixed_bfloat16" dtype policy every layer computes in bfloat16 (variables float32),
    except the step sinusoids, which stay float32 (fractional steps).

    Args:
      residual_channels: int, C (paper size 64-128; the small default suits CPU tests).
      num_cycles: int, cycles of dilations (3).
      layers_per_cycle: int, residual layers per cycle (10: dilations 1 ... 512).
      kernel_size: int, odd kernel size of the dilated convolutions (3).
      conditioner_channels: int, channels of the mono pre-net.
      conditioner_layers: int, convolutions in the mono pre-net.
      conditioner_kernel_size: int, odd kernel size of the pre-net convolutions.
      conditioner_inputs: int, audio-rate input channels of the pre-net (1: the mono; 2: the
        mono and the upmixer's spatial prior).
      guidance_channels: int, G, size of a guidance vector; 0 for a model without guidance.
      guidance_hop_samples: int, audio samples per guidance frame (1600 = 0.1 s at 16 kHz).
      step_embedding_channels: int, sinusoids of the step embedding (128).
      step_hidden_channels: int, width of the step-embedding FC layers (512).

    Call arguments:
      inputs: dict with
        "noisy": `[batch, time, 1]` x_t, the noised differential;
        "step": `[batch]` float diffusion step in [0, T - 1] (fractional for fast sampling);
        "mono": `[batch, time]` float32 mono at 16 kHz in [-1, 1] (or `[batch, time,
          conditioner_inputs]`: the mono and further audio-rate inputs);
        "guidance" (optional): `[batch, frames, G]` one vector per `guidance_hop_samples`
          (frames = ceil(time / hop); linearly upsampled) or `[batch, G]` for the whole clip;
          absent means a zero vector.
      training: unused (no dropout); accepted for the Keras contract.

    Returns:
      `[batch, time, 1]` ε estimate, in the compute dtype.

    Example:
      >>> denoiser = WaveNetDenoiser(residual_channels=16, guidance_channels=8)
      >>> eps = denoiser({"noisy": keras.ops.zeros((1, 4000, 1)),
      ...                 "step": keras.ops.convert_to_tensor([12.3]),
      ...                 "mono": keras.ops.zeros((1, 4000)),
      ...                 "guidance": keras.ops.zeros((1, 3, 8))})
      >>> # In a sampler: conditioning once, then one `denoise` per step.
      >>> conditioning = denoiser.condition(keras.ops.zeros((1, 4000)))
      >>> eps = denoiser.denoise(keras.ops.zeros((1, 4000, 1)), [12.3], conditioning)

    Reference: SPEC section 5; DiffWave section 3 and Fig. 2; BinauralGrad (conditioning).
    """

    def __init__(
        self,
        residual_channels: int = 32,
        num_cycles: int = 3,
        layers_per_cycle: int = 10,
        kernel_size: int = 3,
        conditioner_channels: int = 32,
        conditioner_layers: int = 2,
        conditioner_kernel_size: int = 3,
        conditioner_inputs: int = 1,
        guidance_channels: int = 0,
        guidance_hop_samples: int = SAMPLES_PER_FRAME,
        step_embedding_channels: int = 128,
        step_hidden_channels: int = 512,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # "step" must reach `call` in float32 (a bfloat16 policy would round fractional steps);
        # `call` converts and casts the inputs itself.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

        # === Config ===
        self.residual_channels = residual_channels
        self.num_cycles = num_cycles
        self.layers_per_cycle = layers_per_cycle
        self.kernel_size = kernel_size
        self.conditioner_channels = conditioner_channels
        self.conditioner_layers = conditioner_layers
        self.conditioner_kernel_size = conditioner_kernel_size
        self.conditioner_inputs = conditioner_inputs
        self.guidance_channels = guidance_channels
        self.guidance_hop_samples = guidance_hop_samples
        self.step_embedding_channels = step_embedding_channels
        self.step_hidden_channels = step_hidden_channels

        # === Layers ===
        policy = self.dtype_policy
        self.input_projection = keras.layers.Dense(
            residual_channels, activation="relu", dtype=policy, name="input_projection"
        )
        self.step_embedding = DiffusionStepEmbedding(
            step_embedding_channels, step_hidden_channels, dtype=policy, name="step_embedding"
        )
        self.conditioner_convs = [
            keras.layers.Conv1D(
                conditioner_channels,
                conditioner_kernel_size,
                padding="same",
                dtype=policy,
                name=f"conditioner_conv_{i}",
            )
            for i in range(conditioner_layers)
        ]
        self.residual_layers = [
            ResidualLayer(
                residual_channels,
                dilation=2 ** (i % layers_per_cycle),
                guidance_channels=guidance_channels,
                kernel_size=kernel_size,
                dtype=policy,
                name=f"residual_layer_{i}",
            )
            for i in range(num_cycles * layers_per_cycle)
        ]
        self.skip_projection = keras.layers.Dense(
            residual_channels, activation="relu", dtype=policy, name="skip_projection"
        )
        self.output_projection = keras.layers.Dense(
            1, kernel_initializer="zeros", dtype=policy, name="output_projection"
        )

    def build(self, input_shape=None):
        channels = self.residual_channels
        self.input_projection.build((None, None, 1))
        self.step_embedding.build((None,))
        in_channels = self.conditioner_inputs
        for conv in self.conditioner_convs:
            conv.build((None, None, in_channels))
            in_channels = self.conditioner_channels
        residual_shapes = {
            "x": (None, None, channels),
            "step_embedding": (None, self.step_hidden_channels),
            "conditioner": (None, None, in_channels),
        }
        for layer in self.residual_layers:
            layer.build(residual_shapes)
        self.skip_projection.build((None, None, channels))
        self.output_projection.build((None, None, channels))
        self.built = True

    def receptive_field(self) -> dict[str, int]:
        """Half-widths, in samples, of what output sample n depends on.

        Returns:
          {"noisy": R, "mono": R_m}: output n depends on noisy samples n - R ... n + R and on mono
          samples n - R_m ... n + R_m. The noisy path crosses every dilated convolution; the mono
          path crosses the pre-net and enters after the first layer's dilated convolution.
        """
        half = (self.kernel_size - 1) // 2
        dilations = [layer.dilation for layer in self.residual_layers]
        prenet = self.conditioner_layers * ((self.conditioner_kernel_size - 1) // 2)
        return {"noisy": half * sum(dilations), "mono": prenet + half * sum(dilations[1:])}

    def condition(self, mono, guidance=None) -> list:
        """Step-independent conditioning for every residual layer; compute once per clip.

        Args:
          mono: `[batch, time]` mono at 16 kHz, or `[batch, time, conditioner_inputs]` (the mono
            and further audio-rate inputs, e.g. the upmixer's spatial prior).
          guidance: None, `[batch, G]` or `[batch, frames, G]` (one vector per
            `guidance_hop_samples`).

        Returns:
          A list of `num_cycles * layers_per_cycle` tensors `[batch, time, 2C]` in the compute
          dtype (memory: layers · time · 2C values, e.g. 30 · 64,000 · 128 · 2 bytes = 0.5 GB for
          4 s at C = 64 in bfloat16).
        """
        if not self.built:
            self.build()
        features = ops.cast(ops.convert_to_tensor(mono), self.compute_dtype)
        if len(features.shape) == 2:
            features = features[..., None]
        for conv in self.conditioner_convs:
            features = ops.leaky_relu(conv(features), negative_slope=0.4)
        if guidance is not None:
            guidance = ops.cast(ops.convert_to_tensor(guidance), self.compute_dtype)
        return [
            layer.conditioning(features, guidance, self.guidance_hop_samples)
            for layer in self.residual_layers
        ]

    def denoise(self, noisy, step, conditioning: list):
        """One evaluation of ε_θ given the conditioning of `condition`.

        Args:
          noisy: `[batch, time, 1]` x_t.
          step: `[batch]` float diffusion steps (kept float32).
          conditioning: the list returned by `condition`.

        Returns:
          `[batch, time, 1]` ε estimate in the compute dtype.
        """
        if not self.built:
            self.build()
        x = self.input_projection(ops.cast(ops.convert_to_tensor(noisy), self.compute_dtype))
        embedding = self.step_embedding(step)
        skip_sum = None
        for layer, layer_conditioning in zip(self.residual_layers, conditioning):
            x, skip = layer.denoise(x, embedding, layer_conditioning)
            skip_sum = skip if skip_sum is None else skip_sum + skip
        scale = ops.cast(1.0 / math.sqrt(len(self.residual_layers)), skip_sum.dtype)
        return self.output_projection(self.skip_projection(skip_sum * scale))

    def call(self, inputs, training=False):
        conditioning = self.condition(inputs["mono"], inputs.get("guidance"))
        return self.denoise(inputs["noisy"], inputs["step"], conditioning)

    def get_config(self):
        return {
            **super().get_config(),
            "residual_channels": self.residual_channels,
            "num_cycles": self.num_cycles,
            "layers_per_cycle": self.layers_per_cycle,
            "kernel_size": self.kernel_size,
            "conditioner_channels": self.conditioner_channels,
            "conditioner_layers": self.conditioner_layers,
            "conditioner_kernel_size": self.conditioner_kernel_size,
            "conditioner_inputs": self.conditioner_inputs,
            "guidance_channels": self.guidance_channels,
            "guidance_hop_samples": self.guidance_hop_samples,
            "step_embedding_channels": self.step_embedding_channels,
            "step_hidden_channels": self.step_hidden_channels,
        }


# === Compiled inference ===
# XLA is the point of this section, so it uses tf.function directly.


def compiled_denoise_fn(denoiser: WaveNetDenoiser, jit_compile: bool = True):
    """`denoiser.denoise` for sampling on CPU: oneDNN convolutions, the rest in XLA clusters.

    Per residual layer, the dilated convolution of the residual stream x runs as a TensorFlow
    (oneDNN) op, and everything after it (the step term `step_conv_term`, bias, conditioning,
    gate, output 1x1, residual and skip sum) is one `tf.function(jit_compile=True)`, so XLA fuses
    the elementwise work around the 1x1 matrix product. What we measured on the 2-core CPU
    (benchmarks/bench_denoiser_speed.py) decided this split:
      - one XLA cluster for the whole step is slow: the residual stream x_{i+1} = (x_i + r_i) / √2
        is an elementwise chain that XLA duplicates into its consumers instead of storing it, so
        layer i re-reads the outputs of all earlier layers (work quadratic in depth; `--xla whole`);
      - XLA's own convolution (and the im2col concatenation that would replace it) is slower than
        oneDNN's dilated convolution, most of all in bfloat16;
      - the elementwise work is memory-bound, so the step enters after the convolution
        (`step_conv_term`, computed inside the fusion) rather than as a stored x + FC(e).
    Call it inside a `tf.function` (e.g. around a sampler) so the chain runs as one graph.

    Args:
      denoiser: a `WaveNetDenoiser` (built on first use).
      jit_compile: False runs the same stages without XLA (for comparison).

    Returns:
      fn(noisy `[batch, time, 1]`, step `[batch]`, conditioning from `denoiser.condition`) ->
      `[batch, time, 1]` ε estimate in the compute dtype, equal to `denoiser.denoise` up to
      rounding.
    """
    layers = denoiser.residual_layers
    scale = 1.0 / math.sqrt(len(layers))

    # Not compiled: XLA 2.16's CPU backend emits invalid code for this 1 -> C product in
    # bfloat16 at some lengths (C = 128, 80,000 samples: "fmul i16"); it is cheap without XLA.
    @tf.function
    def input_stage(noisy, step):
        x = denoiser.input_projection(ops.cast(noisy, denoiser.compute_dtype))
        return x, denoiser.step_embedding(step)

    def after_conv_stage(index: int):
        layer, first, last = layers[index], index == 0, index == len(layers) - 1

        @tf.function(jit_compile=jit_compile)
        def stage(conv_output, x, conditioning, skip_sum, embedding):
            conv_output = conv_output + layer.step_conv_term(embedding, ops.shape(x)[1])
            x, skip = layer.gated_output(conv_output, x, conditioning)
            skip_sum = skip if first else skip_sum + skip
            if last:  # the last residual output is not used
                skip_sum = skip_sum * ops.cast(scale, skip_sum.dtype)
                return denoiser.output_projection(denoiser.skip_projection(skip_sum))
            return x, skip_sum

        return stage

    stages = [after_conv_stage(index) for index in range(len(layers))]

    def denoise(noisy, step, conditioning):
        if not denoiser.built:
            denoiser.build()
        step = ops.cast(ops.reshape(ops.convert_to_tensor(step), (-1,)), "float32")
        x, embedding = input_stage(noisy, step)
        skip_sum = None
        for layer, stage, layer_conditioning in zip(layers, stages, conditioning):
            outputs = stage(
                layer.dilated_convolution(x), x, layer_conditioning, skip_sum, embedding
            )
            if layer is not layers[-1]:
                x, skip_sum = outputs
        return outputs

    return denoise
