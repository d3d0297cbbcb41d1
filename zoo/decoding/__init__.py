"""One decoding engine for every model, over a step-function protocol.

A model exposes ``step_fn(token_ids (batch,), state, memory) -> (logits (batch, vocab), state,
weights (batch, S))``: ``state`` is any nest of tensors whose leading axis is the batch and that
changes every step (beam search reorders it); ``memory`` is the constant per-source input (the
projected encoder output), repeated once per hypothesis and never reordered. The engine knows
nothing else about the model. Strategies:

* :class:`Greedy` - arg-max at each step.
* :class:`BeamSearch` - beam size, GNMT length and coverage penalties, min/max length, n-best,
  early stop.
* :class:`Sampling` - temperature, top-k, top-p (nucleus).

Every strategy returns a :class:`DecodingResult` of the same shapes: tokens
``(batch, n, max_length)``, scores ``(batch, n)``, lengths ``(batch, n)`` and attention
``(batch, n, max_length, S)`` (``n`` = 1 for greedy, ``n_best`` for beam search,
``num_samples`` for sampling). The loops are ``keras.ops.while_loop`` writing into preallocated
buffers with mask blends, so they run eagerly, inside ``tf.function`` (one graph), with XLA, and
convert to ONNX and LiteRT. Greedy decoding drops finished rows from the step's batch (a batch
costs the sum of its output lengths, not its size times the longest); that loop's batch axis
is dynamic, so XLA and fixed-shape graphs take ``strategy.with_static_shapes()``, which
``generate(jit_compile=True)`` and the LiteRT exporter do. A strategy's ``static_shapes`` also
tells the model which state to give: where shapes may change, a Transformer's key/value cache
grows a position a step instead of rolling a window of ``max_length``.

Beam search ranks, for each hypothesis, only its ``beam_size`` best tokens (their rank grows
with the token's log-probability, the rest of the score being the hypothesis's own), so a step
sorts ``beam_size ** 2`` candidates per sentence rather than ``beam_size * V``; the choice is
the full table's, ties included (tested against a textbook search).
"""

from zoo.decoding.search import (BeamSearch, DecodingResult, Greedy, Sampling, Strategy,
                                 REGISTRY, get)

__all__ = ["BeamSearch", "DecodingResult", "Greedy", "REGISTRY", "Sampling", "Strategy", "get"]
