"""Bahdanau additive attention: score(q, k) = v^T tanh(W_q q + W_k k + b) (Bahdanau et al.
2015)."""

import keras
from keras import ops

from zoo.attention.base import Attention, independent_initializer, register


class AdditiveScoreMixin:
    """The additive energy shared by ``additive``, ``location``, ``coverage`` and
    ``monotonic``: ``v^T tanh(W_q q + W_k k + b [+ features])``."""

    def _init_additive(self, units, use_bias, kernel_initializer, kernel_regularizer):
        if units is not None and int(units) < 1:
            raise ValueError(f"units must be a positive integer or None, got {units}")
        self.units = None if units is None else int(units)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def _dense(self, units, name, use_bias=False):
        return keras.layers.Dense(
            units, use_bias=use_bias,
            kernel_initializer=independent_initializer(self.kernel_initializer, name),
            kernel_regularizer=self.kernel_regularizer, dtype=self.dtype_policy, name=name)

    def _build_additive(self, query_dim, key_dim):
        units = self.units or key_dim
        self._units = units
        self.query_projection = self._dense(units, "query_projection")  # W_q
        self.query_projection.build((None, None, query_dim))
        self.key_projection = self._dense(units, "key_projection", self.use_bias)  # W_k, b
        self.key_projection.build((None, None, key_dim))
        self.energy = self._dense(1, "energy")  # v
        self.energy.build((None, None, None, units))

    def _additive_energy(self, query, keys, features=None):
        """query (batch, Tq, dq), keys = W_k k (batch, Tv, units), features (batch, Tv, units)
        -> (batch, Tq, Tv)."""
        q = ops.expand_dims(self.query_projection(query), 2)  # (batch, Tq, 1, units)
        k = keys if features is None else keys + features
        hidden = ops.tanh(q + ops.expand_dims(k, 1))  # (batch, Tq, Tv, units)
        return ops.squeeze(self.energy(hidden), -1)

    def _additive_config(self):
        return {"units": self.units, "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}


@register("additive", aliases=("bahdanau", "concat"))
class AdditiveAttention(AdditiveScoreMixin, Attention):
    """True Bahdanau attention with its own query and key projections.

    ``score(q, k_j) = v^T tanh(W_q q + W_k k_j + b)``. Unlike ``keras.layers.AdditiveAttention``
    (``v^T tanh(q + k)``, no projections) it works for queries and keys of different sizes.
    ``W_k k`` is computed once per source by ``prepare``.

    Args:
        units: Size of the hidden layer of the score; ``None`` means the key size.
        use_bias: Learn the bias ``b``.
        kernel_initializer: Initializer of ``W_q``, ``W_k``, ``v``.
        kernel_regularizer: Regularizer of the same.
        dropout: Dropout rate on the attention weights.
        seed: Dropout seed.
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> layer = AdditiveAttention(units=8)
        >>> layer(query=np.ones((1, 2, 3), "float32"), value=np.ones((1, 4, 5), "float32")).shape
        TensorShape([1, 2, 5])
    """

    def __init__(self, units=None, use_bias=True, kernel_initializer="glorot_uniform",
                 kernel_regularizer=None, dropout=0.0, seed=None, **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        self._init_additive(units, use_bias, kernel_initializer, kernel_regularizer)

    def build_weights(self, query_dim, key_dim, value_dim):
        self._build_additive(query_dim, key_dim)

    def _prepare(self, key, value):
        return {"keys": self.key_projection(key), "values": value}  # (batch, Tv, units)

    def _score(self, query, memory, state):
        return self._additive_energy(query, memory["keys"])

    def get_config(self):
        return {**super().get_config(), **self._additive_config()}
