"""Scaled dot-product attention: score(q, k) = q . k / sqrt(d) (Vaswani et al. 2017)."""

import math

from keras import ops

from zoo.attention.base import Attention, register
from zoo.attention.dot import _check_same_dim


@register("scaled_dot", aliases=("scaled_dot_product", "transformer"))
class ScaledDotAttention(Attention):
    """Scaled dot-product attention.

    ``score(q, k_j) = scale * q . k_j`` with ``scale = 1 / sqrt(d)`` by default, which keeps the
    softmax out of saturation as the feature size grows.

    Args:
        scale: A fixed multiplier of the scores; ``None`` means ``1 / sqrt(key_dim)``.
        dropout: Dropout rate on the attention weights.
        seed: Dropout seed.
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> layer = ScaledDotAttention()
        >>> ctx, w = layer.attend(query=np.ones((1, 2, 4), "float32"),
        ...                       value=np.ones((1, 3, 4), "float32"))
        >>> tuple(w.shape)
        (1, 2, 3)
    """

    def __init__(self, scale=None, dropout=0.0, seed=None, **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        if scale is not None and not float(scale) > 0:
            raise ValueError(f"scale must be positive or None, got {scale}")
        self.scale = None if scale is None else float(scale)

    def build_weights(self, query_dim, key_dim, value_dim):
        _check_same_dim(self, query_dim, key_dim,
                        "use 'general' or 'key_value' attention for different sizes")
        self._scale_value = self.scale if self.scale is not None else 1.0 / math.sqrt(key_dim)

    def _score(self, query, memory, state):
        # Scaling the query (batch, Tq, d) is cheaper than scaling the scores (batch, Tq, Tv).
        q = query * ops.cast(self._scale_value, query.dtype)
        return ops.matmul(q, ops.transpose(memory["keys"], (0, 2, 1)))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
