"""Whole-word copying: a word that a copying decoder starts like a source word ends as one.

A pointer-generator copies subword pieces one at a time, so it can start a word with the
pieces of one source word and go on with pieces of another ("specia" + "ist" -> "speciaist").
While the word being written matches the start of one or more source words, this constraint
allows only the pieces that continue one of them, and lets the word end only where one of them
ends (or where the word is a single piece, a word of the vocabulary). Words that match no source
word are generated freely. A user-defined piece (a speaker tag such as ``#Person1#``, the turn
separator) is written only when the source holds it: a model trained on dialogues with tags
does not put ``#Person1#`` into the summary of a dialogue between Amanda and Hannah, nor spell
it out with the pieces ``#``, ``Person``, ``1``, ``#`` (a piece holding a tag's mark, ``#``,
is held to the same rule).

A word is a run of letters and digits. A piece continues the word before it when it starts with
a letter or digit (no ``▁``) and the piece before it ended with one; anything else ends the
word: ``▁``-pieces, punctuation (``'s`` after a name), speaker tags and special tokens. Pieces
without a letter or digit (``'``, ``.``) are no word at all. A copied word never has a speaker
tag (a user-defined piece) glued to its end ("Pa#Person1#"): in the source a space comes
between them.

The state, carried in the decoder state (so beam search reorders it and every export runs it
inside its step), is one boolean per source position (``match``: the word so far ends there)
and one per row (``open``: the last piece ended with a letter or digit).
"""

import numpy as np
from keras import ops

from zoo.inputs import SPECIAL_IDS
from zoo.layers.base import scatter_onto_vocabulary

#: What banned pieces get added: far below any log-probability, finite in float16 too.
BANNED = -1e4


def piece_kinds(pieces, symbols=()):
    """``(5, V)`` bool rows, by piece: *starts* (its first character is no letter or digit,
    so it never continues a word), *opens* (its last character is one: a word may go on
    after it), *wordy* (it holds one at all), *ends* (it may end a copied word: a start
    that is not one of ``symbols``) and *symbols* (one of ``symbols``, or a piece holding one
    of their marks, such as ``#``: written only when the source holds it, so that a banned
    tag cannot be spelled out piece by piece, "#" "Person" "1" "#").

    Args:
        pieces: The vocabulary's pieces, by id (``SentencePieceTokenizer.id_to_piece``).
        symbols: The user-defined pieces (speaker tags, the turn separator).

    Example:
        >>> pieces = ["<pad>", "<unk>", "<s>", "</s>", "▁spec", "ial", "'s", "#P1#", "▁#"]
        >>> kinds = piece_kinds(pieces, {"#P1#"})
        >>> kinds.astype(int).tolist()  # doctest: +NORMALIZE_WHITESPACE
        [[1, 1, 1, 1, 1, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1, 0, 0],
         [1, 1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0, 1, 0, 1],
         [0, 0, 0, 0, 0, 0, 0, 1, 1]]
    """
    starts = [not p[:1].isalnum() for p in pieces]
    marks = {c for s in symbols for c in s if not c.isalnum() and c != "▁"}
    # The special pieces (<pad>, </s>, ...) are never marks: eos must stay writable.
    marked = [i >= len(SPECIAL_IDS) and (p in symbols or any(c in marks for c in p))
              for i, p in enumerate(pieces)]
    return np.array([starts, [p[-1:].isalnum() for p in pieces],
                     [any(c.isalnum() for c in p) for p in pieces],
                     [s and p not in symbols for s, p in zip(starts, pieces)],
                     marked], bool)


def initial(memory_mask):
    """The state before the first piece: no word, nothing open. ``memory_mask``: (b, S)."""
    match = ops.zeros_like(memory_mask, "bool")
    return {"match": match, "open": ops.any(match, axis=1)}


def step(token_ids, state, source_ids, kinds):
    """Follows the word being written by one piece and bans what would break it.

    Args:
        token_ids: ``(batch,)`` int32, the piece just written (the step's input).
        state: ``{"match": (batch, S) bool, "open": (batch,) bool}`` before it.
        source_ids: ``(batch, S)`` int32, the source pieces (0 = padding).
        kinds: ``(5, V)`` bool, :func:`piece_kinds`.

    Returns:
        ``(state, banned (batch, V) bool)``: the state after the piece, and the pieces the
        next step may not write.
    """
    starts, opens, wordy, ends, symbols = (kinds[i] for i in range(5))
    vocab = ops.shape(starts)[0]
    begins = ops.logical_or(ops.take(starts, token_ids, axis=0),
                            ops.logical_not(state["open"]))  # (b,) a new word
    before = ops.concatenate([ops.zeros_like(state["match"][:, :1]),
                              state["match"][:, :-1]], axis=1)
    same = ops.logical_and(ops.equal(source_ids, ops.expand_dims(token_ids, -1)),
                           ops.not_equal(source_ids, 0))  # not a finished row's padding
    match = ops.logical_and(same, ops.logical_or(ops.expand_dims(begins, -1), before))
    match = ops.logical_and(match, ops.expand_dims(ops.take(wordy, token_ids, axis=0), -1))
    is_open = ops.take(opens, token_ids, axis=0)  # the word may go on after this piece
    following = ops.concatenate([source_ids[:, 1:], ops.zeros_like(source_ids[:, :1])], 1)
    ends_there = ops.take(starts, following, axis=0)  # padding (id 0) is a special piece
    can_end = ops.logical_or(begins, ops.any(ops.logical_and(match, ends_there), axis=1))
    goes_on = ops.cast(ops.logical_and(match, ops.logical_not(ends_there)), "float32")
    # The pieces that continue a matching source word, put onto the vocabulary the way the
    # copy distribution puts its attention there.
    allowed = ops.greater(scatter_onto_vocabulary(goes_on, following, vocab), 0.0)
    continues = ops.logical_not(ops.expand_dims(starts, 0))  # (1, V)
    may_end = ops.logical_and(ops.expand_dims(can_end, -1), ops.expand_dims(ends, 0))
    banned = ops.where(continues, ops.logical_not(allowed), ops.logical_not(may_end))
    copying = ops.logical_and(ops.any(match, axis=1), is_open)  # an open word from the source
    in_source = ops.greater(scatter_onto_vocabulary(
        ops.cast(ops.not_equal(source_ids, 0), "float32"), source_ids, vocab), 0.0)
    unsourced = ops.logical_and(ops.expand_dims(symbols, 0), ops.logical_not(in_source))
    return ({"match": match, "open": is_open},
            ops.logical_or(ops.logical_and(ops.expand_dims(copying, -1), banned), unsourced))
