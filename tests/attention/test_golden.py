"""Golden values: a tiny case (2 keys, 2 dims) per variant, worked out by hand with `math`.

Every registered variant must have a case here (`test_every_variant_has_a_golden_case`).
Common inputs: query q = (1, 0); keys k1 = (1, 0), k2 = (0, 1); values v1 = (1, 2),
v2 = (3, 4). Weights are set by hand to small numbers so the arithmetic can be followed.
"""

import math

import numpy as np
import pytest

import zoo.attention

Q = np.array([[[1.0, 0.0]]], "float32")  # (1, 1, 2)
K = np.array([[[1.0, 0.0], [0.0, 1.0]]], "float32")  # (1, 2, 2)
V = np.array([[[1.0, 2.0], [3.0, 4.0]]], "float32")
V1, V2 = (1.0, 2.0), (3.0, 4.0)


def softmax2(a, b):
    m = max(a, b)
    ea, eb = math.exp(a - m), math.exp(b - m)
    return ea / (ea + eb), eb / (ea + eb)


def mix(w1, w2, x=V1, y=V2):
    return [w1 * x[0] + w2 * y[0], w1 * x[1] + w2 * y[1]]


def check(layer, expected_weights, expected_context, query=Q, **kwargs):
    ctx, w = layer.attend(query=query, value=V, key=K, **kwargs)
    np.testing.assert_allclose(np.asarray(w).reshape(-1), expected_weights, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ctx).reshape(-1), expected_context, atol=1e-5)


def build(layer):
    layer.build((1, None, 2), (1, None, 2), (1, None, 2))
    return layer


def set_additive(layer, w_q, w_k, b, v):
    layer.query_projection.kernel.assign(np.array(w_q, "float32"))
    layer.key_projection.kernel.assign(np.array(w_k, "float32"))
    if layer.use_bias:
        layer.key_projection.bias.assign(np.array(b, "float32"))
    layer.energy.kernel.assign(np.array(v, "float32").reshape(-1, 1))


def case_dot():
    # scores: q.k1 = 1, q.k2 = 0
    w = softmax2(1.0, 0.0)
    check(zoo.attention.get("dot"), w, mix(*w))


def case_scaled_dot():
    # scores: 1 / sqrt(2), 0
    w = softmax2(1.0 / math.sqrt(2.0), 0.0)
    check(zoo.attention.get("scaled_dot"), w, mix(*w))


def case_cosine():
    # q = (3, 4): cos(q, k1) = 3/5, cos(q, k2) = 4/5; temperature 0.5 doubles them.
    w = softmax2(0.6 / 0.5, 0.8 / 0.5)
    check(zoo.attention.get("cosine", temperature=0.5), w, mix(*w),
          query=np.array([[[3.0, 4.0]]], "float32"))


def case_general():
    # W = [[1, 2], [3, 4]]: q^T W = (1, 2), so scores are 1 (k1) and 2 (k2).
    layer = build(zoo.attention.get("general"))
    layer.key_projection.kernel.assign(np.array([[1.0, 3.0], [2.0, 4.0]], "float32"))  # W^T
    w = softmax2(1.0, 2.0)
    check(layer, w, mix(*w))


def case_additive():
    # W_q = I, W_k = 0.5 I, b = (0, 0.1), v = (1, -1)
    # k1: tanh((1, 0) + (0.5, 0) + (0, 0.1)) -> tanh(1.5) - tanh(0.1)
    # k2: tanh((1, 0) + (0, 0.5) + (0, 0.1)) -> tanh(1.0) - tanh(0.6)
    layer = build(zoo.attention.get("additive", units=2))
    set_additive(layer, [[1, 0], [0, 1]], [[0.5, 0], [0, 0.5]], [0, 0.1], [1, -1])
    w = softmax2(math.tanh(1.5) - math.tanh(0.1), math.tanh(1.0) - math.tanh(0.6))
    check(layer, w, mix(*w))


def case_key_value():
    # W_k = [[1, 0], [0, 2]]: keys (1, 0), (0, 2); scores (1, 0) / sqrt(2)
    # W_v = [[1, 1], [0, 1]]: values (1, 3), (3, 7)
    layer = build(zoo.attention.get("key_value"))
    layer.key_projection.kernel.assign(np.array([[1, 0], [0, 2]], "float32"))
    layer.value_projection.kernel.assign(np.array([[1, 1], [0, 1]], "float32"))
    w = softmax2(1.0 / math.sqrt(2.0), 0.0)
    check(layer, w, mix(*w, x=(1.0, 3.0), y=(3.0, 7.0)))


def case_multi_head():
    # Two heads of size 1, each reading one coordinate; output = the two heads side by side.
    # head 0: scores (1*1, 1*0) / sqrt(1), values (1, 3) -> softmax(1, 0) . (1, 3)
    # head 1: scores (0, 0) -> (0.5, 0.5), values (2, 4) -> 3
    layer = build(zoo.attention.get("multi_head", num_heads=2, key_dim=1, use_bias=False))
    pick = np.zeros((2, 2, 1), "float32")
    pick[0, 0, 0] = pick[1, 1, 0] = 1.0
    # Set in Keras's per-head layout ((dim, H, d), (H, d, dim_out)): the layer stores them 2-D.
    layer.set_weights([pick, pick, pick, np.array([[[1, 0]], [[0, 1]]], "float32")])
    w0 = softmax2(1.0, 0.0)
    ctx = [w0[0] * 1 + w0[1] * 3, 0.5 * 2 + 0.5 * 4]
    check(layer, [w0[0], w0[1], 0.5, 0.5], ctx)


def case_location():
    # W_q = W_k = I, b = 0, v = (1, 1); conv kernel 2 (width 1, one filter), U = (1, 0).
    # step 1 (no previous weights): s_j = tanh(q0 + kj0) + tanh(q1 + kj1)
    #   k1: tanh(2) + tanh(0); k2: tanh(1) + tanh(1)
    # step 2: the previous weight a_j enters the first unit as 2 a_j.
    layer = build(zoo.attention.get("location", units=2, filters=1, kernel_size=1))
    set_additive(layer, [[1, 0], [0, 1]], [[1, 0], [0, 1]], [0, 0], [1, 1])
    layer.location_conv.kernel.assign(np.array([[[2.0]]], "float32"))
    layer.location_projection.kernel.assign(np.array([[1.0, 0.0]], "float32"))
    a = softmax2(math.tanh(2.0), 2 * math.tanh(1.0))
    b = softmax2(math.tanh(2.0 + 2 * a[0]), math.tanh(1.0 + 2 * a[1]) + math.tanh(1.0))
    check(layer, [*a, *b], mix(*a) + mix(*b), query=np.concatenate([Q, Q], axis=1))


def case_coverage():
    # As location, but the feature is the coverage c_j (sum of earlier weights) times
    # w_c = (1, 1), added to both units.
    layer = build(zoo.attention.get("coverage", units=2))
    set_additive(layer, [[1, 0], [0, 1]], [[1, 0], [0, 1]], [0, 0], [1, 1])
    layer.coverage_projection.kernel.assign(np.array([[1.0, 1.0]], "float32"))
    a = softmax2(math.tanh(2.0), 2 * math.tanh(1.0))
    b = softmax2(math.tanh(2.0 + a[0]) + math.tanh(a[0]),
                 math.tanh(1.0 + a[1]) + math.tanh(1.0 + a[1]))
    check(layer, [*a, *b], mix(*a) + mix(*b), query=np.concatenate([Q, Q], axis=1))
    loss = zoo.attention.coverage_loss(np.array([[a, b]], "float32"))
    # step 1 has no coverage yet; step 2 overlaps min(b_j, a_j)
    expected = (0.0 + min(a[0], b[0]) + min(a[1], b[1])) / 2
    np.testing.assert_allclose(float(loss), expected, atol=1e-6)


def _monotonic(mode):
    layer = build(zoo.attention.get("monotonic", units=2, mode=mode))
    set_additive(layer, [[1, 0], [0, 1]], [[1, 0], [0, 1]], [0, 0], [1, 1])
    layer.score_bias.assign(-1.0)
    # energies e_j = tanh(q0 + kj0) + tanh(q1 + kj1) - 1
    e1, e2 = math.tanh(2.0) - 1.0, 2 * math.tanh(1.0) - 1.0
    return layer, e1, e2


def case_monotonic():
    sig = lambda x: 1.0 / (1.0 + math.exp(-x))  # noqa: E731
    # soft, from the start state (all mass on position 1):
    #   a1 = p1; a2 = p2 (1 - p1)
    layer, e1, e2 = _monotonic("soft")
    p1, p2 = sig(e1), sig(e2)
    a = (p1, p2 * (1 - p1))
    check(layer, a, mix(*a))
    # hard: e1 < 0 (do not stop), e2 > 0 (stop): all weight on position 2.
    assert e1 < 0 < e2
    layer, _, _ = _monotonic("hard")
    check(layer, (0.0, 1.0), list(V2))


def case_local():
    # local-m: the first step is centred on position 0; window 1 covers both keys.
    # scores q.k = (1, 0) (identity W) -> softmax, times Gaussian exp(-d^2 / (2 * 0.5^2)).
    layer = build(zoo.attention.get("local", window=1, centre="monotonic"))
    layer.key_projection.kernel.assign(np.eye(2, dtype="float32"))
    s = softmax2(1.0, 0.0)
    gauss = lambda d: math.exp(-d * d / (2 * 0.5 * 0.5))  # noqa: E731
    w = (s[0] * gauss(0.0), s[1] * gauss(1.0))
    check(layer, w, mix(*w))
    # local-p: centre p = (S - 1) sigmoid(v_p tanh(W_p q)) with W_p = (1, 0)^T, v_p = 1:
    # p = sigmoid(tanh(1)).
    layer = build(zoo.attention.get("local", window=1, units=1))
    layer.key_projection.kernel.assign(np.eye(2, dtype="float32"))
    layer.centre_hidden.kernel.assign(np.array([[1.0], [0.0]], "float32"))
    layer.centre_output.kernel.assign(np.array([[1.0]], "float32"))
    p = 1.0 / (1.0 + math.exp(-math.tanh(1.0)))
    w = (s[0] * gauss(0.0 - p), s[1] * gauss(1.0 - p))
    check(layer, w, mix(*w))


def case_uniform():
    # No attention: each real key gets 1 / length whatever the query; the mean of the values.
    check(zoo.attention.get("uniform"), (0.5, 0.5), [2.0, 3.0])
    check(zoo.attention.get("uniform"), (1.0, 0.0), list(V1), value_mask=np.array([[1, 0]], bool))


GOLDEN = {name[len("case_"):]: fn for name, fn in list(globals().items())
          if name.startswith("case_")}


def test_every_variant_has_a_golden_case():
    missing = sorted(set(zoo.attention.names()) - set(GOLDEN))
    assert not missing, f"add a hand-computed case for: {missing}"


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden(name):
    GOLDEN[name]()


def test_masked_golden_dot():
    # With k2 masked, all weight goes to k1 and the context is v1 exactly.
    check(zoo.attention.get("dot"), (1.0, 0.0), list(V1), value_mask=np.array([[1, 0]], bool))
