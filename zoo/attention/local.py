"""Local attention (Luong et al. 2015): a Gaussian window around a predicted (local-p) or
step-aligned (local-m) centre."""

import keras
from keras import ops

from zoo.attention.base import Attention, independent_initializer, masked_softmax, register

_CENTRES = ("predictive", "monotonic")


@register("local", aliases=("local_p", "luong_local"))
class LocalAttention(Attention):
    """Luong local attention.

    local-p (``centre="predictive"``): ``p_i = (S - 1) sigmoid(v_p^T tanh(W_p q_i))`` with ``S``
    the unpadded source length; local-m (``centre="monotonic"``): ``p_i = min(i, S - 1)``.
    Only positions with ``|j - p_i| <= window`` are scored (Luong's ``general`` score
    ``q W k``), normalised by a softmax over the window and multiplied by
    ``exp(-(j - p_i)^2 / (2 sigma^2))``, ``sigma = window / 2``. Cost per query is the window,
    not the source, and the model can learn where to look; weights sum to at most one.

    State: ``{"position": (batch,)}``, the step index (used by local-m), 0 at the start. The
    full call needs no scan: every centre depends only on its own query and index.

    Args:
        window: Half-width ``D`` of the window, in positions.
        centre: ``"predictive"`` (local-p) or ``"monotonic"`` (local-m).
        units: Hidden size of the centre predictor ``W_p``; ``None`` means the query size.
        kernel_initializer: Initializer of ``W``, ``W_p``, ``v_p``.
        kernel_regularizer: Regularizer of the same.
        dropout: Dropout rate on the attention weights.
        seed: Dropout seed.
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> layer = LocalAttention(window=2)
        >>> ctx, w = layer.attend(query=np.ones((1, 2, 3), "float32"),
        ...                       value=np.ones((1, 9, 3), "float32"))
        >>> tuple(w.shape)
        (1, 2, 9)
    """

    has_state = True
    reads_memory_mask = True

    def __init__(self, window=5, centre="predictive", units=None,
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, dropout=0.0,
                 seed=None, **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        if int(window) < 1:
            raise ValueError(f"window must be a positive integer, got {window}")
        if centre not in _CENTRES:
            raise ValueError(f"centre must be one of {_CENTRES}, got {centre!r}")
        if units is not None and int(units) < 1:
            raise ValueError(f"units must be a positive integer or None, got {units}")
        self.window = int(window)
        self.centre = centre
        self.units = None if units is None else int(units)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def _dense(self, units, name):
        return keras.layers.Dense(
            units, use_bias=False,
            kernel_initializer=independent_initializer(self.kernel_initializer, name),
            kernel_regularizer=self.kernel_regularizer, dtype=self.dtype_policy, name=name)

    def build_weights(self, query_dim, key_dim, value_dim):
        self.key_projection = self._dense(query_dim, "key_projection")  # W^T of q W k
        self.key_projection.build((None, None, key_dim))
        if self.centre == "predictive":
            self.centre_hidden = self._dense(self.units or query_dim, "centre_hidden")  # W_p
            self.centre_hidden.build((None, None, query_dim))
            self.centre_output = self._dense(1, "centre_output")  # v_p
            self.centre_output.build((None, None, self.units or query_dim))

    def initial_state(self, batch_size, value_length, dtype=None):
        return {"position": ops.zeros((batch_size,), dtype or self.compute_dtype)}

    def _prepare(self, key, value):
        return {"keys": self.key_projection(key), "values": value}

    def _score(self, query, memory, state):
        return ops.matmul(query, ops.transpose(memory["keys"], (0, 2, 1)))

    def _centres(self, query, memory, state):
        """(batch, Tq, 1) float32 window centres."""
        lengths = ops.sum(ops.cast(memory["mask"], "float32"), axis=-1)  # (batch,)
        last = ops.reshape(lengths - 1.0, (-1, 1, 1))
        if self.centre == "predictive":
            hidden = ops.tanh(self.centre_hidden(query))
            return last * ops.sigmoid(ops.cast(self.centre_output(hidden), "float32"))
        position = ops.cast(state["position"], "float32")
        position = ops.reshape(position, (ops.shape(position)[0], -1, 1))  # (batch, Tq, 1)
        return ops.minimum(position, last)

    def _normalize(self, scores, mask, query, memory, state, training):
        centres = self._centres(query, memory, state)  # (batch, Tq, 1)
        positions = ops.reshape(ops.cast(ops.arange(ops.shape(scores)[-1]), "float32"),
                                (1, 1, -1))
        distance = positions - centres  # (batch, Tq, Tv)
        in_window = ops.abs(distance) <= float(self.window)
        weights = masked_softmax(ops.cast(scores, "float32"), ops.logical_and(mask, in_window))
        sigma = self.window / 2.0
        gaussian = ops.exp(-ops.square(distance) / (2.0 * sigma * sigma))
        return ops.cast(weights * gaussian, scores.dtype)

    def _attend_sequence(self, query, memory, mask, query_mask, training):
        batch, tq = ops.shape(query)[0], ops.shape(query)[1]
        positions = ops.broadcast_to(
            ops.expand_dims(ops.cast(ops.arange(tq), self.compute_dtype), 0), (batch, tq))
        context, weights, _ = self._step_core(query, memory, mask, query_mask,
                                              {"position": positions}, training)
        return context, weights

    def _next_state(self, weights, state, query, memory):
        return {"position": state["position"] + 1}

    def get_config(self):
        return {**super().get_config(), "window": self.window, "centre": self.centre,
                "units": self.units,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}
