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
    # The same weights in the same order, each stored 2-D: (dim, H, d) -> (dim, H * d),
    # (H, d) -> (H * d,), (H, d, dim_out) -> (H * d, dim_out).
    theirs = keras_layer.get_weights()
    merged = [(t.shape[0], t[0].size) for t in theirs[0:6:2]]  # query, key, value kernels
    expected = [s for shape in merged for s in (shape, (shape[1],))]
    expected += [(theirs[6].size // theirs[6].shape[-1], theirs[6].shape[-1]), theirs[7].shape]
    assert [w.shape for w in ours.get_weights()] == expected
    assert [v.path.split("/")[-2:] for v in ours.weights] == \
        [v.path.split("/")[-2:] for v in keras_layer.weights]
    ours.set_weights(theirs)
    ctx, w = ours.attend(query=q, value=v, key=k, value_mask=MASK)
    np.testing.assert_allclose(ctx, ref, atol=1e-5)
    np.testing.assert_allclose(w, w_ref, atol=1e-5)
    # And back: each array is Keras's, reshaped.
    for a, b in zip(ours.get_weights(), theirs):
        np.testing.assert_array_equal(a, b.reshape(a.shape))


def test_multi_head_draws_its_projections_at_keras_scale():
    # Keras's EinsumDense gives Glorot the fans of the product (64 in, 4 * 16 out), not those
    # of the per-head kernel (64, 4, 16) read as a convolution's (4 * 64, 16 * 64), whose
    # limit sqrt(6 / 1280) = 0.068 is a third of sqrt(6 / 128) = 0.22. Each kernel's spread
    # equals that of Keras's own layer.
    ours = zoo.attention.get("multi_head", num_heads=4, key_dim=16)
    ours.build((None, None, 64), (None, None, 64))
    theirs = keras.layers.MultiHeadAttention(num_heads=4, key_dim=16)
    x = np.zeros((1, 2, 64), "float32")
    theirs(x, x)
    assert np.abs(ours.get_weights()[0]).max() > math.sqrt(6.0 / 1280)
    for a, b in zip(ours.get_weights()[::2], theirs.get_weights()[::2]):  # the kernels
        assert np.abs(a).max() <= np.abs(b).max() * 1.05
        assert np.std(a) == pytest.approx(np.std(b), rel=0.1)


def test_multi_head_loads_a_checkpoint_with_per_head_kernels(tmp_path):
    # Weights saved in Keras's per-head layout (as zoo wrote them before it stored the
    # projections 2-D) load into the 2-D variables, the same numbers in the same order.
    inputs = keras.Input((TQ, D))

    class Attend(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.attention = zoo.attention.get("multi_head", num_heads=2)

        def build(self, shape):
            self.attention.build(shape, shape)

        def call(self, x):
            return self.attention(query=x, value=x)

    model = keras.Model(inputs, Attend()(inputs))
    path = str(tmp_path / "mha.weights.h5")
    model.save_weights(path)
    import h5py

    with h5py.File(path, "r+") as f:
        kernels = []
        f.visititems(lambda name, obj: kernels.append(name)
                     if isinstance(obj, h5py.Dataset) and obj.ndim == 2 else None)
        assert len(kernels) == 4
        for name in kernels:
            array = f[name][...]
            per_head = array.reshape((2, 4, D) if "attention_output" in name else (D, 2, 4))
            del f[name]
            f[name] = per_head
    fresh = keras.Model(inputs, Attend()(inputs))
    fresh.load_weights(path)
    for a, b in zip(fresh.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):  # a kernel of another size still fails to load
        fresh.layers[-1].attention.query_dense.load_own_variables(
            {"0": np.zeros((D, 3, 4), "float32"), "1": np.zeros((2, 4), "float32")})


def test_multi_head_causal_mask_equals_keras(data):
    q, _, _ = data
    keras_layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    ref = keras_layer(q, q, use_causal_mask=True)
    ours = zoo.attention.get("multi_head", num_heads=2, key_dim=4)
    ours.build(q.shape, q.shape)
    ours.set_weights(keras_layer.get_weights())
    np.testing.assert_allclose(ours(query=q, value=q, use_causal_mask=True), ref, atol=1e-5)


def test_multi_head_projections_quantize_with_the_model(data):
    # Keras's EinsumDense quantizes only itself, not subclasses: model.quantize would skip the
    # attention's projections with a warning unless HeadProjection allows it.
    q, v, _ = data
    inputs = keras.Input((TQ, D))
    layer = zoo.attention.get("multi_head", num_heads=2)
    model = keras.Model(inputs, layer(query=inputs, value=inputs))
    ref = np.asarray(model(q))
    model.quantize("int8")
    modes = [d.quantization_mode for d in (layer.query_dense, layer.key_dense,
                                            layer.value_dense, layer.output_dense)]
    assert modes == ["int8"] * 4
    out = np.asarray(model(q))
    assert not np.array_equal(out, ref)  # really quantized
    np.testing.assert_allclose(out, ref, atol=0.05 * np.abs(ref).max())
