"""Packed rows (training without the padding): the layout moves, and multi-head attention on
packed rows equals attention on the padded batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.attention import MultiHeadAttention, PackedRows

# Row 1 has one real position; row 2 none (a fully padded row must give zeros, not NaN).
Q_MASK = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], bool)
V_MASK = np.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 0, 1, 0, 0]], bool)


def test_packed_rows_by_hand():
    rows = PackedRows(Q_MASK)
    np.testing.assert_array_equal(rows.index, [0, 1, 2, 4])  # b * 4 + t
    np.testing.assert_array_equal(rows.positions, [0, 1, 2, 0])
    x = np.arange(3 * 4 * 2, dtype="float32").reshape(3, 4, 2)
    packed = keras.ops.convert_to_numpy(rows.pack(x))
    np.testing.assert_array_equal(packed, [[0, 1], [2, 3], [4, 5], [8, 9]])
    back = keras.ops.convert_to_numpy(rows.unpack(packed))
    np.testing.assert_array_equal(back, np.where(Q_MASK[..., None], x, 0.0))


@pytest.mark.parametrize("causal", [False, True])
def test_attend_packed_equals_attend_with_gradients(causal):
    rng = np.random.default_rng(3)
    layer = MultiHeadAttention(num_heads=2)
    q = rng.normal(size=(3, 4, 8)).astype("float32")
    v = rng.normal(size=(3, 4 if causal else 5, 8)).astype("float32")
    v_mask = Q_MASK if causal else V_MASK  # causal: self-attention over the query sequence
    layer.attend(query=q, value=v)  # builds
    for w in layer.weights:  # biases away from zero, so that a dropped one shows
        w.assign(rng.normal(size=w.shape).astype("float32") * 0.3)
    q_rows, v_rows = PackedRows(Q_MASK), PackedRows(v_mask)
    qt, vt = tf.constant(q), tf.constant(v)

    def padded():
        ctx, w = layer.attend(query=qt, value=vt, query_mask=Q_MASK, value_mask=v_mask,
                              use_causal_mask=causal)
        return ctx, w

    def packed():
        ctx, w = layer.attend_packed(q_rows.pack(qt), v_rows.pack(vt), q_rows, v_rows,
                                     use_causal_mask=causal)
        return q_rows.unpack(ctx), w

    results = []
    for fn in (padded, packed):
        with tf.GradientTape() as tape:
            tape.watch([qt, vt])
            ctx, w = fn()
            # Only real query positions count, as in a masked loss.
            loss = tf.reduce_sum(tf.where(Q_MASK[..., None], ctx, 0.0) ** 2) + \
                tf.reduce_sum(w * 0.5)
        grads = tape.gradient(loss, [qt, vt] + layer.trainable_variables)
        results.append((ctx.numpy(), w.numpy(), [tf.convert_to_tensor(g).numpy()
                                                 for g in grads]))
    (c0, w0, g0), (c1, w1, g1) = results
    np.testing.assert_allclose(c1[Q_MASK], c0[Q_MASK], atol=1e-5)
    assert not c1[~Q_MASK].any()
    np.testing.assert_allclose(w1, w0, atol=1e-6)
    assert not np.isnan(w1).any() and not w1[2].any()  # the fully padded row
    for a, b in zip(g0, g1):
        np.testing.assert_allclose(b, a, atol=1e-5, rtol=1e-5)
