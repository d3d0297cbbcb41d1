"""Location-aware attention (Chorowski et al. 2015): the score also sees convolution features
of the previous step's weights."""

import keras
from keras import ops

from zoo.attention.additive import AdditiveScoreMixin
from zoo.attention.base import Attention, independent_initializer, register


@register("location", aliases=("location_aware", "chorowski"))
class LocationAttention(AdditiveScoreMixin, Attention):
    """Location-aware (hybrid) attention.

    ``f_i = F * a_{i-1}`` (a 1-D convolution of the previous weights, ``filters`` channels)
    and ``score(q_i, k_j) = v^T tanh(W_q q_i + W_k k_j + U f_{i,j} + b)``. Knowing where it
    looked last lets the model move forward along the source instead of re-attending to
    similar-looking positions; with ``cumulative=True`` the convolution also sees the sum of
    all previous weights (as in Tacotron 2).

    State: ``{"weights": (batch, Tv), "cumulative": (batch, Tv)}``, zeros at the start.

    Args:
        units: Hidden size of the score; ``None`` means the key size.
        filters: Number of convolution filters.
        kernel_size: Width of the convolution (odd keeps it centred).
        cumulative: Also convolve the cumulative weights.
        use_bias: Learn the bias ``b``.
        kernel_initializer: Initializer of the projections and the convolution.
        kernel_regularizer: Regularizer of the same.
        dropout: Dropout rate on the attention weights.
        seed: Dropout seed.
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> layer = LocationAttention(units=8, filters=4, kernel_size=3)
        >>> ctx, w = layer.attend(query=np.ones((1, 2, 3), "float32"),
        ...                       value=np.ones((1, 4, 5), "float32"))
        >>> tuple(w.shape)
        (1, 2, 4)
    """

    has_state = True

    def __init__(self, units=None, filters=32, kernel_size=31, cumulative=False, use_bias=True,
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, dropout=0.0,
                 seed=None, **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        self._init_additive(units, use_bias, kernel_initializer, kernel_regularizer)
        if int(filters) < 1 or int(kernel_size) < 1:
            raise ValueError(f"filters and kernel_size must be positive, got {filters}, "
                             f"{kernel_size}")
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.cumulative = bool(cumulative)

    def build_weights(self, query_dim, key_dim, value_dim):
        self._build_additive(query_dim, key_dim)
        self.location_conv = keras.layers.Conv1D(
            self.filters, self.kernel_size, padding="same", use_bias=False,
            kernel_initializer=independent_initializer(self.kernel_initializer, "location_conv"),
            kernel_regularizer=self.kernel_regularizer, dtype=self.dtype_policy,
            name="location_conv")
        self.location_conv.build((None, None, 2 if self.cumulative else 1))
        self.location_projection = self._dense(self._units, "location_projection")  # U
        self.location_projection.build((None, None, self.filters))

    def initial_state(self, batch_size, value_length, dtype=None):
        zeros = ops.zeros((batch_size, value_length), dtype or self.compute_dtype)
        return {"weights": zeros, "cumulative": zeros}

    def _prepare(self, key, value):
        return {"keys": self.key_projection(key), "values": value}

    def _score(self, query, memory, state):
        channels = [state["weights"]] + ([state["cumulative"]] if self.cumulative else [])
        previous = ops.cast(ops.stack(channels, axis=-1), self.compute_dtype)  # (b, Tv, C)
        features = self.location_projection(self.location_conv(previous))  # (b, Tv, units)
        return self._additive_energy(query, memory["keys"], features)

    def _next_state(self, weights, state, query, memory):
        w = ops.cast(weights[:, 0, :], state["weights"].dtype)
        return {"weights": w, "cumulative": state["cumulative"] + w}

    def get_config(self):
        return {**super().get_config(), **self._additive_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "cumulative": self.cumulative}
