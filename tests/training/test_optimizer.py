"""zoo.training.Adam's fused update (TensorFlow) is textbook Adam and Keras's formula."""

import keras
import numpy as np
import pytest

from zoo.training import Adam


def _textbook(w, grads, lr, b1, b2, eps):
    """Kingma & Ba (2015), Algorithm 1, with epsilon added to sqrt(v) after bias correction
    of the step size (the TF1 / Keras form)."""
    m = v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
    return w


def test_first_step_moves_each_weight_by_the_learning_rate():
    # After one step m / sqrt(v) = sign(g) once bias-corrected: w - lr * sign(g).
    w = keras.Variable(np.array([1.0, -2.0, 3.0], "float32"))
    Adam(0.1).apply([np.array([0.5, -0.1, 2.0], "float32")], [w])
    np.testing.assert_allclose(w.numpy(), [0.9, -1.9, 2.9], rtol=1e-5)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_steps_match_the_textbook_and_keras(amsgrad):
    rng = np.random.default_rng(0)
    start = rng.normal(size=(4, 3)).astype("float32")
    grads = [rng.normal(size=(4, 3)).astype("float32") for _ in range(4)]
    ours, theirs = keras.Variable(start), keras.Variable(start)
    opt = Adam(0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-6, amsgrad=amsgrad)
    ref = keras.optimizers.Adam(0.01, beta_1=0.8, beta_2=0.95, epsilon=1e-6, amsgrad=amsgrad)
    for g in grads:
        opt.apply([g], [ours])
        ref.apply([g], [theirs])
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
    if not amsgrad:
        np.testing.assert_allclose(ours.numpy(), _textbook(start, grads, 0.01, 0.8, 0.95, 1e-6),
                                   rtol=1e-5, atol=1e-6)
        assert not np.allclose(ours.numpy(), start, atol=1e-3)
