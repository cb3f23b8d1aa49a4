"""numpy references of the localization math, heads and losses, shared by their tests."""

import keras
import numpy as np


def np_dense(layer, x, relu=False):
    y = x @ keras.ops.convert_to_numpy(layer.kernel) + keras.ops.convert_to_numpy(layer.bias)
    return np.maximum(y, 0.0) if relu else y


def np_layer_norm(layer, x):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    gamma, beta = (keras.ops.convert_to_numpy(w) for w in (layer.gamma, layer.beta))
    return (x - mean) / np.sqrt(var + layer.epsilon) * gamma + beta


def np_attention(visual, query, temperature):
    v = visual / np.linalg.norm(visual, axis=-1, keepdims=True)
    q = query / np.linalg.norm(query, axis=-1, keepdims=True)
    logits = np.einsum("bhwc,bc->bhw", v, q) / temperature
    flat = logits.reshape(len(logits), -1)
    flat = np.exp(flat - flat.max(1, keepdims=True))
    return (flat / flat.sum(1, keepdims=True)).reshape(logits.shape)


def np_pair_loss(d_positive, d_negative):
    e = np.exp(np.stack([d_positive, d_negative], -1))
    scaled = e / e.sum(-1, keepdims=True)
    return np.sqrt(scaled[:, 0] ** 2 + (scaled[:, 1] - 1.0) ** 2)


def np_osa(head, embedding, visual):
    a = np_layer_norm(head.audio_norm, np_dense(head.audio_fc2,
                                                  np_dense(head.audio_fc1, embedding, True)))
    s = np_layer_norm(head.scene_norm, visual.mean((1, 2)))
    attention = np_attention(visual, a, head.temperature)
    pooled = np.einsum("bhwc,bhw->bc", visual, attention)
    o = np_dense(head.object_fc2, np_dense(head.object_fc1, pooled, True))
    return a, s, o, attention


def np_ssm_distance(head, embedding, visual):
    a = np_layer_norm(head.audio_norm, np_dense(head.audio_fc2,
                                                  np_dense(head.audio_fc1, embedding, True)))
    f = head.feature_size
    h, w = visual.shape[1:3]
    xs, ys = (2 * np.arange(w) + 1) / w - 1, (2 * np.arange(h) + 1) / h - 1
    parts = []
    for half in (a[:, :f], a[:, f:]):
        attention = np_attention(visual, half, head.temperature)
        parts += [np.einsum("bhwc,bhw->bc", visual, attention),
                  (attention.sum(1) * xs).sum(-1, keepdims=True),
                  (attention.sum(2) * ys).sum(-1, keepdims=True)]
    o = np_dense(head.object_fc2, np_dense(head.object_fc1, np.concatenate(parts, -1), True))
    return np.linalg.norm(a - o, axis=-1)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)
