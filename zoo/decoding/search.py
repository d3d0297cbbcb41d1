"""Greedy, beam search and sampling over a step function.

``step_fn(tokens, state, memory) -> (logits, state, weights)``: ``state`` changes every step and
is reordered by beam search; ``memory`` (the encoder's projected output) is constant: a strategy
repeats it once per hypothesis before the loop and never reorders it (the hypotheses of one
sentence share it), and compiled loops see it as a loop invariant rather than as loop-carried
state (ONNX ``Loop`` copies loop-carried tensors every iteration).
"""

from __future__ import annotations

import copy
import numbers
from typing import Any, NamedTuple

import keras
from keras import ops

from zoo.decoding.processors import (NEG, NoRepeatNgram, SpecialTokens, Temperature, TopK,
                                     TopP, apply)
from zoo.inputs import OPTION
from zoo.registry import Registry

#: The largest n-gram size an export's graphs take per call (the declared range's top).
MAX_NGRAM_SIZE = int(OPTION["no_repeat_ngram_size"].high)


class DecodingResult(NamedTuple):
    """What every strategy returns.

    Attributes:
        tokens: ``(batch, n, max_length)`` int32; after eos comes padding.
        scores: ``(batch, n)`` float32, best first: the log-probability, or for beam search
            the score it ranked by (with length/coverage penalties).
        lengths: ``(batch, n)`` int32, tokens up to and including eos.
        attention: ``(batch, n, max_length, S)`` float32 attention weights of each step.
    """

    tokens: Any
    scores: Any
    lengths: Any
    attention: Any


class Strategy:
    """Base of the decoding strategies (plain Python objects with a config).

    Attributes:
        static_shapes: True for a strategy from :meth:`with_static_shapes`: every tensor of
            its loop, the model's state included, keeps one shape (XLA, LiteRT). Otherwise
            the model may give a state that grows (a Transformer's cache). A property of the
            graph being built, not of the search, so not in the config.
    """

    static_shapes = False
    #: A scalar tensor (or None): stop before this many tokens, below ``max_length``, which
    #: sizes the buffers. What lets an exported graph take the maximum length per request.
    length_limit = None
    #: A tensor n-gram size that replaces ``no_repeat_ngram_size`` (:meth:`with_ngram_size`).
    ngram_size = None

    def __call__(self, step_fn, state, memory, batch_size, memory_length, max_length, bos_id,
                 eos_id, pad_id=0, min_length=0, memory_mask=None,
                 first_id=None) -> DecodingResult:
        """Decodes.

        Args:
            step_fn: ``(token_ids (batch,), state, memory) -> (logits, state, weights)``.
            state: Initial state nest, leading axis ``batch_size``; reordered by beam search.
            memory: Constant nest (leading axis ``batch_size``) passed to every step, or None.
            batch_size: Batch size (int or scalar tensor).
            memory_length: ``S``, the length of the attention weights.
            max_length: Maximum generated tokens (eos included); a Python int.
            bos_id: First input token.
            eos_id: End token.
            pad_id: Written after eos.
            min_length: Eos is forbidden before this many tokens.
            memory_mask: ``(batch, S)`` bool, the valid source positions (coverage penalty).
            first_id: The only token the first step may write (a model whose decoder reads
                two start tokens, such as BART's ``</s> <s>``); None: any.

        Returns:
            A :class:`DecodingResult`.
        """
        raise NotImplementedError

    def processors(self, bos_id, eos_id, pad_id, min_length=0, first_id=None) -> list:
        """The score adjustments of every step (:mod:`zoo.decoding.processors`): special
        tokens, min length and a forced first token, then n-gram blocking when asked."""
        out = [SpecialTokens(bos_id, eos_id, pad_id, min_length, first_id)]
        n = self.ngram_size if self.ngram_size is not None else \
            getattr(self, "no_repeat_ngram_size", 0)
        if not isinstance(n, int) or n:
            out.append(NoRepeatNgram(n))
        return out

    def with_static_shapes(self) -> "Strategy":
        """A copy of this strategy with every loop tensor of constant shape (for XLA and for
        graphs with a fixed batch, such as LiteRT's): the strategies that can shrink their
        batch do not, and the model keeps a fixed-size state (``static_shapes``)."""
        other = copy.copy(self)
        other.static_shapes = True
        return other

    def with_length_limit(self, limit) -> "Strategy":
        """A copy of this strategy whose loops also stop at ``limit`` tokens (a scalar int32
        tensor, at most ``max_length``): the graph keeps ``max_length``-wide buffers and
        gives the tokens a call with ``max_length=limit`` gives."""
        other = copy.copy(self)
        other.length_limit = limit
        return other

    def with_ngram_size(self, n) -> "Strategy":
        """A copy of this strategy whose n-gram blocking size is ``n``, a scalar int32 tensor
        in ``[0, MAX_NGRAM_SIZE]`` (0: off): an exported graph's per-call setting."""
        other = copy.copy(self)
        other.ngram_size = n
        return other

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_ngram(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"no_repeat_ngram_size must be an int >= 0 (0: off), got {n!r}")
    return n


REGISTRY = Registry("decoding strategy", Strategy)


def get(identifier, **kwargs) -> Strategy:
    """A strategy from a name (``"greedy"``, ``"beam"``, ``"sampling"``), config or instance."""
    if isinstance(identifier, Strategy):
        return identifier
    if isinstance(identifier, str):
        return REGISTRY.get_class(identifier)(**kwargs)
    return REGISTRY.get(identifier, **kwargs)


def _going(t, max_length, limit):
    """Whether step ``t`` is before the end: ``max_length``, and ``limit`` when given."""
    going = t < max_length
    return going if limit is None else ops.logical_and(going, t < limit)


def _check_lengths(max_length, min_length):
    if not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive Python int, got {max_length!r}")
    if not isinstance(min_length, numbers.Integral):
        return  # a graph input, checked by whoever feeds it
    if min_length < 0 or min_length > max_length:
        raise ValueError(f"min_length must be in [0, max_length={max_length}], got {min_length}")


def _log_probs(logits, step, processors, tokens=None):
    """Log-softmax in float32, then the strategy's score adjustments."""
    return apply(processors, ops.log_softmax(ops.cast(logits, "float32"), axis=-1), step, tokens)


def repeated_ngram_mask(tokens, step, n, vocab_size):
    """The tokens that would complete an n-gram already in ``tokens[:, :step]``.

    Position ``j < step`` repeats an n-gram when the ``n - 1`` tokens before it equal the last
    ``n - 1`` generated ones; its token is then banned: what Fairseq and Hugging Face call
    ``no_repeat_ngram_size``. Constant shapes (the earlier tokens are static shifts of the
    buffer), so it runs in compiled loops and exports.

    Args:
        tokens: ``(batch, L)`` int32, the tokens generated so far at positions ``< step``.
        step: Scalar int, the position being generated.
        n: The n-gram size: a Python int >= 0 (0: off; 1 bans every token already
            generated), or a scalar int32 tensor in ``[0, MAX_NGRAM_SIZE]`` (an export's
            per-call setting).
        vocab_size: ``V``.

    Returns:
        ``(batch, V)`` bool, True where the token is banned.

    Example:
        >>> import numpy as np
        >>> mask = repeated_ngram_mask(np.array([[5, 6, 5, 0]], "int32"), 3, 2, 8)
        >>> np.flatnonzero(mask.numpy()[0]).tolist()  # "5 6" exists, the last token is 5
        [6]
    """
    tokens = ops.cast(tokens, "int32")
    length, batch = tokens.shape[1], ops.shape(tokens)[0]
    static = isinstance(n, int)
    if length is None or (static and not 0 < n <= length):
        return ops.zeros((batch, vocab_size), "bool")
    positions = ops.arange(length, dtype="int32")
    match = ops.logical_and(ops.less(positions, step), ops.greater_equal(positions, n - 1))
    if not static:
        match = ops.logical_and(match, ops.greater(n, 0))
    match = ops.broadcast_to(ops.expand_dims(match, 0), (batch, length))
    k = ops.arange(1, min(n if static else MAX_NGRAM_SIZE, length), dtype="int32")  # (K,)
    if k.shape[0]:
        # All offsets at once (a few ops, not a few per offset: a step at batch 1 is short):
        # the token k before the step, and the token k before each position j.
        last = ops.take(tokens, ops.maximum(step - k, 0), axis=1)  # (batch, K)
        before = ops.take(tokens, ops.reshape(ops.maximum(
            ops.expand_dims(positions, 1) - k, 0), (-1,)), axis=1)  # (batch, L * K)
        same = ops.equal(ops.reshape(before, (batch, length, -1)), ops.expand_dims(last, 1))
        if not static:
            same = ops.logical_or(same, ops.greater_equal(k, n))  # beyond this call's n
        match = ops.logical_and(match, ops.all(same, axis=-1))
    # Scatter the matches onto the vocabulary: a segment sum over batch * V segments.
    segments = tokens + ops.expand_dims(ops.arange(batch, dtype="int32") * vocab_size, -1)
    hits = ops.segment_sum(ops.reshape(ops.cast(match, "float32"), (-1,)),
                           ops.reshape(segments, (-1,)), num_segments=batch * vocab_size)
    return ops.greater(ops.reshape(hits, (batch, vocab_size)), 0.0)


def _argmax(x):
    """Arg-max over the last axis via top_k: Keras's TF ``argmax`` adds bitcast ops (a flush-
    to-zero workaround) that ONNX cannot convert. Ties go to the lowest index, as argmax."""
    return ops.top_k(x, 1)[1][..., 0]


def _best(logp):
    """Greedy's choice: the arg-max token and its log-probability, both from one ``top_k``
    (gathering the chosen log-probability again cost a gather and its index arithmetic in
    every step of the loop)."""
    values, indices = ops.top_k(logp, 1)
    return ops.cast(indices[..., 0], "int32"), values[..., 0]


def _best_by_reduction(logp):
    """:func:`_best` as two reductions, for XLA: the largest log-probability, and the first
    token that reaches it (ties to the lowest index, as ``top_k``). XLA on CPU runs ``top_k``
    as a sort custom call and fuses reductions, so this is faster there; onnxruntime's
    ``TopK`` is the faster in exports (figures: docs/RESULTS.md, "Decoding loop design").
    Keras's float ``argmax`` is avoided for ``_argmax``'s reason; this one reads booleans."""
    values = ops.max(logp, -1, keepdims=True)  # (b, 1)
    tok = ops.argmax(ops.cast(ops.equal(logp, values), "int32"), -1)
    return ops.cast(tok, "int32"), values[..., 0]


def _gained(logp, tok):
    """``logp[row, tok[row]]``: what the chosen tokens add to the scores."""
    return ops.take_along_axis(logp, ops.expand_dims(tok, -1), axis=-1)[:, 0]


def _write(buffer, step, values):
    """buffer[:, step] = values with a position mask (no scatter, no one_hot of a scalar)."""
    length = ops.shape(buffer)[1]
    here = ops.equal(ops.arange(length), step)  # (L,)
    shape = [1, -1] + [1] * (len(buffer.shape) - 2)
    return ops.where(ops.reshape(here, shape), ops.expand_dims(values, 1), buffer)


@REGISTRY.register("greedy")
class Greedy(Strategy):
    """Arg-max decoding.

    Args:
        no_repeat_ngram_size: Never generate an n-gram of this size twice (0: off).
        compact: Drop finished rows from the batch as the loop goes, so a batch costs the
            sum of its output lengths rather than its size times the longest (the loop's
            batch axis then has a dynamic size: XLA and fixed-shape LiteRT graphs use
            :meth:`with_static_shapes`). A batch of one keeps its row masked: its only row
            finishing ends the loop anyway. Same tokens either way.

    Example:
        >>> import numpy as np
        >>> from keras import ops
        >>> table = np.log(np.array([[.1, .2, .1, .6], [.1, .1, .7, .1]], "float32"))
        >>> def step_fn(tokens, state, memory):  # token 3 first, then eos (2)
        ...     t = state["t"]
        ...     return ops.take(table, t, axis=0), {"t": t + 1}, ops.ones((1, 1))
        >>> r = Greedy()(step_fn, {"t": ops.zeros((1,), "int32")}, None, 1, 1, 4, bos_id=1,
        ...              eos_id=2, pad_id=0)
        >>> r.tokens.numpy().tolist(), r.lengths.numpy().tolist()
        ([[[3, 2, 0, 0]]], [[2]])
    """

    def __init__(self, no_repeat_ngram_size=0, compact=True):
        self.no_repeat_ngram_size = _check_ngram(no_repeat_ngram_size)
        self.compact = bool(compact)

    def get_config(self):
        return {"no_repeat_ngram_size": self.no_repeat_ngram_size, "compact": self.compact}

    def with_static_shapes(self):
        other = copy.copy(self)  # (keeps a per-call length limit and n-gram size)
        other.compact, other.static_shapes = False, True
        return other

    def __call__(self, step_fn, state, memory, batch_size, memory_length, max_length, bos_id,
                 eos_id, pad_id=0, min_length=0, memory_mask=None,
                 first_id=None):
        _check_lengths(max_length, min_length)
        # Constant shapes are XLA's (and fixed-shape LiteRT's) loops: reductions fuse there.
        choose = _best_by_reduction if self.static_shapes else _best
        args = (choose, step_fn, state, memory, batch_size, memory_length, max_length, bos_id,
                eos_id, pad_id, self.processors(bos_id, eos_id, pad_id, min_length, first_id))
        if self.compact:
            tokens, scores, lengths, attn = _compacting_unless_one(*args,
                                                                   limit=self.length_limit)
        else:
            tokens, scores, lengths, attn = _greedy_loop(_Masked(), *args,
                                                         limit=self.length_limit)
        return DecodingResult(tokens[:, None], scores[:, None], lengths[:, None],
                              attn[:, None])


class _Masked:
    """Greedy's rows when shapes stay constant: a finished row stays in the step's batch and
    its outputs are masked (XLA, fixed-shape LiteRT graphs, sampling, a batch of one)."""

    carries_memory = False  # the memory stays outside the loop, as every row stays

    @staticmethod
    def start(b, bos_id, state, memory):
        return ops.zeros((b,), "bool"), ops.full((b,), bos_id, "int32"), state, {}

    @staticmethod
    def going(live):
        return ops.logical_not(ops.all(live[0]))

    @staticmethod
    def history(tokens, live):
        return tokens

    @staticmethod
    def place(live, values, fill=0):
        """``values`` of the step's rows in a full batch, ``fill`` for the finished rows."""
        alive = ops.reshape(ops.logical_not(live[0]), (-1,) + (1,) * (len(values.shape) - 1))
        return ops.where(alive, values, fill)

    @staticmethod
    def advance(live, tok, written, st, eos_id):
        return ops.logical_or(live[0], ops.equal(written, eos_id)), written, st, live[3]


class _Compacted:
    """Greedy's rows when finished rows leave the step's batch: the loop carries the live
    rows only (original row number, last token, state, memory), so a batch costs the sum of
    its output lengths. The batch axis is dynamic from the start (gathered by a ``nonzero``
    index) so that a graph accepts its shrinking; the rows are gathered at every step (a
    conditional skipping the gather cost onnxruntime more than the gather)."""

    carries_memory = True

    def __init__(self, b, memory_length):
        # Zeros to scatter into, made once: ``ops.scatter`` builds them in every step.
        self.zeros = {"int32": ops.zeros((b,), "int32"), "float32": ops.zeros((b,), "float32"),
                      "attn": ops.zeros((b, memory_length), "float32")}

    @staticmethod
    def start(b, bos_id, state, memory):
        rows = ops.nonzero(ops.ones((b,), "bool"))[0]  # (b,) int32, dynamic length
        return (rows, ops.full_like(rows, bos_id), _gather_batch(state, rows),
                _gather_batch(memory, rows))

    @staticmethod
    def going(live):
        return ops.shape(live[0])[0] > 0

    @staticmethod
    def history(tokens, live):
        return ops.take(tokens, live[0], axis=0)

    def place(self, live, values, fill=0):
        zeros = self.zeros["attn" if len(values.shape) == 2 else
                           keras.backend.standardize_dtype(values.dtype)]
        at = ops.expand_dims(live[0], -1)
        if fill == 0:
            return ops.scatter_update(zeros, at, values)
        return ops.scatter_update(zeros, at, values - fill) + fill

    @staticmethod
    def advance(live, tok, written, st, eos_id):
        keep = ops.nonzero(ops.not_equal(tok, eos_id))[0]  # the rows that go on
        return (ops.take(live[0], keep, axis=0), ops.take(tok, keep, axis=0),
                _gather_batch(st, keep), _gather_batch(live[3], keep))


def _compacting_unless_one(choose, step_fn, state, memory, b, memory_length, *args,
                           limit=None):
    """The greedy loop with compacted rows, except that a batch of one keeps its row masked:
    its only row finishing ends the loop anyway, and compacting it gathers every cache and
    memory tensor at every step for nothing. Where the batch size is known only when the
    graph runs (an export), both are in the graph side by side, each told by ``run`` whether
    to take any step, and ``where`` picks the outputs of the one that ran (inside the
    branches of a conditional, onnxruntime ran the compacting loop slower)."""
    if isinstance(b, numbers.Integral):
        rows = _Masked() if b == 1 else _Compacted(b, memory_length)
        return _greedy_loop(rows, choose, step_fn, state, memory, b, memory_length, *args,
                            limit=limit)
    one = ops.equal(b, 1)
    masked = _greedy_loop(_Masked(), choose, step_fn, state, memory, b, memory_length, *args,
                          limit=limit, run=one)
    shrunk = _greedy_loop(_Compacted(b, memory_length), choose, step_fn, state, memory, b, memory_length, *args,
                          limit=limit, run=ops.logical_not(one))
    return tuple(ops.where(one, m, c) for m, c in zip(masked, shrunk))


def _greedy_loop(rows, choose, step_fn, state, memory, b, memory_length, max_length, bos_id,
                 eos_id, pad_id, processors, limit=None, run=None):
    """The one loop of greedy decoding and sampling: one hypothesis per row, ``choose(logp)
    -> (tokens, their log-probabilities)`` picks its next token; ``rows`` (:class:`_Masked`
    or :class:`_Compacted`) says what happens to a finished row; ``run`` (a scalar bool)
    whether to take any step. Returns tokens (b, L), scores (b,), lengths (b,) and attention
    (b, L, S)."""
    carried = rows.carries_memory and memory is not None  # a loop cannot carry None
    init = (ops.convert_to_tensor(0, "int32"),
            rows.start(b, bos_id, state, memory if carried else {}),
            ops.zeros((b, max_length), "int32"), ops.zeros((b,), "float32"),
            ops.zeros((b,), "int32"), ops.zeros((b, max_length, memory_length), "float32"))
    needs_tokens = any(p.needs_tokens for p in processors)

    def cond(t, live, tokens, scores, lengths, attn):
        going = ops.logical_and(_going(t, max_length, limit), rows.going(live))
        return going if run is None else ops.logical_and(going, run)

    def body(t, live, tokens, scores, lengths, attn):
        logits, st, w = step_fn(live[1], live[2], live[3] if carried else memory)
        history = rows.history(tokens, live) if needs_tokens else None
        tok, gained = choose(_log_probs(logits, t, processors, history))
        written = rows.place(live, tok, pad_id)  # pad for the rows that finished earlier
        scores = scores + rows.place(live, gained)
        lengths = lengths + rows.place(live, ops.ones_like(tok))
        attn = _write(attn, t, rows.place(live, ops.cast(w, "float32")))
        live = rows.advance(live, tok, written, st, eos_id)
        return t + 1, live, _write(tokens, t, written), scores, lengths, attn

    out = ops.while_loop(cond, body, init, maximum_iterations=max_length)
    return out[2], out[3], out[4], out[5]


def _gather_batch(tree, indices):
    return keras.tree.map_structure(lambda x: ops.take(x, indices, axis=0), tree)


def _pick(x, flat_index, shape):
    """``x.reshape(-1)[flat_index]`` reshaped to ``shape``."""
    return ops.reshape(ops.take(ops.reshape(x, (-1,)), ops.reshape(flat_index, (-1,)),
                                axis=0), shape)


def _tile(tree, times):
    """(batch, ...) -> (batch * times, ...), each row repeated ``times`` times in a block.

    A gather, not ``repeat``: TensorFlow's repeat reshapes through the tensor's shape, and
    in ONNX a reshape to a shape holding 0 (an empty, growing cache) copies the input's
    dimension instead.
    """
    def tile(x):
        rows = ops.arange(ops.shape(x)[0] * times, dtype="int32") // times
        return ops.take(x, rows, axis=0)

    return keras.tree.map_structure(tile, tree)


@REGISTRY.register("beam", aliases=("beam_search",))
class BeamSearch(Strategy):
    """Beam search with the GNMT length and coverage penalties (Wu et al. 2016).

    Candidates are ranked by ``log P(y) / lp(y) + cp(y)`` with
    ``lp = ((5 + |y|) / 6) ** length_penalty`` and
    ``cp = coverage_penalty * sum_i log(min(sum_t a_ti, 1))`` over valid source positions.
    Finished hypotheses stay in the beam and compete with the live ones; the search ends when
    every beam has finished (or at ``max_length``), or with ``early_stop`` as soon as the best
    hypothesis of every sentence has finished.

    Args:
        beam_size: Hypotheses kept per sentence.
        length_penalty: GNMT ``alpha``; 0 ranks by log-probability.
        coverage_penalty: GNMT ``beta``; 0 disables it.
        n_best: Hypotheses returned per sentence (<= beam_size).
        early_stop: Stop when the best hypothesis of every sentence has finished.
        no_repeat_ngram_size: No hypothesis repeats an n-gram of this size (0: off).

    Example:
        >>> s = BeamSearch(beam_size=4, length_penalty=0.6, n_best=2)
        >>> s.get_config()["beam_size"]
        4
    """

    def __init__(self, beam_size=4, length_penalty=0.0, coverage_penalty=0.0, n_best=1,
                 early_stop=True, no_repeat_ngram_size=0):
        # The beam size and the penalties may also be scalar tensors (an exported graph
        # takes them as inputs); the caller checks those.
        fixed = isinstance(beam_size, numbers.Integral)
        if fixed and int(beam_size) < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        if not 1 <= int(n_best) <= (int(beam_size) if fixed else int(n_best)):
            raise ValueError(f"n_best must be in [1, beam_size={beam_size}], got {n_best}")
        for nm, v in (("length_penalty", length_penalty),
                      ("coverage_penalty", coverage_penalty)):
            if isinstance(v, (int, float)) and v < 0:
                raise ValueError(f"{nm} must be >= 0, got {v}")
        self.beam_size = int(beam_size) if fixed else beam_size
        self.n_best = int(n_best)
        self.length_penalty = (float(length_penalty) if isinstance(length_penalty, (int, float))
                               else length_penalty)
        self.coverage_penalty = (float(coverage_penalty)
                                 if isinstance(coverage_penalty, (int, float))
                                 else coverage_penalty)
        self.early_stop = bool(early_stop)
        self.no_repeat_ngram_size = _check_ngram(no_repeat_ngram_size)

    def get_config(self):
        return {"beam_size": self.beam_size, "length_penalty": self.length_penalty,
                "coverage_penalty": self.coverage_penalty, "n_best": self.n_best,
                "early_stop": self.early_stop,
                "no_repeat_ngram_size": self.no_repeat_ngram_size}

    @staticmethod
    def _vocab(logits):
        v = logits.shape[-1]
        return None if v is None else int(v)

    def _rank(self, logprob, lengths, coverage, mask):
        score = logprob
        if not isinstance(self.length_penalty, float) or self.length_penalty:
            lp = ops.power((5.0 + ops.cast(lengths, "float32")) / 6.0,
                           ops.cast(self.length_penalty, "float32"))
            score = score / lp
        if not isinstance(self.coverage_penalty, float) or self.coverage_penalty:
            cov = ops.log(ops.clip(coverage, 1e-10, 1.0))  # (..., S)
            cov = ops.sum(ops.where(mask, cov, 0.0), axis=-1)
            score = score + ops.cast(self.coverage_penalty, "float32") * cov
        return score

    def _continuations(self, logp, fin, b, kk, pad_id):
        """Each hypothesis's ``kk`` best next tokens and their log-probabilities, ``(b, k,
        kk)``.

        A hypothesis's candidates differ only in the token's log-probability (its length and
        coverage are the same for all), and the rank grows with it, so the k best of each
        hypothesis hold the k best of the sentence: rank k * k candidates, not k * V (see
        docs/RESULTS.md for what ranking every token cost). Ties fall as over the full
        table: lower beam, then lower token id.
        """
        k = self.beam_size
        top_logp, top_tok = ops.top_k(logp, kk)  # (bk, kk)
        top_logp = ops.reshape(top_logp, (b, k, kk))
        top_tok = ops.reshape(ops.cast(top_tok, "int32"), (b, k, kk))
        # A finished (or frozen) hypothesis has one continuation, pad, at no cost; its other
        # candidates are the lowest other ids at NEG, as the full table ranks them. (Written
        # with ops, so the beam size may be a tensor.)
        slot = ops.arange(kk, dtype="int32")
        other = slot - 1  # the (i - 1)-th id that is not pad
        frozen_tok = ops.where(ops.equal(slot, 0), pad_id,
                               ops.where(ops.less(other, pad_id), other, other + 1))
        frozen_logp = ops.where(ops.equal(slot, 0), 0.0, NEG)
        step_logp = ops.where(fin, frozen_logp, top_logp)
        return step_logp, ops.where(fin, frozen_tok, top_tok)

    def _start(self, b, state, memory_length, max_length, bos_id):
        """The loop's initial values: step, previous tokens, state, tokens, log-probs,
        lengths, finished, attention, coverage and ranking scores."""
        k = self.beam_size
        bk = b * k
        # Only beam 0 is live at the start, so the first expansion has no duplicates.
        first = ops.where(ops.equal(ops.arange(k, dtype="int32"), 0), 0.0, NEG)
        return (ops.convert_to_tensor(0, "int32"), ops.full((bk,), bos_id, "int32"), state,
                ops.zeros((bk, max_length), "int32"),
                ops.tile(ops.expand_dims(first, 0), (b, 1)),  # log-probs (b, k)
                ops.zeros((b, k), "int32"),  # lengths
                ops.zeros((b, k), "bool"),  # finished
                ops.zeros((bk, max_length, memory_length), "float32"),
                ops.zeros((b, k, memory_length), "float32"),  # coverage
                ops.zeros((b, k), "float32"))  # ranking scores

    def __call__(self, step_fn, state, memory, batch_size, memory_length, max_length, bos_id,
                 eos_id, pad_id=0, min_length=0, memory_mask=None,
                 first_id=None):
        _check_lengths(max_length, min_length)
        b, k = batch_size, self.beam_size
        bk = b * k
        state, memory = _tile(state, k), _tile(memory, k)
        if memory_mask is None:
            memory_mask = ops.ones((b, memory_length), "bool")
        mask = ops.reshape(_tile(ops.cast(memory_mask, "bool"), k), (b, k, 1, -1))
        init = self._start(b, state, memory_length, max_length, bos_id)

        processors = self.processors(bos_id, eos_id, pad_id, min_length, first_id)

        def cond(t, prev, st, tokens, logprob, lengths, finished, attn, cov, score):
            if self.early_stop:
                done = ops.all(finished[:, 0])  # beams are sorted by score
            else:
                done = ops.all(finished)
            return ops.logical_and(_going(t, max_length, self.length_limit),
                                   ops.logical_not(done))

        def body(t, prev, st, tokens, logprob, lengths, finished, attn, cov, score):
            logits, st, w = step_fn(prev, st, memory)
            logp = _log_probs(logits, t, processors, tokens)
            w = ops.reshape(ops.cast(w, "float32"), (b, k, -1))
            # A sentence whose search is over (its best hypothesis finished, with early_stop;
            # every hypothesis finished, without) is frozen, so a sentence decodes the same
            # alone or in any batch.
            row_done = finished[:, 0] if self.early_stop else ops.all(finished, axis=1)
            frozen = ops.logical_or(finished, ops.expand_dims(row_done, -1))  # (b, k)
            fin = ops.expand_dims(frozen, -1)  # (b, k, 1)
            vocab = self._vocab(logits)
            if isinstance(k, int):
                kk = k if vocab is None else min(k, vocab)
            else:
                kk = k if vocab is None else ops.minimum(k, vocab)
            step_logp, top_tok = self._continuations(logp, fin, b, kk, pad_id)
            cand_logprob = ops.expand_dims(logprob, -1) + step_logp  # (b, k, kk)
            cand_len = lengths + ops.cast(ops.logical_not(frozen), "int32")  # (b, k)
            new_cov = cov + ops.where(fin, 0.0, w)  # (b, k, S)
            cand_score = self._rank(cand_logprob, ops.expand_dims(cand_len, -1),
                                    ops.expand_dims(new_cov, 2), mask)  # (b, k, kk)
            top_score, top_idx = ops.top_k(ops.reshape(cand_score, (b, -1)), k)  # (b, k)
            beam = top_idx // kk
            offsets = ops.expand_dims(ops.arange(b, dtype="int32") * (k * kk), -1)
            tok = _pick(top_tok, top_idx + offsets, (b, k))
            flat = ops.reshape(beam + ops.expand_dims(ops.arange(b) * k, -1), (-1,))
            # Flat gathers rather than take_along_axis, which broadcasts its indices (shape
            # reads, two BroadcastTo and an index wrap per call in an exported loop).
            logprob = _pick(cand_logprob, top_idx + offsets, (b, k))
            lengths = _pick(cand_len, flat, (b, k))
            was_finished = _pick(finished, flat, (b, k))
            was_frozen = _pick(frozen, flat, (b, k))
            cov = ops.take(ops.reshape(new_cov, (bk, -1)), flat, axis=0)
            cov = ops.reshape(cov, (b, k, -1))
            st = _gather_batch(st, flat)
            tokens = _write(ops.take(tokens, flat, axis=0), t, ops.reshape(tok, (-1,)))
            w_sel = ops.take(ops.reshape(w, (bk, -1)), flat, axis=0)
            alive = ops.reshape(ops.logical_not(was_frozen), (-1, 1))
            attn = _write(ops.take(attn, flat, axis=0), t, ops.where(alive, w_sel, 0.0))
            finished = ops.logical_or(was_finished, ops.logical_and(
                ops.equal(tok, eos_id), ops.logical_not(was_frozen)))
            return (t + 1, ops.reshape(tok, (-1,)), st, tokens, logprob, lengths, finished,
                    attn, cov, top_score)

        out = ops.while_loop(cond, body, init, maximum_iterations=max_length)
        _, _, _, tokens, _, lengths, _, attn, _, score = out
        n = self.n_best
        tokens = ops.reshape(tokens, (b, k, max_length))[:, :n]
        attn = ops.reshape(attn, (b, k, max_length, -1))[:, :n]
        return DecodingResult(tokens, score[:, :n], lengths[:, :n], attn)


@REGISTRY.register("sampling", aliases=("sample",))
class Sampling(Strategy):
    """Ancestral sampling with temperature, top-k and top-p (nucleus) filtering.

    Args:
        temperature: Divides the logits (> 0).
        top_k: Keep the ``top_k`` most likely tokens (0: all).
        top_p: Keep the smallest set of tokens whose probability reaches ``top_p`` (1: all).
        num_samples: Samples per input, returned as ``n`` (unsorted).
        seed: Integer seed; the same seed gives the same samples.
        no_repeat_ngram_size: No sample repeats an n-gram of this size (0: off).

    Example:
        >>> Sampling(temperature=0.7, top_p=0.9).get_config()["top_p"]
        0.9
    """

    def __init__(self, temperature=1.0, top_k=0, top_p=1.0, num_samples=1, seed=None,
                 no_repeat_ngram_size=0):
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if int(top_k) < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.temperature, self.top_k, self.top_p = float(temperature), int(top_k), float(top_p)
        self.num_samples, self.seed = int(num_samples), seed
        self.no_repeat_ngram_size = _check_ngram(no_repeat_ngram_size)
        # Created here, not per call: a tf.function may only create variables once.
        self._seed_generator = keras.random.SeedGenerator(seed)

    def get_config(self):
        return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                "num_samples": self.num_samples, "seed": self.seed,
                "no_repeat_ngram_size": self.no_repeat_ngram_size}

    def warpers(self) -> list:
        """What reshapes the distribution a sample is drawn from (not the scores):
        temperature, then top-k, then top-p."""
        out = [Temperature(self.temperature)]
        if self.top_k:
            out.append(TopK(self.top_k))
        if self.top_p < 1.0:
            out.append(TopP(self.top_p))
        return out

    def filter_logits(self, logits):
        """Temperature, then top-k, then top-p; filtered entries get a large negative value."""
        return apply(self.warpers(), logits, None)

    def __call__(self, step_fn, state, memory, batch_size, memory_length, max_length, bos_id,
                 eos_id, pad_id=0, min_length=0, memory_mask=None,
                 first_id=None):
        _check_lengths(max_length, min_length)
        n = self.num_samples
        seed = self._seed_generator

        def choose(logp):
            filtered = self.filter_logits(logp)
            # Gumbel-max: the arg-max of logits + Gumbel noise is a sample of softmax(logits).
            u = keras.random.uniform(ops.shape(filtered), minval=1e-9, maxval=1.0, seed=seed)
            tok = ops.cast(_argmax(filtered - ops.log(-ops.log(u))), "int32")
            return tok, _gained(logp, tok)

        tokens, scores, lengths, attn = _greedy_loop(
            _Masked(), choose, step_fn, _tile(state, n), _tile(memory, n), batch_size * n, memory_length,
            max_length, bos_id, eos_id, pad_id,
            self.processors(bos_id, eos_id, pad_id, min_length, first_id), limit=self.length_limit)
        return DecodingResult(ops.reshape(tokens, (batch_size, n, max_length)),
                              ops.reshape(scores, (batch_size, n)),
                              ops.reshape(lengths, (batch_size, n)),
                              ops.reshape(attn, (batch_size, n, max_length, -1)))
