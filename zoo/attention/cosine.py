"""Cosine attention: score(q, k) = cos(q, k) / temperature (Graves et al. 2014; Luo et al.
2018), with a fixed or learned temperature."""

import math

import keras
from keras import ops

from zoo.attention.base import Attention, register
from zoo.attention.dot import _check_same_dim

_EPS = 1e-6


def _l2_normalize(x):
    # rsqrt(max(|x|^2, eps)) keeps zero vectors (padding) finite in value and gradient.
    x32 = ops.cast(x, "float32")
    sq = ops.sum(ops.square(x32), axis=-1, keepdims=True)
    return ops.cast(x32 * ops.rsqrt(ops.maximum(sq, _EPS)), x.dtype)


@register("cosine")
class CosineAttention(Attention):
    """Cosine-similarity attention.

    ``score(q, k_j) = cos(q, k_j) / temperature``. Scores are bounded in
    ``[-1/t, 1/t]``, which makes the attention robust to the norm of the hidden states; a
    learned temperature lets the model sharpen it (parametrised as ``log(1/t)``, as CLIP does).

    Args:
        temperature: Initial (or fixed) temperature, > 0.
        learn_temperature: Train the temperature.
        dropout: Dropout rate on the attention weights.
        seed: Dropout seed.
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> layer = CosineAttention(temperature=0.5)
        >>> layer(query=np.ones((1, 1, 2), "float32"), value=np.eye(2, dtype="float32")[None]).shape
        TensorShape([1, 1, 2])
    """

    def __init__(self, temperature=0.1, learn_temperature=False, dropout=0.0, seed=None,
                 **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.learn_temperature = bool(learn_temperature)

    def build_weights(self, query_dim, key_dim, value_dim):
        _check_same_dim(self, query_dim, key_dim,
                        "use 'general' or 'additive' attention for different sizes")
        self.log_inverse_temperature = self.add_weight(
            name="log_inverse_temperature", shape=(),
            initializer=keras.initializers.Constant(math.log(1.0 / self.temperature)),
            trainable=self.learn_temperature)

    def _prepare(self, key, value):
        return {"keys": _l2_normalize(key), "values": value}

    def _score(self, query, memory, state):
        q = _l2_normalize(query) * ops.exp(self._cast_weight(self.log_inverse_temperature))
        return ops.matmul(q, ops.transpose(memory["keys"], (0, 2, 1)))

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature,
                "learn_temperature": self.learn_temperature}
