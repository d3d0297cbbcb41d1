"""Behaviour particular to single variants, beyond the shared contract."""

import keras
import numpy as np
import pytest

import zoo.attention
from zoo.attention.base import masked_softmax

B, TQ, TV, D = 2, 5, 7, 6
MASK = np.array([[1] * 7, [1, 1, 1, 1, 0, 0, 0]], bool)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    return (rng.normal(size=(B, TQ, D)).astype("float32"),
            rng.normal(size=(B, TV, D)).astype("float32"))


def test_monotonic_expected_alignment_matches_the_plain_recursion(data):
    """Raffel et al.'s recursion q_j = (1 - p_{j-1}) q_{j-1} + a_prev_j, a_j = p_j q_j,
    written out with loops, against the log-space matrix form."""
    q, v = data
    layer = zoo.attention.get("monotonic", units=4, mode="soft", score_bias_init=0.5)
    _, weights = layer.attend(query=q, value=v, value_mask=MASK, training=True)
    memory = layer.prepare(value=v, value_mask=MASK)
    energies = np.asarray(layer._score(q, memory, None))  # (B, TQ, TV)
    expected = np.zeros((B, TQ, TV))
    for b in range(B):
        prev = np.eye(TV)[0]
        n = MASK[b].sum()
        for i in range(TQ):
            p = 1 / (1 + np.exp(-energies[b, i]))
            p[n:] = 0.0
            a = np.zeros(TV)
            carry = 0.0
            for j in range(TV):
                carry = (1 - p[j - 1]) * carry + prev[j] if j else prev[0]
                a[j] = p[j] * carry
            expected[b, i] = prev = a
    np.testing.assert_allclose(weights, expected, atol=1e-5)
    assert np.all(np.asarray(weights).sum(-1) <= 1 + 1e-5)


def test_monotonic_hard_alignment_is_one_hot_and_moves_forward(data):
    q, v = data
    layer = zoo.attention.get("monotonic", units=4, mode="hard", score_bias_init=1.0)
    _, w = layer.attend(query=q, value=v, value_mask=MASK)
    w = np.asarray(w)
    assert set(np.unique(w)) <= {0.0, 1.0}
    for b in range(B):
        positions = [int(np.argmax(row)) for row in w[b] if row.sum() == 1]
        assert positions == sorted(positions)
        sums = w[b].sum(-1)
        # once the reader runs off the end it attends to nothing from then on
        assert np.all(np.diff(sums) <= 0)


def test_monotonic_auto_mode_is_soft_in_training_only(data):
    q, v = data
    layer = zoo.attention.get("monotonic", units=4)
    _, soft = layer.attend(query=q, value=v, training=True)
    _, hard = layer.attend(query=q, value=v, training=False)
    assert set(np.unique(np.asarray(hard))) <= {0.0, 1.0}
    assert not set(np.unique(np.asarray(soft))) <= {0.0, 1.0}


def test_monotonic_sigmoid_noise_only_in_training(data):
    q, v = data
    layer = zoo.attention.get("monotonic", units=4, mode="soft", sigmoid_noise=1.0, seed=1)
    a = layer(query=q, value=v, training=False)
    np.testing.assert_array_equal(a, layer(query=q, value=v, training=False))
    noisy = layer(query=q, value=v, training=True)
    assert np.all(np.isfinite(noisy)) and not np.allclose(noisy, a)


@pytest.mark.parametrize("centre", ["predictive", "monotonic"])
def test_local_weights_vanish_outside_the_window(data, centre):
    q, v = data
    layer = zoo.attention.get("local", window=1, centre=centre)
    _, w = layer.attend(query=q, value=v, value_mask=MASK)
    w = np.asarray(w)
    assert np.all((np.count_nonzero(w, axis=-1)) <= 3)  # 2D + 1 positions at most
    assert np.all(w[1, :, 4:] == 0.0)
    if centre == "monotonic":  # step i is centred on min(i, S - 1): support within +-1
        for b in range(B):
            last = MASK[b].sum() - 1
            for i in range(TQ):
                support = np.nonzero(w[b, i])[0]
                c = min(i, last)
                assert support.min() >= c - 1 and support.max() <= c + 1, (b, i, support)


def test_location_cumulative_steps_equal_full_call(data):
    q, v = data
    layer = zoo.attention.get("location", units=4, filters=2, kernel_size=3, cumulative=True)
    full_ctx, _ = layer.attend(query=q, value=v, value_mask=MASK)
    memory, state = layer.prepare(value=v, value_mask=MASK), layer.initial_state(B, TV)
    for t in range(TQ):
        ctx, _, state = layer.step(q[:, t], memory, state)
        np.testing.assert_allclose(ctx, full_ctx[:, t], atol=1e-5)
    np.testing.assert_allclose(state["cumulative"].numpy().sum(-1), TQ, atol=1e-4)


def test_coverage_loss_is_added_in_training_only(data):
    q, v = data
    layer = zoo.attention.get("coverage", units=4, coverage_loss_weight=2.0)
    qi, vi = keras.Input((TQ, D)), keras.Input((TV, D))
    model = keras.Model([qi, vi], layer(query=qi, value=vi))
    model([q, v], training=False)
    assert not model.losses
    model([q, v], training=True)
    _, w = layer.attend(query=q, value=v)
    assert len(model.losses) == 1
    np.testing.assert_allclose(float(model.losses[0]),
                               2.0 * float(zoo.attention.coverage_loss(w)), rtol=1e-5)
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit([q, v], np.zeros((B, TQ, D), "float32"), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_cosine_learned_temperature_trains(data):
    q, v = data
    layer = zoo.attention.get("cosine", learn_temperature=True)
    qi, vi = keras.Input((TQ, D)), keras.Input((TV, D))
    model = keras.Model([qi, vi], layer(query=qi, value=vi))
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    before = float(layer.log_inverse_temperature)
    model.fit([q, v], np.asarray(v[:, :TQ]), epochs=1, verbose=0)
    assert float(layer.log_inverse_temperature) != before
    fixed = zoo.attention.get("cosine")
    fixed(query=q, value=v)
    assert not fixed.trainable_weights


def test_masked_softmax_float16_fully_masked_and_exact_zeros():
    scores = np.array([[3.0, 60000.0, -60000.0], [1.0, 2.0, 3.0]], "float16")
    mask = np.array([[True, False, True], [False, False, False]])
    w = np.asarray(masked_softmax(scores, mask), "float32")
    assert np.all(np.isfinite(w))
    assert w[0, 1] == 0.0 and abs(w[0].sum() - 1) < 1e-3
    assert np.all(w[1] == 0.0)


def test_causal_mask_hides_the_future(data):
    q, _ = data
    _, w = zoo.attention.get("scaled_dot").attend(query=q, value=q, use_causal_mask=True)
    assert np.all(np.triu(np.asarray(w)[0], 1) == 0.0)


def test_attention_mask_is_combined_with_value_mask(data):
    q, v = data
    extra = np.ones((B, TQ, TV), bool)
    extra[:, :, 0] = False
    _, w = zoo.attention.get("dot").attend(query=q, value=v, value_mask=MASK,
                                           attention_mask=extra)
    w = np.asarray(w)
    assert np.all(w[..., 0] == 0.0) and np.all(w[1, :, 4:] == 0.0)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
