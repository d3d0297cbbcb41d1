"""Token embeddings and position encodings (sinusoidal; T5's relative position bias)."""

import math

import keras
from keras import ops


def sinusoidal_positions(positions, dim):
    """Vaswani et al. sinusoidal encodings.

    Args:
        positions: Integer positions, any shape ``(...)``.
        dim: Encoding size (even).

    Returns:
        ``(..., dim)`` float32: ``sin`` in the first half, ``cos`` in the second.
    """
    half = dim // 2
    inv_freq = ops.exp(ops.arange(half, dtype="float32") * (-math.log(10000.0) / max(half - 1, 1)))
    angles = ops.expand_dims(ops.cast(positions, "float32"), -1) * inv_freq  # (..., half)
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


@keras.saving.register_keras_serializable(package="zoo")
class TokenEmbedding(keras.layers.Layer):
    """Token embedding, scaled by ``sqrt(dim)`` and summed with sinusoidal positions.

    Computed on the fly from the position ids, so the decoder step can ask for the
    embedding of one token at any position, with no length limit.

    Args:
        vocab_size: Number of token ids.
        dim: Embedding size.
        positional: Add sinusoidal position encodings (Transformers) or not (RNNs).
        scale: Multiply the token embedding by ``sqrt(dim)`` (with ``positional``).
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> emb = TokenEmbedding(vocab_size=10, dim=4, positional=True)
        >>> tuple(emb(np.array([[1, 2, 0]])).shape)
        (1, 3, 4)
    """

    def __init__(self, vocab_size, dim, positional=False, scale=True, **kwargs):
        super().__init__(**kwargs)
        if int(vocab_size) < 1 or int(dim) < 1:
            raise ValueError(f"vocab_size and dim must be positive, got {vocab_size}, {dim}")
        if positional and int(dim) % 2:
            raise ValueError(f"sinusoidal positions need an even dim, got {dim}")
        self.vocab_size, self.dim = int(vocab_size), int(dim)
        self.positional, self.scale = bool(positional), bool(scale)
        self.embedding = keras.layers.Embedding(
            self.vocab_size, self.dim, dtype=self.dtype_policy, name="tokens",
            embeddings_initializer=keras.initializers.RandomNormal(stddev=self.dim ** -0.5)
            if positional else "uniform")

    def build(self, input_shape=None):
        if self.built:  # shared by an encoder and a decoder: built once, by the first
            return
        self.embedding.build((None, None))
        self.built = True

    @property
    def embeddings(self):
        return self.embedding.embeddings

    def call(self, ids, positions=None):
        """ids ``(batch, T)`` (or ``(batch,)``); positions like ids, default ``0..T-1``."""
        x = self.embedding(ids)
        if not self.positional:
            return x
        if self.scale:
            x = x * ops.cast(math.sqrt(self.dim), x.dtype)
        if positions is None:
            positions = ops.arange(ops.shape(ids)[-1])
        return x + ops.cast(sinusoidal_positions(positions, self.dim), x.dtype)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim,
                "positional": self.positional, "scale": self.scale}


@keras.saving.register_keras_serializable(package="zoo")
class RelativePositionBias(keras.layers.Layer):
    """T5's relative position bias (Raffel et al. 2020): a learned score per head and bucket
    of the distance between key and query, added to every attention layer's scores.

    Distances are bucketed as in Mesh TensorFlow: half the buckets hold the short distances
    exactly, the rest grow logarithmically up to ``max_distance`` (beyond it, one bucket).
    A bidirectional bias (an encoder) gives positive and negative distances their own
    buckets; a causal one (a decoder) sees only keys at or before the query.

    Args:
        num_heads: Attention heads (one bias per head).
        bidirectional: Encoder (True) or decoder (False).
        num_buckets: Distance buckets.
        max_distance: Distances at or beyond it share the last bucket.
        **kwargs: Keras layer arguments.

    Its inputs are lengths, not tensors: call :meth:`full` or :meth:`for_step` (after
    ``build``), not the layer.

    Example:
        >>> bias = RelativePositionBias(num_heads=2, bidirectional=False)
        >>> bias.build()
        >>> tuple(bias.full(3, 3).shape)   # (1, heads, queries, keys)
        (1, 2, 3, 3)
        >>> tuple(bias.for_step(5).shape)   # a decoder step over 5 cached keys
        (1, 2, 1, 5)
    """

    def __init__(self, num_heads, bidirectional=True, num_buckets=32, max_distance=128,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.bidirectional = int(num_heads), bool(bidirectional)
        self.num_buckets, self.max_distance = int(num_buckets), int(max_distance)
        # The logarithmic buckets span (exact, max_distance]: it must not be empty.
        if self.num_buckets < 4 or self.max_distance <= self.num_buckets // 2:
            raise ValueError(f"num_buckets must be >= 4 and max_distance > num_buckets // 2, "
                             f"got {num_buckets} and {max_distance}")

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.num_buckets, self.num_heads),
            initializer=keras.initializers.RandomNormal(stddev=self.num_heads ** -0.5))
        self.built = True

    def buckets(self, distance):
        """Bucket ids (int32, same shape) of ``distance = key position - query position``."""
        distance = ops.cast(distance, "int32")
        n, bucket = self.num_buckets, 0
        if self.bidirectional:
            n //= 2
            bucket = ops.cast(ops.greater(distance, 0), "int32") * n
            distance = ops.abs(distance)
        else:
            distance = -ops.minimum(distance, 0)
        exact = n // 2
        # log(0) at distance 0 is never selected (ops.where), but keeps the graph finite.
        far = exact + ops.cast(
            ops.log(ops.cast(ops.maximum(distance, 1), "float32") / exact)
            / math.log(self.max_distance / exact) * (n - exact), "int32")
        return bucket + ops.where(ops.less(distance, exact), distance, ops.minimum(far, n - 1))

    def _lookup(self, distance):
        values = ops.take(self.embeddings, self.buckets(distance), axis=0)  # (Tq, Tk, H)
        return ops.expand_dims(ops.transpose(values, (2, 0, 1)), 0)  # (1, H, Tq, Tk)

    def full(self, query_length, key_length):
        """The bias of ``query_length`` queries over ``key_length`` keys, both from position
        0: ``(1, heads, Tq, Tk)``."""
        distance = ops.expand_dims(ops.arange(key_length), 0) - \
            ops.expand_dims(ops.arange(query_length), 1)
        return self._lookup(distance)

    def for_step(self, key_length):
        """A decoding step's bias: one query, the newest of ``key_length`` cached keys
        (slot ``s`` holds the position ``s - (key_length - 1)`` from the query, whether the
        cache grows or rolls): ``(1, heads, 1, key_length)``."""
        distance = ops.expand_dims(ops.arange(key_length) - (key_length - 1), 0)
        return self._lookup(distance)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads,
                "bidirectional": self.bidirectional, "num_buckets": self.num_buckets,
                "max_distance": self.max_distance}
