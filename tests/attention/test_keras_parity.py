"""Where the maths coincides, zoo equals Keras's built-in layers (to 1e-5)."""

import math

import keras
import numpy as np
import pytest

import zoo.attention

B, TQ, TV, D = 3, 4, 6, 8
MASK = np.array([[1] * 6, [1, 1, 1, 0, 0, 0], [1, 0, 1, 1, 0, 1]], bool)


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    q = rng.normal(size=(B, TQ, D)).astype("float32")
    v = rng.normal(size=(B, TV, D)).astype("float32")
    k = rng.normal(size=(B, TV, D)).astype("float32")
    return q, v, k


def test_dot_equals_keras_attention(data):
    q, v, k = data
    ours, w_ours = zoo.attention.get("dot").attend(query=q, value=v, key=k, value_mask=MASK)
    ref, w_ref = keras.layers.Attention()([q, v, k], mask=[None, MASK],
                                          return_attention_scores=True)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    np.testing.assert_allclose(w_ours, w_ref, atol=1e-5)


def test_scaled_dot_equals_keras_attention_with_scale(data):
    q, v, k = data
    ours = zoo.attention.get("scaled_dot")(query=q, value=v, key=k, value_mask=MASK)
    keras_layer = keras.layers.Attention(use_scale=True)
    keras_layer([q, v, k], mask=[None, MASK])
    keras_layer.scale.assign(1.0 / math.sqrt(D))
    ref = keras_layer([q, v, k], mask=[None, MASK])
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_additive_with_identity_projections_equals_keras_additive(data):
    # keras.layers.AdditiveAttention is v^T tanh(q + k): ours with W_q = W_k = I, b = 0.
    q, v, k = data
    ours = zoo.attention.get("additive", units=D)
    ours.build(q.shape, v.shape, k.shape)
    ours.query_projection.kernel.assign(np.eye(D, dtype="float32"))
    ours.key_projection.kernel.assign(np.eye(D, dtype="float32"))
    scale = np.linspace(-1, 1, D).astype("float32")
    ours.energy.kernel.assign(scale[:, None])
    keras_layer = keras.layers.AdditiveAttention(use_scale=True)
    keras_layer([q, v, k], mask=[None, MASK])
    keras_layer.scale.assign(scale)
    np.testing.assert_allclose(ours(query=q, value=v, key=k, value_mask=MASK),
                               keras_layer([q, v, k], mask=[None, MASK]), atol=1e-5)


@pytest.mark.parametrize("heads,key_dim,value_dim,output_dim",
                         [(2, None, None, None), (3, 4, 5, 7), (1, 8, 8, None)])
def test_multi_head_equals_keras_multi_head_with_copied_weights(data, heads, key_dim,
                                                                value_dim, output_dim):
    q, v, k = data
    keras_layer = keras.layers.MultiHeadAttention(
        num_heads=heads, key_dim=key_dim or D // heads, value_dim=value_dim,
        output_shape=output_dim)
    ref, w_ref = keras_layer(q, v, key=k, attention_mask=np.repeat(MASK[:, None], TQ, 1),
                             return_attention_scores=True)
    ours = zoo.attention.get("multi_head", num_heads=heads, key_dim=key_dim,
                             value_dim=value_dim, output_dim=output_dim)
    ours.build(q.shape, v.shape, k.shape)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in keras_layer.get_weights()]
    ours.set_weights(keras_layer.get_weights())
    ctx, w = ours.attend(query=q, value=v, key=k, value_mask=MASK)
    np.testing.assert_allclose(ctx, ref, atol=1e-5)
    np.testing.assert_allclose(w, w_ref, atol=1e-5)


def test_multi_head_causal_mask_equals_keras(data):
    q, _, _ = data
    keras_layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    ref = keras_layer(q, q, use_causal_mask=True)
    ours = zoo.attention.get("multi_head", num_heads=2, key_dim=4)
    ours.build(q.shape, q.shape)
    ours.set_weights(keras_layer.get_weights())
    np.testing.assert_allclose(ours(query=q, value=q, use_causal_mask=True), ref, atol=1e-5)
