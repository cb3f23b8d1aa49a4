"""The WaveNet/DiffWave denoiser: shapes, receptive field, conditioning, round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from roundtrip import assert_round_trip

from keras_binaural import diffusion
from keras_binaural.models.denoiser import (
    DiffusionStepEmbedding,
    ResidualLayer,
    WaveNetDenoiser,
    compiled_denoise_fn,
    upsample_frames,
)


def small_denoiser(**kwargs) -> WaveNetDenoiser:
    config = {
        "residual_channels": 4,
        "num_cycles": 2,
        "layers_per_cycle": 3,
        "conditioner_channels": 4,
        "step_hidden_channels": 16,
        **kwargs,
    }
    keras.utils.set_random_seed(0)
    model = WaveNetDenoiser(**config)
    model.build()
    return model


def randomise_output_layer(model: WaveNetDenoiser, seed: int = 0):
    """The output layer is zero at init (so is the output); most tests need a live one."""
    kernel = model.output_projection.kernel
    kernel.assign(np.random.default_rng(seed).normal(0, 0.5, kernel.shape).astype("float32"))


def inputs(batch=2, time=4000, guidance=None, seed=0):
    rng = np.random.default_rng(seed)
    result = {
        "noisy": rng.standard_normal((batch, time, 1)).astype("float32"),
        "step": np.linspace(0.0, 137.4, batch).astype("float32"),
        "mono": rng.uniform(-0.5, 0.5, (batch, time)).astype("float32"),
    }
    if guidance is not None:
        result["guidance"] = rng.standard_normal((batch,) + guidance).astype("float32")
    return result


# === DiffusionStepEmbedding ===


def test_step_embedding_round_trip_and_fractional_steps(tmp_path):
    embedding = DiffusionStepEmbedding(embedding_channels=16, hidden_channels=32)
    steps = np.array([0.0, 12.0, 12.5, 13.0], np.float32)
    out = keras.ops.convert_to_numpy(assert_round_trip(embedding, steps, tmp_path))
    assert out.shape == (4, 32)
    assert not np.allclose(out[1], out[2]) and not np.allclose(out[2], out[3])


def test_step_embedding_keeps_fractional_steps_under_bfloat16():
    embedding = DiffusionStepEmbedding(dtype="mixed_bfloat16")
    out = embedding(np.array([137.0, 137.4], np.float32))
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    # bfloat16 cannot hold 137.4 (it rounds to 137): the sinusoids must see the float32 step.
    assert not np.array_equal(
        keras.ops.convert_to_numpy(out[0]), keras.ops.convert_to_numpy(out[1])
    )


# === ResidualLayer ===


def test_residual_layer_round_trip_and_shapes(tmp_path):
    layer = ResidualLayer(residual_channels=4, dilation=8, guidance_channels=3)
    rng = np.random.default_rng(0)
    layer_inputs = {
        "x": rng.standard_normal((2, 300, 4)).astype("float32"),
        "step_embedding": rng.standard_normal((2, 16)).astype("float32"),
        "conditioner": rng.standard_normal((2, 300, 5)).astype("float32"),
        "guidance": rng.standard_normal((2, 300, 3)).astype("float32"),
    }
    residual, skip = assert_round_trip(layer, layer_inputs, tmp_path)
    assert residual.shape == (2, 300, 4) and skip.shape == (2, 300, 4)


def test_residual_layer_denoise_is_the_diffwave_layer():
    """denoise() against the layer written out with plain Keras layer calls."""
    layer = ResidualLayer(residual_channels=4, dilation=16)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 50, 4)).astype("float32")  # time < 2 x dilation: edges matter
    embedding = rng.standard_normal((2, 8)).astype("float32")
    conditioning = rng.standard_normal((2, 50, 8)).astype("float32")
    layer({"x": x, "step_embedding": embedding, "conditioner": conditioning})
    residual, skip = layer.denoise(x, embedding, conditioning)

    y = layer.dilated_conv(x + layer.step_projection(embedding)[:, None, :]) + conditioning
    gated = keras.ops.sigmoid(y[..., :4]) * keras.ops.tanh(y[..., 4:])
    out = layer.output_projection(gated)
    np.testing.assert_allclose(residual, (x + out[..., :4]) / np.sqrt(2.0), atol=1e-5)
    np.testing.assert_allclose(skip, out[..., 4:], atol=1e-5)
    # The step can enter after the convolution (what compiled_denoise_fn does), edges included.
    after = layer.dilated_convolution(x) + layer.step_conv_term(embedding, 50)
    before = layer.dilated_convolution(layer.step_input(x, embedding))
    np.testing.assert_allclose(after, before, atol=1e-5)


def test_residual_layer_gradient_slices_nothing():
    """The layer's halves come from split, whose gradient is one concatenation, and its
    per-example vectors are broadcast by expand_dims: a slice's gradient (StridedSliceGrad)
    writes a zero tensor of the whole input, and the four halves' were a third of the
    denoiser's training time."""
    layer = ResidualLayer(residual_channels=4, dilation=2)
    x = tf.random.normal([2, 40, 4])
    embedding, conditioning = tf.random.normal([2, 8]), tf.random.normal([2, 40, 8])
    layer({"x": x, "step_embedding": embedding, "conditioner": conditioning})

    @tf.function
    def gradients(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            residual, skip = layer.denoise(x, embedding, conditioning)
            loss = tf.reduce_sum(residual) + tf.reduce_sum(tf.square(skip))
        return tape.gradient(loss, [x, *layer.trainable_variables])

    graph = gradients.get_concrete_function(x).graph
    ops_used = {op.type for op in graph.get_operations()}
    assert "StridedSliceGrad" not in ops_used and "Split" in ops_used


def test_residual_layer_guidance_vector_equals_constant_frames():
    layer = ResidualLayer(residual_channels=4, dilation=2, guidance_channels=3)
    base = inputs(batch=2, time=100)
    layer_inputs = {
        "x": np.random.default_rng(0).standard_normal((2, 100, 4)).astype("float32"),
        "step_embedding": np.ones((2, 8), "float32"),
        "conditioner": base["noisy"][:, :100],
    }
    vector = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]], "float32")
    with_vector = layer({**layer_inputs, "guidance": vector})
    with_frames = layer({**layer_inputs, "guidance": np.repeat(vector[:, None], 100, axis=1)})
    np.testing.assert_allclose(with_vector[0], with_frames[0], atol=1e-5)
    # No guidance is a zero vector (the projection has no bias).
    np.testing.assert_allclose(
        layer(layer_inputs)[0],
        layer({**layer_inputs, "guidance": np.zeros_like(vector)})[0],
        atol=1e-6,
    )


# === upsample_frames ===


def test_upsample_frames_interpolates_between_frame_centres():
    frames = np.array([[[0.0], [1.0]]], "float32")  # frame centres at samples 1.5 and 5.5
    got = keras.ops.convert_to_numpy(upsample_frames(frames, 8, hop_samples=4))[0, :, 0]
    np.testing.assert_allclose(got, [0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1], atol=1e-6)
    # fewer frames than the clip needs: the last one holds
    got = keras.ops.convert_to_numpy(upsample_frames(frames, 13, hop_samples=4))[0, :, 0]
    np.testing.assert_allclose(got[8:], 1.0)


# === WaveNetDenoiser ===


def test_denoiser_round_trip_with_guidance(tmp_path):
    model = small_denoiser(guidance_channels=3)
    randomise_output_layer(model)
    out = assert_round_trip(model, inputs(time=3500, guidance=(3, 3)), tmp_path)
    assert out.shape == (2, 3500, 1)


def test_denoiser_output_is_zero_at_init():
    model = small_denoiser()
    out = keras.ops.convert_to_numpy(model(inputs()))
    assert out.shape == (2, 4000, 1)
    np.testing.assert_array_equal(out, 0.0)


def test_paper_size_receptive_field_is_analytic():
    model = WaveNetDenoiser(residual_channels=2, step_hidden_channels=8)
    # 3 cycles x (1 + 2 + ... + 512) taps of reach 1 each side; mono enters after layer 0's conv.
    assert model.receptive_field() == {"noisy": 3 * 1023, "mono": 2 + 3 * 1023 - 1}


@pytest.mark.parametrize("depth", ["small", "paper"])
def test_receptive_field_by_gradient(depth):
    if depth == "small":
        model = small_denoiser(residual_channels=8, num_cycles=2, layers_per_cycle=4)
        time = 200
    else:
        model = small_denoiser(residual_channels=4, num_cycles=3, layers_per_cycle=10)
        time = 2 * 3070 + 200
    randomise_output_layer(model)
    radius = model.receptive_field()
    data = {key: tf.constant(value[:1]) for key, value in inputs(batch=1, time=time).items()}
    centre = time // 2
    with tf.GradientTape() as tape:
        tape.watch([data["noisy"], data["mono"]])
        out = model.denoise(data["noisy"], data["step"], model.condition(data["mono"]))
        target = out[0, centre, 0]
    grad_noisy, grad_mono = tape.gradient(target, [data["noisy"], data["mono"]])
    for grad, reach in (
        (grad_noisy.numpy()[0, :, 0], radius["noisy"]),
        (grad_mono.numpy()[0], radius["mono"]),
    ):
        support = np.flatnonzero(grad)
        assert support.min() == centre - reach and support.max() == centre + reach


@pytest.mark.parametrize("time", [4000, 1600, 777])
def test_guidance_frames_and_vector(time):
    model = small_denoiser(guidance_channels=5)
    randomise_output_layer(model)
    frames = -(-time // 1600)
    base = inputs(batch=2, time=time)
    vector = np.random.default_rng(3).standard_normal((2, 5)).astype("float32")
    out_frames = model(
        {
            **base,
            "guidance": np.random.default_rng(4).standard_normal((2, frames, 5)).astype("float32"),
        }
    )
    out_vector = model({**base, "guidance": vector})
    out_constant = model({**base, "guidance": np.repeat(vector[:, None], frames, axis=1)})
    assert out_frames.shape == out_vector.shape == (2, time, 1)
    np.testing.assert_allclose(out_vector, out_constant, atol=1e-5)
    assert not np.allclose(out_frames, out_vector)


def test_condition_uses_the_layers_own_projections():
    """Per-layer frame-rate projection + upsampling equals each layer's own call at audio rate."""
    model = small_denoiser(guidance_channels=3, num_cycles=1, layers_per_cycle=2)
    data = inputs(batch=1, time=2500, guidance=(2, 3))
    conditioning = model.condition(data["mono"], data["guidance"])
    features = keras.ops.expand_dims(data["mono"], -1)
    for conv in model.conditioner_convs:
        features = keras.ops.leaky_relu(conv(features), negative_slope=0.4)
    guidance = upsample_frames(data["guidance"], 2500, 1600)
    for layer, got in zip(model.residual_layers, conditioning):
        np.testing.assert_allclose(got, layer.conditioning(features, guidance), atol=1e-5)


def test_denoise_with_conditioning_equals_call_and_compiled_chain():
    model = small_denoiser(guidance_channels=2)
    randomise_output_layer(model)
    data = inputs(time=2000, guidance=(2, 2))
    expected = model(data)
    conditioning = model.condition(data["mono"], data["guidance"])
    np.testing.assert_allclose(
        model.denoise(data["noisy"], data["step"], conditioning), expected, atol=1e-5
    )
    compiled = tf.function(compiled_denoise_fn(model, jit_compile=True))
    np.testing.assert_allclose(
        compiled(data["noisy"], data["step"], conditioning), expected, atol=1e-4
    )


def test_bfloat16_policy_is_close_to_float32():
    model = small_denoiser()
    randomise_output_layer(model)
    keras.utils.set_random_seed(0)
    bf16 = WaveNetDenoiser(**{**model.get_config(), "dtype": "mixed_bfloat16"})
    bf16.build()
    bf16.set_weights(model.get_weights())
    data = inputs()
    expected = keras.ops.convert_to_numpy(model(data))
    got = keras.ops.convert_to_numpy(keras.ops.cast(bf16(data), "float32"))
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()


def test_compiled_chain_runs_in_bfloat16_where_xla_miscompiled():
    # XLA's CPU backend emitted invalid code for the 1 -> C input projection in bfloat16 at
    # C = 128 and 80,000 samples (a 5 s generation window); compiled_denoise_fn must run there.
    model = WaveNetDenoiser(
        residual_channels=128, num_cycles=1, layers_per_cycle=1, dtype="mixed_bfloat16"
    )
    model.build()
    conditioning = model.condition(tf.zeros([1, 80_000]))
    compiled = tf.function(compiled_denoise_fn(model))
    output = compiled(tf.zeros([1, 80_000, 1]), tf.constant([3.0]), conditioning)
    assert output.shape == (1, 80_000, 1)


def test_fast_sampling_with_the_denoiser():
    model = small_denoiser()
    randomise_output_layer(model)
    mono = inputs(batch=1, time=1000)["mono"]
    conditioning = model.condition(mono)
    out = diffusion.sample_fast(
        lambda x, step: model.denoise(x, step, conditioning),
        diffusion.linear_schedule(),
        shape=(1, 1000, 1),
        seed=0,
    )
    assert out.shape == (1, 1000, 1)
    assert np.all(np.abs(out.numpy()) <= 1.0)
