"""Encoder and decoder networks built from the attention family.

Every encoder maps source ids to a memory dict; every decoder has one ``step`` that both teacher
forcing (``call``) and decoding (``zoo.decoding``) use:

* ``encoder(source_ids)`` -> ``encoded``: ``{"outputs": (batch, S, d), "mask": (batch, S)
  bool, ...}``
* ``decoder(target_ids, encoded)`` -> logits ``(batch, T, vocab)`` (teacher forcing, for fit);
  ``decoder.forward(target_ids, encoded)`` also returns the attention weights ``(batch, T, S)``
* ``decoder.prepare_memory(encoded)`` -> ``memory``: what every step reads and none changes
  (the attention's projected keys/values)
* ``decoder.initial_state(encoded, max_length)`` -> ``state``: what every step changes
* ``decoder.step(token_ids (batch,), state, memory)`` -> ``(logits (batch, vocab), state,
  weights (batch, S))``

Decoders subclass :class:`zoo.layers.base.Decoder`, which defines the output distribution and
the losses on the attention weights once for teacher forcing and steps. Networks register in
``NETWORKS`` (by class name), which is how models find them. State and memory are dicts of
batch-major tensors. They are kept apart so that a beam search reorders the
state alone (the hypotheses of a sentence share its memory) and a compiled decoding loop
keeps the memory out of its loop-carried values.
"""

from zoo.layers.base import NETWORKS, Decoder, register_network
from zoo.layers.embedding import RelativePositionBias, TokenEmbedding, sinusoidal_positions
from zoo.layers.rnn import RNNDecoder, RNNEncoder
from zoo.layers.transformer import TransformerDecoder, TransformerEncoder

__all__ = ["Decoder", "NETWORKS", "register_network", "RelativePositionBias", "RNNDecoder", "RNNEncoder", "TokenEmbedding", "TransformerDecoder",
           "TransformerEncoder", "sinusoidal_positions"]
