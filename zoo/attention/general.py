"""Luong "general" (bilinear) attention: score(q, k) = q W k (Luong et al. 2015)."""

import keras
from keras import ops

from zoo.attention.base import Attention, register


@register("general", aliases=("luong", "bilinear", "multiplicative"))
class GeneralAttention(Attention):
    """Luong's bilinear attention, ``score(q, k_j) = q^T W k_j``.

    ``W`` (``dim_q x dim_k``) lets queries and keys differ in size and meaning. The key side
    ``k_j W^T`` is computed once per source by ``prepare``; its Dense kernel is ``W^T``
    (``dim_k x dim_q``).

    Args:
        kernel_initializer: Initializer of ``W``.
        kernel_regularizer: Regularizer of ``W``.
        dropout: Dropout rate on the attention weights.
        seed: Dropout seed.
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> layer = GeneralAttention()
        >>> layer(query=np.ones((1, 2, 3), "float32"), value=np.ones((1, 4, 5), "float32")).shape
        TensorShape([1, 2, 5])
    """

    def __init__(self, kernel_initializer="glorot_uniform", kernel_regularizer=None,
                 dropout=0.0, seed=None, **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build_weights(self, query_dim, key_dim, value_dim):
        self.key_projection = keras.layers.Dense(
            query_dim, use_bias=False, kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer, dtype=self.dtype_policy,
            name="key_projection")
        self.key_projection.build((None, None, key_dim))

    def _prepare(self, key, value):
        return {"keys": self.key_projection(key), "values": value}  # (batch, Tv, dq)

    def _score(self, query, memory, state):
        return ops.matmul(query, ops.transpose(memory["keys"], (0, 2, 1)))

    def get_config(self):
        return {**super().get_config(),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}
