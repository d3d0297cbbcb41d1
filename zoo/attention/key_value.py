"""Key-value attention: separate learned key and value projections of the encoder states
(Daniluk et al. 2017; Miller et al. 2016)."""

import math

import keras
from keras import ops

from zoo.attention.base import Attention, independent_initializer, register


@register("key_value", aliases=("kv",))
class KeyValueAttention(Attention):
    """Key-value attention.

    The memory is projected twice: ``K = W_k h`` is what queries are matched against and
    ``V = W_v h`` is what is summed, so the encoder states need not serve both roles.
    ``score(q, K_j) = q . K_j / sqrt(dim_q)``; the key projection maps to the query size.

    Args:
        value_dim: Size of the projected values (and of the context); ``None`` keeps the
            value size.
        use_bias: Biases in the projections.
        kernel_initializer: Initializer of ``W_k`` and ``W_v``.
        kernel_regularizer: Regularizer of the same.
        dropout: Dropout rate on the attention weights.
        seed: Dropout seed.
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> layer = KeyValueAttention(value_dim=6)
        >>> layer(query=np.ones((1, 2, 3), "float32"), value=np.ones((1, 4, 5), "float32")).shape
        TensorShape([1, 2, 6])
    """

    def __init__(self, value_dim=None, use_bias=False, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, dropout=0.0, seed=None, **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        if value_dim is not None and int(value_dim) < 1:
            raise ValueError(f"value_dim must be a positive integer or None, got {value_dim}")
        self.value_dim = None if value_dim is None else int(value_dim)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def _output_dim(self, query_dim, value_dim):
        return self.value_dim or value_dim

    def build_weights(self, query_dim, key_dim, value_dim):
        kw = dict(use_bias=self.use_bias, kernel_regularizer=self.kernel_regularizer,
                  dtype=self.dtype_policy)
        init = self.kernel_initializer
        self.key_projection = keras.layers.Dense(
            query_dim, name="key_projection",
            kernel_initializer=independent_initializer(init, "key_projection"), **kw)
        self.key_projection.build((None, None, key_dim))
        self.value_projection = keras.layers.Dense(
            self.value_dim or value_dim, name="value_projection",
            kernel_initializer=independent_initializer(init, "value_projection"), **kw)
        self.value_projection.build((None, None, value_dim))
        self._scale_value = 1.0 / math.sqrt(query_dim)

    def _prepare(self, key, value):
        return {"keys": self.key_projection(key), "values": self.value_projection(value)}

    def _score(self, query, memory, state):
        q = query * ops.cast(self._scale_value, query.dtype)
        return ops.matmul(q, ops.transpose(memory["keys"], (0, 2, 1)))

    def get_config(self):
        return {**super().get_config(), "value_dim": self.value_dim, "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}
