"""No attention: a fixed context vector, the mean of the encoder's outputs (the baseline that
attention replaced)."""

from keras import ops

from zoo.attention.base import Attention, register


@register("uniform", aliases=("none", "mean"))
class UniformAttention(Attention):
    """No attention: every source position weighs the same, whatever the query.

    ``score(q, k_j) = 0``, so the masked softmax gives ``1 / length`` to each real position
    and the context is the mean of the values: one fixed vector per sentence that the decoder
    sees at every step, as in the plain encoder-decoder (Cho et al. 2014; Sutskever et al.
    2014) that Bahdanau et al. (2015) compared against. Its BLEU falls with sentence length
    (``bench/length.py``), the bottleneck that attention removes. No weights.

    Args:
        dropout: Dropout rate on the (uniform) weights.
        seed: Dropout seed.
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> layer = UniformAttention()
        >>> v = np.arange(6, dtype="float32").reshape(1, 3, 2)
        >>> layer(query=np.ones((1, 1, 2), "float32"), value=v).numpy().tolist()
        [[[2.0, 3.0]]]
    """

    content_based = False

    def build_weights(self, query_dim, key_dim, value_dim):
        pass  # any query and value sizes: the query is not used

    def _score(self, query, memory, state):
        # (batch, Tq, Tv) zeros, shaped by the query and keys (the masks still apply).
        keys = memory["keys"]
        return ops.zeros_like(query[:, :, :1]) * ops.zeros_like(
            ops.transpose(keys[:, :, :1], (0, 2, 1)))
