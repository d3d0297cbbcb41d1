"""Token embeddings with optional sinusoidal positions."""

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
