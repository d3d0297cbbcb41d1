"""The attention contract shared by every variant.

An attention layer maps a query sequence onto a memory (``value``, optionally a separate
``key``). The base class owns everything that is not the score: input checking, casting,
masking (implicit Keras masks and explicit ones), the normalisation (a masked softmax computed
in float32, so float16 never sees a large negative fill), dropout on the weights, the weighted
sum and the query mask. A variant writes a score and, if it needs them, a memory projection and
a step state.

Three ways in, each with one return shape:

* ``layer(query=..., value=...)`` -> context ``(batch, Tq, dim_out)``. For Keras models.
* ``layer.attend(query=..., value=...)`` -> ``(context, weights)``, weights ``(batch, Tq, Tv)``
  (``multi_head``: ``(batch, heads, Tq, Tv)``).
* ``memory = layer.prepare(value=...)``; ``state = layer.initial_state(batch, Tv)``;
  ``context, weights, state = layer.step(query, memory, state)`` with a single query
  ``(batch, dim_q)``: context ``(batch, dim_out)``, weights ``(batch, Tv)``. Every variant has
  it; for stateless variants the state is an empty dict. Decoders use this, and a stateful
  variant's full call equals stepping through its queries.
"""

from __future__ import annotations

import zlib
from typing import Any, Dict, Optional, Tuple

import keras
from keras import ops

from zoo.registry import Registry

# Scores are normalised in float32 whatever the compute dtype, so this fill is safe under
# mixed_float16 and bfloat16; masked weights are also multiplied by the mask afterwards, so
# they are exactly zero and a fully masked row gives zeros instead of a uniform row or NaN.
_MASK_FILL = -1e9


def _static_dim(shape, axis):
    try:
        dim = shape[axis]
    except (IndexError, TypeError):
        return None
    return None if dim is None else int(dim)


class Attention(keras.layers.Layer):
    """Base class of every zoo attention variant.

    Args:
        dropout: Dropout rate on the attention weights (applied in training only; the returned
            weights are the ones before dropout).
        seed: Seed of the dropout.
        **kwargs: Keras layer arguments (``name``, ``dtype``...).

    Subclasses implement ``_score`` and, when needed, ``build_memory``/``_prepare``,
    ``_normalize``, ``_combine``, ``_output_dim`` and, for stateful variants,
    ``initial_state`` and ``_next_state`` with ``has_state = True``.

    Example:
        >>> import numpy as np, zoo
        >>> layer = zoo.attention.get("scaled_dot")
        >>> q = np.ones((2, 3, 4), "float32"); v = np.ones((2, 5, 4), "float32")
        >>> context, weights = layer.attend(query=q, value=v)
        >>> tuple(context.shape), tuple(weights.shape)
        ((2, 3, 4), (2, 3, 5))
    """

    #: True when the variant carries a state from one query step to the next.
    has_state = False
    #: True when the weights carry a head axis: (batch, heads, Tq, Tv).
    has_heads = False
    #: False for a variant whose scores ignore the query and keys (``uniform``).
    content_based = True
    #: True when the weights read the memory mask beyond hiding keys (a window centred on
    #: the source length, a monotonic walk): ``step`` then makes an all-true mask where the
    #: memory has none.
    reads_memory_mask = False
    #: Set by the registry.
    registry_name = None

    def __init__(self, dropout: float = 0.0, seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.dropout = float(dropout)
        self.seed = seed
        self.supports_masking = True
        self._dropout_layer = (
            keras.layers.Dropout(self.dropout, seed=seed, dtype=self.dtype_policy)
            if self.dropout > 0 else None)

    # ------------------------------------------------------------------ building
    def build(self, query_shape, value_shape, key_shape=None):
        """Creates the weights for inputs of these shapes.

        Decoders that drive the layer through ``prepare``/``step`` call this from their own
        ``build`` so that saved models find the weights on load.
        """
        query_shape = tuple(query_shape)
        value_shape = tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        for nm, shp in (("query", query_shape), ("value", value_shape), ("key", key_shape)):
            if len(shp) != 3:
                raise ValueError(
                    f"{self._label()}: {nm} must have shape (batch, time, features), got "
                    f"{shp}")
            if shp[-1] is None:
                raise ValueError(f"{self._label()}: the feature size of {nm} must be known, "
                                 f"got shape {shp}")
        self._query_dim = int(query_shape[-1])
        self._value_dim = int(value_shape[-1])
        self._key_dim = int(key_shape[-1])
        self.build_weights(self._query_dim, self._key_dim, self._value_dim)
        self.built = True

    def build_weights(self, query_dim: int, key_dim: int, value_dim: int) -> None:
        """Variant hook: create sublayers and weights for these feature sizes."""

    def compute_output_shape(self, query_shape, value_shape, key_shape=None):
        return tuple(query_shape[:-1]) + (self._output_dim(int(query_shape[-1]),
                                                            int(value_shape[-1])),)

    def _output_dim(self, query_dim: int, value_dim: int) -> int:
        """Variant hook: the context's feature size."""
        return value_dim

    # ------------------------------------------------------------------ public API
    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
             attention_mask=None, use_causal_mask=False, training=None, score_bias=None):
        """Returns the context ``(batch, Tq, dim_out)``; see ``attend`` for the arguments."""
        context, _ = self._attend(query, value, key, query_mask, value_mask, key_mask,
                                  attention_mask, use_causal_mask, training, score_bias)
        return context

    def attend(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None,
               attention_mask=None, use_causal_mask=False, training=None, score_bias=None):
        """Attends ``query`` over ``value`` and returns the context and the weights.

        Args:
            query: ``(batch, Tq, dim_q)``.
            value: ``(batch, Tv, dim_v)``, the memory that is summed.
            key: ``(batch, Tv, dim_k)``, what the query is scored against; ``value`` if None.
            query_mask: ``(batch, Tq)`` bool, False marks padding queries: their context and
                weights are zero (and a stateful variant does not advance on them).
            value_mask: ``(batch, Tv)`` bool, False marks padding memory positions: their
                weight is exactly zero. Keras implicit masks on ``query``/``value``/``key`` are
                used when the explicit ones are None.
            key_mask: ``(batch, Tv)``, combined with ``value_mask`` by logical and.
            attention_mask: ``(batch, Tq, Tv)`` bool, further positions to hide.
            use_causal_mask: Hide memory positions after the query's own (self-attention).
            training: Enables dropout (and, for ``monotonic``, the soft expected alignment).
            score_bias: Added to the raw scores before the normalisation, broadcastable to
                them (``(1, heads, Tq, Tv)`` for ``multi_head``): e.g. T5's relative
                position bias (:class:`zoo.layers.RelativePositionBias`). A ``step`` takes
                it as the memory's ``"bias"`` entry.

        Returns:
            ``(context, weights)``: context ``(batch, Tq, dim_out)``; weights
            ``(batch, Tq, Tv)``, or ``(batch, heads, Tq, Tv)`` for ``multi_head``.
        """
        return self._attend(query, value, key, query_mask, value_mask, key_mask,
                            attention_mask, use_causal_mask, training, score_bias)

    def prepare(self, value, key=None, value_mask=None, key_mask=None) -> Dict[str, Any]:
        """Projects the memory once, for many ``step`` calls.

        Args:
            value: ``(batch, Tv, dim_v)``.
            key: ``(batch, Tv, dim_k)`` or None for ``value``.
            value_mask: ``(batch, Tv)`` bool or None (implicit Keras masks are honoured).
            key_mask: ``(batch, Tv)`` or None.

        Returns:
            A dict of tensors (``keys``, ``values``, ``mask`` and variant extras) whose leading
            axis is the batch, so a beam search can tile or gather it.
        """
        if not self.built:
            raise ValueError(
                f"{self._label()} is not built: call `layer.build(query_shape=..., "
                f"value_shape=...)` first (a decoder does this in its own build), or call the "
                f"layer once on full inputs.")
        value_mask = _keras_mask(value) if value_mask is None else value_mask
        if key is not None and key_mask is None:
            key_mask = _keras_mask(key)
        value = self._as_float(value, "value")
        key = value if key is None else self._as_float(key, "key")
        self._check_rank(value, 3, "value")
        self._check_rank(key, 3, "key")
        mask = self._memory_mask(value, key, value_mask, key_mask)
        memory = self._prepare(key, value)
        memory["mask"] = mask
        return memory

    def initial_state(self, batch_size, value_length, dtype=None) -> Dict[str, Any]:
        """The state before the first query step (empty for stateless variants).

        Args:
            batch_size: Batch size (int or scalar tensor).
            value_length: ``Tv``.
            dtype: Float dtype of the state; the layer's compute dtype if None.

        Returns:
            A dict of tensors with leading axis ``batch``.
        """
        return {}

    def step(self, query, memory, state, query_mask=None, training=None):
        """One query step.

        Args:
            query: ``(batch, dim_q)``.
            memory: The dict returned by ``prepare``. Its ``"mask"`` may be None where
                every key is visible (a decoder's cache that holds real positions only):
                the step then applies no mask. An optional ``"bias"`` is added to the
                scores (``attend``'s ``score_bias``).
            state: The dict returned by ``initial_state`` or the previous ``step``.
            query_mask: ``(batch,)`` bool or None; where False the step attends to nothing and
                the state is carried over unchanged.
            training: Enables dropout.

        Returns:
            ``(context, weights, state)``: context ``(batch, dim_out)``, weights
            ``(batch, Tv)`` (``(batch, heads, Tv)`` for ``multi_head``), the next state.
        """
        query = self._as_float(query, "query")
        self._check_rank(query, 2, "query")
        q = ops.expand_dims(query, 1)  # (batch, 1, dq)
        qm = None if query_mask is None else ops.expand_dims(
            ops.cast(query_mask, "bool"), 1)
        if memory.get("mask") is None and self.reads_memory_mask:
            memory = {**memory, "mask": ops.ones(ops.shape(memory["values"])[:2], "bool")}
        # (batch, 1, Tv); None: every key visible, and no kernels spent on saying so.
        mask = None if memory.get("mask") is None else ops.expand_dims(memory["mask"], 1)
        context, weights, new_state = self._step_core(q, memory, mask, qm, state, training)
        # Squeezes, not [:, 0]: one kernel each in an exported decoding loop, not a slice and
        # a squeeze.
        weights = ops.squeeze(weights, 2 if self.has_heads else 1)
        return ops.squeeze(context, 1), weights, new_state

    # ------------------------------------------------------------------ the shared pipeline
    def _attend(self, query, value, key, query_mask, value_mask, key_mask, attention_mask,
                use_causal_mask, training, score_bias=None):
        query_mask = _keras_mask(query) if query_mask is None else query_mask
        value_mask = _keras_mask(value) if value_mask is None else value_mask
        if key is not None and key_mask is None:
            key_mask = _keras_mask(key)
        query = self._as_float(query, "query")
        value = self._as_float(value, "value")
        key_given = key is not None
        key = self._as_float(key, "key") if key_given else value
        self._check_rank(query, 3, "query")
        self._check_rank(value, 3, "value")
        self._check_rank(key, 3, "key")
        if not self.built:
            self.build(query.shape, value.shape, key.shape if key_given else None)
        if query_mask is not None:
            query_mask = ops.cast(query_mask, "bool")
            self._check_mask(query_mask, query, "query_mask", "Tq")
        memory_mask = self._memory_mask(value, key, value_mask, key_mask)  # (batch, Tv)
        mask = ops.expand_dims(memory_mask, 1)  # (batch, 1, Tv)
        if attention_mask is not None:
            attention_mask = ops.cast(attention_mask, "bool")
            if len(attention_mask.shape) != 3:
                raise ValueError(f"{self._label()}: attention_mask must be (batch, Tq, Tv), "
                                 f"got shape {tuple(attention_mask.shape)}")
            mask = ops.logical_and(mask, attention_mask)
        if use_causal_mask:
            mask = causal(mask, ops.shape(query)[1], ops.shape(value)[1])
        memory = self._prepare(key, value)
        memory["mask"] = memory_mask
        if score_bias is not None:
            if self.has_state:
                raise ValueError(f"{self._label()}: score_bias needs a stateless attention "
                                 f"(the scores of all queries at once)")
            memory["bias"] = score_bias
        context, weights = self._attend_sequence(query, memory, mask, query_mask, training)
        if training:
            loss = self.weights_loss(weights, query_mask)
            if loss is not None:
                self.add_loss(loss)
        return context, weights

    def _attend_sequence(self, query, memory, mask, query_mask, training):
        """All queries at once, or a scan over ``_step_core`` for stateful variants."""
        if not self.has_state:
            context, weights, _ = self._step_core(query, memory, mask, query_mask, {},
                                                  training)
            return context, weights
        batch = ops.shape(query)[0]
        tv = ops.shape(memory["mask"])[1]
        state = self.initial_state(batch, tv, dtype=self.compute_dtype)
        tq = ops.shape(query)[1]
        mask = ops.broadcast_to(mask, (batch, tq, tv))
        qm = (ops.ones((batch, tq), "bool") if query_mask is None else query_mask)
        xs = (ops.transpose(query, (1, 0, 2)), ops.transpose(mask, (1, 0, 2)),
              ops.transpose(qm, (1, 0)))
        dim_out = self._output_dim(self._query_dim, self._value_dim)
        zero_context = ops.zeros((batch, 1, dim_out), self.compute_dtype)
        zero_weights = ops.zeros((batch, 1, tv), self.compute_dtype)

        def body(carry, x):
            q_t, m_t, qm_t = x
            ctx, w, new_state = self._step_core(
                ops.expand_dims(q_t, 1), memory, ops.expand_dims(m_t, 1),
                ops.expand_dims(qm_t, 1), carry[0], training)
            out = (new_state, ctx, w)
            # keras.ops.scan on TensorFlow needs the per-step output to mirror the carry.
            return out, out

        _, (_, contexts, weights) = ops.scan(body, (state, zero_context, zero_weights), xs)
        # (Tq, batch, 1, d) -> (batch, Tq, d)
        contexts = ops.transpose(contexts[:, :, 0, :], (1, 0, 2))
        weights = ops.transpose(weights[:, :, 0, :], (1, 0, 2))
        return contexts, weights

    def _step_core(self, query, memory, mask, query_mask, state, training):
        """Scores, normalises, sums: query (batch, Tq, dq), mask broadcastable to
        (batch, Tq, Tv), query_mask (batch, Tq) or None. Returns context, weights, state."""
        scores = self._score(query, memory, state)  # (batch, Tq, Tv) | (batch, H, Tq, Tv)
        if memory.get("bias") is not None:
            scores = scores + ops.cast(memory["bias"], scores.dtype)
        weights, dropped = self._weigh(scores, mask, query_mask, query, memory, state, training)
        context = self._combine(dropped, memory)  # (batch, Tq, dim_out)
        if query_mask is not None:
            context = context * ops.expand_dims(ops.cast(query_mask, context.dtype), -1)
        new_state = state
        if self.has_state:
            new_state = self._next_state(weights, state, query=query, memory=memory)
            if query_mask is not None:
                keep = query_mask[:, 0]  # one step: (batch,)
                new_state = {
                    k: ops.where(ops.reshape(keep, (-1,) + (1,) * (len(v.shape) - 1)),
                                 v, state[k])
                    for k, v in new_state.items()}
        return context, weights, new_state

    def _weigh(self, scores, mask, query_mask, query, memory, state, training):
        """Scores -> ``(weights, dropped weights)``: the masked normalisation, zeros at padding
        queries, and dropout (training only). ``mask`` broadcasts to (batch, Tq, Tv), or is
        None (every key visible)."""
        full_mask = ops.expand_dims(mask, 1) if self.has_heads and mask is not None else mask
        weights = self._normalize(scores, full_mask, query=query, memory=memory, state=state,
                                  training=training)
        if query_mask is not None:
            qm = ops.cast(query_mask, weights.dtype)  # (batch, Tq)
            weights = weights * (ops.expand_dims(ops.expand_dims(qm, 1), -1)
                                 if self.has_heads else ops.expand_dims(qm, -1))
        dropped = weights
        if self._dropout_layer is not None:
            dropped = self._dropout_layer(weights, training=training)
        return weights, dropped

    # ------------------------------------------------------------------ variant hooks
    def _prepare(self, key, value) -> Dict[str, Any]:
        """Variant hook: memory projections computed once per source."""
        return {"keys": key, "values": value}

    def _score(self, query, memory, state):
        """Variant hook: raw scores (batch, Tq, Tv) from query (batch, Tq, dq)."""
        raise NotImplementedError

    def _normalize(self, scores, mask, query, memory, state, training):
        return masked_softmax(scores, mask)

    def _combine(self, weights, memory):
        return ops.matmul(weights, memory["values"])  # (batch, Tq, Tv) @ (batch, Tv, dv)

    def _next_state(self, weights, state, query, memory):
        return state

    def weights_loss(self, weights, query_mask=None):
        """Variant hook: a loss on the weights of a whole query sequence, or None.

        Added in training by the full-sequence call and by every zoo decoder's teacher
        forcing (which steps through ``step`` and collects the weights).

        Args:
            weights: ``(batch, Tq, Tv)`` (heads averaged for ``multi_head``).
            query_mask: ``(batch, Tq)`` bool or None; masked queries do not count.

        Returns:
            A float32 scalar, or None when the variant has no such loss.
        """
        return None

    # ------------------------------------------------------------------ helpers
    def _label(self):
        return f"{type(self).__name__} {self.name!r}"

    def _as_float(self, x, name):
        """x as a compute-dtype tensor without a Keras mask attached (read masks first), so
        that projection sublayers do not warn about dropping it."""
        if x is None:
            raise ValueError(f"{self._label()}: {name} is required")
        had_mask = _keras_mask(x) is not None
        x = ops.convert_to_tensor(x)
        if not keras.backend.is_float_dtype(x.dtype):
            raise TypeError(f"{self._label()}: {name} must be a float tensor, got dtype "
                            f"{x.dtype}")
        if x.dtype != self.compute_dtype:
            x = ops.cast(x, self.compute_dtype)
        elif had_mask:
            x = ops.copy(x)
        return x

    def _check_rank(self, x, rank, name):
        if len(x.shape) != rank:
            want = {2: "(batch, features)", 3: "(batch, time, features)"}[rank]
            raise ValueError(f"{self._label()}: {name} must have shape {want}, got shape "
                             f"{tuple(x.shape)}")

    def _check_mask(self, mask, ref, name, axis_name):
        if len(mask.shape) != 2:
            raise ValueError(f"{self._label()}: {name} must be (batch, {axis_name}), got shape "
                             f"{tuple(mask.shape)}")
        a, b = _static_dim(mask.shape, 1), _static_dim(ref.shape, 1)
        if a is not None and b is not None and a != b:
            raise ValueError(f"{self._label()}: {name} has {a} steps but its tensor has {b}")

    def _memory_mask(self, value, key, value_mask, key_mask):
        """(batch, Tv) bool from the value and key masks (True = attend)."""
        tv_v, tv_k = _static_dim(value.shape, 1), _static_dim(key.shape, 1)
        if tv_v is not None and tv_k is not None and tv_v != tv_k:
            raise ValueError(f"{self._label()}: key has {tv_k} steps but value has {tv_v}")
        mask = ops.ones(ops.shape(value)[:2], "bool")
        for m, nm in ((value_mask, "value_mask"), (key_mask, "key_mask")):
            if m is not None:
                m = ops.cast(m, "bool")
                self._check_mask(m, value, nm, "Tv")
                mask = ops.logical_and(mask, m)
        return mask

    def _cast_weight(self, w):
        return ops.cast(w, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"dropout": self.dropout, "seed": self.seed})
        return config


def independent_initializer(initializer, name):
    """``initializer`` for one more weight, drawing values of its own.

    Keras's random initializers fix their seed when constructed, not when called: one
    instance handed to several sublayers gives every weight of a shape the same values (the
    query, key, value and output projections of an attention would all start equal, and
    gradient descent has to break that symmetry first). An unseeded initializer is copied,
    so the copy draws a new seed from Keras's global generator (``keras.utils.set_random_seed``
    still makes it reproducible); a seeded one gets its seed offset by a hash of ``name``, so a
    seeded layer is reproducible and its weights still differ. Anything else (constant
    initializers, a ``SeedGenerator`` that advances per call, a plain function) is returned
    as it is.

    Args:
        initializer: A Keras initializer instance.
        name: The sublayer or weight it is for, unique within the layer.

    Returns:
        An initializer of the same kind and configuration.

    Example:
        >>> import keras
        >>> shared = keras.initializers.GlorotUniform()
        >>> a = independent_initializer(shared, "query")((3, 3))
        >>> b = independent_initializer(shared, "key")((3, 3))
        >>> bool((a.numpy() == b.numpy()).all())
        False
    """
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    config = initializer.get_config()
    seed = config.get("seed", ...)
    if seed is None:
        return type(initializer).from_config(config)
    if isinstance(seed, int) and not isinstance(seed, bool):
        config["seed"] = (seed + zlib.crc32(name.encode())) % (2 ** 31)
        return type(initializer).from_config(config)
    return initializer


def masked_softmax(scores, mask, axis=-1):
    """Softmax over ``axis`` in float32 where ``mask`` is True; exact zeros elsewhere.

    Args:
        scores: Float tensor of any float dtype.
        mask: Bool tensor broadcastable to ``scores``, or None: every key is visible.
        axis: The axis normalised over.

    Returns:
        Weights in ``scores.dtype``; a row with no True entry is all zeros (never NaN).
    """
    s = ops.cast(scores, "float32")
    if mask is None:
        return ops.cast(ops.softmax(s, axis=axis), scores.dtype)
    s = ops.where(mask, s, _MASK_FILL)
    # exp(fill - max) underflows to exactly 0 in float32, so masked keys already get weight
    # and gradient 0 and multiplying by the mask changes nothing there; it only zeroes the
    # rows with no key left (uniform over the fill). The mask (broadcast, no head axis) costs
    # less than an "any key" reduction: in a decoding step that reduction's cast, sum,
    # comparison and cast were four kernels per attention.
    weights = ops.softmax(s, axis=axis) * ops.cast(mask, "float32")
    return ops.cast(weights, scores.dtype)


def causal(mask, tq, tv):
    """``mask`` (batch, 1 | Tq, Tv) and-ed with "key position <= query position"."""
    rows = ops.expand_dims(ops.arange(tq), 1)
    cols = ops.expand_dims(ops.arange(tv), 0)
    return ops.logical_and(mask, ops.expand_dims(cols <= rows, 0))


def _keras_mask(x):
    return getattr(x, "_keras_mask", None)


REGISTRY = Registry("attention", base=Attention)
register = REGISTRY.register
