"""Encoder and decoder networks built from the attention family.

Every encoder maps source ids to a memory dict; every decoder has one ``step`` that both teacher
forcing (``call``) and decoding (``zoo.decoding``) use:

* ``encoder(source_ids)`` -> ``{"outputs": (batch, S, d), "mask": (batch, S) bool, ...}``
* ``decoder(target_ids, memory)`` -> logits ``(batch, T, vocab)`` (teacher forcing, for fit)
* ``decoder.initial_state(memory, max_length)`` -> a dict of batch-major tensors
* ``decoder.step(token_ids (batch,), state)`` -> ``(logits (batch, vocab), state,
  weights (batch, S))``

Decoder states hold everything a step needs (the projected memory included), with the batch
as the leading axis of every tensor, so a beam search can reorder them with one gather.
"""

from zoo.layers.embedding import TokenEmbedding, sinusoidal_positions
from zoo.layers.rnn import RNNDecoder, RNNEncoder
from zoo.layers.transformer import TransformerDecoder, TransformerEncoder

__all__ = ["RNNDecoder", "RNNEncoder", "TokenEmbedding", "TransformerDecoder",
           "TransformerEncoder", "sinusoidal_positions"]
