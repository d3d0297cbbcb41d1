"""Score adjustments as small composable pieces: each takes a step's log-probabilities
``(batch, V)`` and returns them adjusted, the way logits processors and warpers work in other
generation libraries. A strategy lists the ones its options ask for
(:meth:`zoo.decoding.Strategy.processors`) and applies them in order with :func:`apply`.

Example:
    >>> import numpy as np
    >>> logp = np.log(np.full((1, 4), 0.25, "float32"))
    >>> out = apply([SpecialTokens(bos_id=1, eos_id=2, pad_id=0, min_length=2)], logp, 0)
    >>> (out.numpy()[0] < -1e8).tolist()  # pad, bos and (before min_length) eos are banned
    [True, True, True, False]
"""

from __future__ import annotations

from keras import ops

# Large negative instead of -inf: finite arithmetic (no inf - inf = NaN) in every dtype we use
# for scores (float32).
NEG = -1e9


def apply(processors, logp, step, tokens=None):
    """``logp`` through each processor in turn."""
    for processor in processors:
        logp = processor(logp, step, tokens)
    return logp


class Processor:
    """A score adjustment: ``(logp (batch, V), step, tokens so far) -> logp``."""

    #: Whether it reads the tokens generated so far (a loop then passes them).
    needs_tokens = False

    def __call__(self, logp, step, tokens=None):
        raise NotImplementedError


class SpecialTokens(Processor):
    """Pad and bos are never generated; eos not before ``min_length`` tokens; with
    ``first_id``, the first step writes that token (BART's ``<s>``).

    One constant ``(1, V)`` bias, added (onnxruntime broadcasts an add faster than a
    select); with ``min_length``, two constant biases and a select by the step rather than
    the eos ban rebuilt at every step (and the same for the first step).
    """

    def __init__(self, bos_id, eos_id, pad_id, min_length=0, first_id=None):
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        self.min_length, self.first_id = min_length, first_id

    def __call__(self, logp, step, tokens=None):
        ids = ops.arange(ops.shape(logp)[-1])
        never = ops.logical_or(ops.equal(ids, self.pad_id), ops.equal(ids, self.bos_id))
        # NEG + logp rounds to NEG in float32 for logp > -32.
        bias = ops.expand_dims(ops.where(never, NEG, 0.0), 0)
        # (A graph input's min_length is a tensor: both biases are then in the graph.)
        if not (isinstance(self.min_length, int) and self.min_length == 0):
            early = ops.expand_dims(ops.where(ops.logical_or(never, ops.equal(
                ids, self.eos_id)), NEG, 0.0), 0)
            bias = ops.where(step < self.min_length, early, bias)
        if self.first_id is not None:
            only = ops.expand_dims(ops.where(ops.equal(ids, self.first_id), 0.0, NEG), 0)
            bias = ops.where(step < 1, only, bias)
        return logp + bias


class NoRepeatNgram(Processor):
    """No token that would repeat an n-gram of the tokens generated so far (the other
    tokens keep their unrenormalised log-probabilities). ``n``: a Python int, or a scalar
    int32 tensor (an export's per-call setting; 0 bans nothing)."""

    needs_tokens = True

    def __init__(self, n):
        self.n = n

    def __call__(self, logp, step, tokens=None):
        from zoo.decoding.search import repeated_ngram_mask

        banned = repeated_ngram_mask(tokens, step, self.n, ops.shape(logp)[-1])
        return ops.where(banned, NEG, logp)


class Temperature(Processor):
    """Divides the scores by ``temperature`` (> 0): below 1 sharpens, above 1 flattens."""

    def __init__(self, temperature):
        self.temperature = temperature

    def __call__(self, logp, step=None, tokens=None):
        return ops.cast(logp, "float32") / self.temperature


class TopK(Processor):
    """Keeps the ``k`` highest scores of each row; the rest get ``NEG``."""

    def __init__(self, k):
        self.k = k

    def __call__(self, logp, step=None, tokens=None):
        kth = ops.top_k(logp, min(self.k, logp.shape[-1] or self.k))[0][:, -1:]
        return ops.where(logp < kth, NEG, logp)


class TopP(Processor):
    """Keeps the smallest set of tokens whose probability reaches ``p`` (nucleus)."""

    def __init__(self, p):
        self.p = p

    def __call__(self, logp, step=None, tokens=None):
        sorted_logits = ops.flip(ops.sort(logp, axis=-1), axis=-1)  # descending
        probs = ops.softmax(sorted_logits, axis=-1)
        before = ops.cumsum(probs, axis=-1) - probs  # mass of strictly better tokens
        # The smallest score still kept: the last sorted one whose preceding mass < p.
        keep = before < self.p
        threshold = ops.min(ops.where(keep, sorted_logits, 1e9), axis=-1, keepdims=True)
        return ops.where(logp < threshold, NEG, logp)
