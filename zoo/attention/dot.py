"""Dot-product (identity) attention: score(q, k) = q . k (Luong et al. 2015, "dot")."""

from keras import ops

from zoo.attention.base import Attention, register


def _check_same_dim(layer, query_dim, key_dim, hint):
    if query_dim != key_dim:
        raise ValueError(
            f"{layer._label()}: query and key must have the same feature size, got query "
            f"{query_dim} and key {key_dim}; {hint}")


@register("dot", aliases=("identity", "luong_dot"))
class DotAttention(Attention):
    """Dot-product attention: the queries and keys are the hidden states themselves.

    ``score(q, k_j) = q . k_j``; weights are the masked softmax over ``j``; the context is the
    weighted sum of the values. No weights. Equals ``keras.layers.Attention()``.

    Args:
        dropout: Dropout rate on the attention weights.
        seed: Dropout seed.
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> layer = DotAttention()
        >>> layer(query=np.ones((1, 2, 3), "float32"), value=np.ones((1, 4, 3), "float32")).shape
        TensorShape([1, 2, 3])
    """

    def build_weights(self, query_dim, key_dim, value_dim):
        _check_same_dim(self, query_dim, key_dim,
                        "use 'general' or 'additive' attention for different sizes")

    def _score(self, query, memory, state):
        # (batch, Tq, d) x (batch, Tv, d) -> (batch, Tq, Tv)
        return ops.matmul(query, ops.transpose(memory["keys"], (0, 2, 1)))
