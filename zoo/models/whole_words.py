"""Whole-word copying: a word that a copying decoder starts like a source word ends as one.

A pointer-generator copies subword pieces one at a time, so it can start a word with the
pieces of one source word and go on with pieces of another ("specia" + "ist" -> "speciaist").
While the word being written matches the start of one or more source words, this constraint
allows only the pieces that continue one of them, and lets the word end only where one of them
ends (or where the word is a single piece, a word of the vocabulary). Words that match no source
word are generated freely. A word is an alphanumeric run: a piece that does not start with a
letter or digit (``▁``-pieces, punctuation, speaker tags, special tokens) starts a new one.

The state is one boolean per source position (``match``: the word so far ends there), carried
in the decoder state, so beam search reorders it and every export runs it inside its step.
"""

import numpy as np
from keras import ops

#: What banned pieces get added: far below any log-probability, finite in float16 too.
BANNED = -1e4


def word_starts(pieces):
    """``(V,)`` bool: which vocabulary pieces start a word (see the module docstring).

    Args:
        pieces: The vocabulary's pieces, by id (``SentencePieceTokenizer.id_to_piece``).

    Example:
        >>> word_starts(["<pad>", "▁spec", "ial", "▁#Person1#", ":", "30"]).tolist()
        [True, True, False, True, True, False]
    """
    return np.array([not (p[:1].isalnum()) for p in pieces], bool)


def step(token_ids, match, source_ids, starts):
    """Follows the word being written by one piece and bans what would break it.

    Args:
        token_ids: ``(batch,)`` int32, the piece just written (the step's input).
        match: ``(batch, S)`` bool, source positions where the word before it ended.
        source_ids: ``(batch, S)`` int32, the source pieces (0 = padding).
        starts: ``(V,)`` bool, :func:`word_starts`.

    Returns:
        ``(match (batch, S) bool, banned (batch, V) bool)``: where the word now ends in the
        source, and the pieces the next step may not write.
    """
    vocab = ops.shape(starts)[0]
    begins = ops.take(starts, token_ids, axis=0)  # (b,) the piece starts a word
    before = ops.concatenate([ops.zeros_like(match[:, :1]), match[:, :-1]], axis=1)
    same = ops.logical_and(ops.equal(source_ids, ops.expand_dims(token_ids, -1)),
                           ops.not_equal(source_ids, 0))  # a finished row's padding
    match = ops.logical_and(same, ops.logical_or(ops.expand_dims(begins, -1), before))
    following = ops.concatenate([source_ids[:, 1:], ops.zeros_like(source_ids[:, :1])], 1)
    ends_there = ops.take(starts, following, axis=0)  # padding (id 0) is a special piece
    can_end = ops.logical_or(begins, ops.any(ops.logical_and(match, ends_there), axis=1))
    goes_on = ops.cast(ops.logical_and(match, ops.logical_not(ends_there)), "float32")
    # The pieces that continue a matching source word, scattered onto the vocabulary.
    rows = ops.expand_dims(ops.arange(ops.shape(source_ids)[0], dtype="int32") * vocab, -1)
    hits = ops.segment_sum(ops.reshape(goes_on, (-1,)),
                           ops.reshape(following + rows, (-1,)),
                           num_segments=ops.shape(source_ids)[0] * vocab)
    allowed = ops.greater(ops.reshape(hits, (-1, vocab)), 0.0)
    continues = ops.logical_not(ops.expand_dims(starts, 0))  # (1, V)
    banned = ops.where(continues, ops.logical_not(allowed),
                       ops.logical_not(ops.expand_dims(can_end, -1)))
    copying = ops.expand_dims(ops.any(match, axis=1), -1)  # rows writing a source word
    return match, ops.logical_and(copying, banned)
