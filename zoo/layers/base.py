"""The decoder contract, and the registry of encoder and decoder networks.

A decoder writes two things: the features of one step (``_step_features``) and the features of
a whole target at once (``_sequence_features``, teacher forcing: a scan of the same step for
RNNs, one parallel pass for Transformers). Everything after the features is defined once, here,
for both paths: the output distribution (``_output``) and the losses that read the attention
weights (``attention.weights_loss``, e.g. the coverage loss). So a copy distribution or a loss
on the weights plugs in once and holds for training and decoding alike.
"""

from __future__ import annotations

import keras
from keras import ops

from zoo.registry import Registry

#: Encoder and decoder networks by class name (``"RNNEncoder"``...); Keras serialization too.
NETWORKS = Registry("network", base=keras.layers.Layer)


def register_network(cls):
    """Class decorator: registers a network under its class name."""
    return NETWORKS.register(cls.__name__)(cls)


class Decoder(keras.layers.Layer):
    """Base of zoo decoders.

    Subclasses implement ``build(target_ids_shape, encoded_shape)``, ``prepare_memory``,
    ``initial_state``, ``_step_features``, ``_sequence_features`` and ``_output``, and set
    ``weights_attention`` (the attention whose weights they return).

    * ``decoder(target_ids, encoded)`` -> logits ``(batch, T, V)``: teacher forcing; in
      training, the weights' losses are added to the layer's losses.
    * ``decoder.forward(target_ids, encoded)`` -> ``{"logits", "attention" (batch, T, S)}``.
    * ``decoder.step(token_ids, state, memory)`` -> ``(logits (batch, V), state,
      weights (batch, S))``.

    Example:
        >>> import numpy as np
        >>> from zoo.layers import RNNDecoder, RNNEncoder
        >>> enc = RNNEncoder(vocab_size=20, embedding_dim=8, units=6)
        >>> dec = RNNDecoder(vocab_size=20, embedding_dim=8, units=10,
        ...                  attention={"class_name": "coverage",
        ...                             "config": {"coverage_loss_weight": 1.0}})
        >>> out = dec.forward(np.array([[2, 7, 5]]), enc(np.array([[4, 5, 3]])), training=True)
        >>> tuple(out["attention"].shape), len(dec.losses)
        ((1, 3, 3), 1)
    """

    #: The attention layer whose weights ``step``/``forward`` return (for weight losses).
    weights_attention = None
    #: Whether XLA can compile the training step (the gradient of a scan over a dynamic
    #: target length cannot be).
    supports_xla_training = True

    def call(self, target_ids, encoded, training=None):
        return self.forward(target_ids, encoded, training=training)["logits"]

    def forward(self, target_ids, encoded, training=None):
        """Teacher forcing over a whole target.

        Args:
            target_ids: ``(batch, T)`` int ids (bos first, 0 = padding).
            encoded: The encoder's output dict.
            training: Enables dropout and the weights' losses.

        Returns:
            ``{"logits": (batch, T, V) float32, "attention": (batch, T, S) float32}``.
        """
        if not self.built:
            self.build(tuple(target_ids.shape),
                       keras.tree.map_structure(lambda t: tuple(t.shape), encoded))
        features, weights = self._sequence_features(target_ids, encoded, training)
        if training:
            self._add_weights_loss(weights, ops.not_equal(target_ids, 0))
        return {"logits": self._output(features, weights, training),
                "attention": ops.cast(weights, "float32")}

    def step(self, token_ids, state, memory, training=False):
        """One decoding step.

        Args:
            token_ids: ``(batch,)`` the previous tokens.
            state: From ``initial_state`` or the previous step.
            memory: From ``prepare_memory`` (not changed by the step).
            training: Enables dropout.

        Returns:
            ``(logits (batch, V) float32, state, weights (batch, S))``.
        """
        features, weights, state = self._step_features(token_ids, state, memory, training)
        return self._output(features, weights, training), state, weights

    def _add_weights_loss(self, weights, target_mask):
        attention = self.weights_attention
        if attention is None:
            return
        loss = attention.weights_loss(weights, target_mask)
        if loss is not None:
            self.add_loss(loss)

    # ------------------------------------------------------------------ subclass hooks
    def _sequence_features(self, target_ids, encoded, training):
        """Teacher forcing: ``(features (batch, T, F), weights (batch, T, S))``."""
        raise NotImplementedError

    def _step_features(self, token_ids, state, memory, training):
        """One step: ``(features (batch, F), weights (batch, S), state)``."""
        raise NotImplementedError

    def _output(self, features, weights, training):
        """Features (``(batch, F)`` or ``(batch, T, F)``) -> float32 logits."""
        raise NotImplementedError

    def prepare_memory(self, encoded):
        raise NotImplementedError

    def initial_state(self, encoded, max_length=None):
        raise NotImplementedError
