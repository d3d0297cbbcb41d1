"""The sequence loss against hand-computed values, and the training path that projects only
the real target positions."""

import math

import keras
import numpy as np
import pytest

from zoo.models import Translator
from zoo.training import SequenceLoss


def test_sequence_loss_matches_hand_computed_values_with_label_smoothing():
    # Token 1: logits (0, 0, 1, 0), label 2. lse = ln(e + 3); nll = lse - 1; the uniform
    # term is lse - mean(z) = lse - 1/4. Token 2: logits (0, 5, -5, 2).
    logits = np.array([[[0, 0, 1, 0], [0, 5, -5, 2]]], "float32")
    lse = math.log(math.e + 3)
    got = float(SequenceLoss(label_smoothing=0.1)(np.array([[2, 0]]), logits))
    assert got == pytest.approx(0.9 * (lse - 1) + 0.1 * (lse - 0.25), rel=1e-6)
    # Without smoothing, two real tokens: the mean of their nll (label 1 -> logit 5).
    second = math.log(1 + math.exp(5) + math.exp(-5) + math.exp(2)) - 5
    got = float(SequenceLoss()(np.array([[2, 1]]), logits))
    assert got == pytest.approx(((lse - 1) + second) / 2, rel=1e-6)


def test_training_projects_only_real_target_positions():
    model = Translator.from_preset("transformer_tiny", vocab_size=50, dropout=0.0, dim=16,
                                   ff_dim=32, num_heads=2)
    rng = np.random.default_rng(0)
    src = rng.integers(4, 50, (3, 6)).astype("int32")
    tgt = rng.integers(4, 50, (3, 5)).astype("int32")
    tgt[0, 3:] = 0
    tgt[2, 1:] = 0
    x = {"source": src, "target": tgt}
    model.compile()
    assert model.decoder.pack_training
    packed = keras.ops.convert_to_numpy(model(x, training=True))
    full = keras.ops.convert_to_numpy(model(x, training=False))
    real = tgt != 0
    np.testing.assert_allclose(packed[real], full[real], atol=1e-5)
    assert not packed[~real].any()
    # XLA needs static shapes: the full projection then.
    model.compile(jit_compile=True)
    assert not model.decoder.pack_training


def test_token_accuracy_counts_real_tokens_whose_label_has_the_top_logit():
    from zoo.training import TokenAccuracy

    logits = np.array([[[0, 0, 3, 1], [2, 1, 0, 0], [9, 0, 0, 0]]], "float32")
    m = TokenAccuracy()
    # Token 1: label 2 has the top logit (right); token 2: label 1 does not (wrong);
    # token 3 is padding (ignored, though its "label" 0 would be right).
    m.update_state(np.array([[2, 1, 0]]), logits)
    assert float(m.result()) == 0.5


def test_label_smoothed_gradient_is_softmax_minus_the_smoothed_target():
    # d/dz of (1-e) CE(onehot) + e CE(uniform) = softmax(z) - (1-e) onehot - e/V, divided by
    # the number of real tokens (here 2 of 3).
    import tensorflow as tf

    eps, v = 0.2, 4
    z = np.array([[[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 3.0], [4.0, 0.0, 0.0, 0.0]]],
                 "float32")
    y = np.array([[2, 3, 0]])  # the third token is padding
    logits = tf.constant(z)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        loss = SequenceLoss(label_smoothing=eps)(y, logits)
    grad = tape.gradient(loss, logits).numpy()[0]
    soft = np.exp(z[0]) / np.exp(z[0]).sum(-1, keepdims=True)
    want = np.zeros_like(z[0])
    for t, label in enumerate([2, 3]):
        target = np.full(v, eps / v)
        target[label] += 1 - eps
        want[t] = (soft[t] - target) / 2
    np.testing.assert_allclose(grad, want, atol=1e-6)
