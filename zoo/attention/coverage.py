"""Coverage attention (Tu et al. 2016; See et al. 2017): the cumulative attention so far is a
feature of the score, and a coverage loss penalises attending twice."""

from keras import ops

from zoo.attention.additive import AdditiveScoreMixin
from zoo.attention.base import Attention, register


def coverage_loss(weights, query_mask=None):
    """See et al. (2017) coverage loss: ``mean_t sum_j min(a_{t,j}, c_{t,j})``.

    ``c_t = sum_{t' < t} a_{t'}`` is the coverage before step ``t``.

    Args:
        weights: ``(batch, Tq, Tv)`` attention weights of a whole target sequence.
        query_mask: ``(batch, Tq)`` bool or None; masked steps do not count.

    Returns:
        A float32 scalar: the mean over valid steps of the per-step overlap.
    """
    w = ops.cast(weights, "float32")
    coverage = ops.cumsum(w, axis=1) - w  # exclusive: (batch, Tq, Tv)
    per_step = ops.sum(ops.minimum(w, coverage), axis=-1)  # (batch, Tq)
    if query_mask is None:
        return ops.mean(per_step)
    m = ops.cast(query_mask, "float32")
    return ops.sum(per_step * m) / ops.maximum(ops.sum(m), 1.0)


@register("coverage", aliases=("see", "tu"))
class CoverageAttention(AdditiveScoreMixin, Attention):
    """Additive attention with a coverage vector.

    ``c_i = sum_{i' < i} a_{i'}`` and ``score(q_i, k_j) = v^T tanh(W_q q_i + W_k k_j +
    w_c c_{i,j} + b)``. The model sees how much each source position has already been used,
    which reduces repetition and omission (See et al. 2017 on summarisation, Tu et al. 2016 on
    translation). With ``coverage_loss_weight > 0`` the layer adds
    ``coverage_loss_weight * coverage_loss(weights)`` to the model's losses in training (in a
    full-sequence call, and in the teacher forcing of any zoo decoder that uses it).

    State: ``{"coverage": (batch, Tv)}``, zeros at the start.

    Args:
        units: Hidden size of the score; ``None`` means the key size.
        coverage_loss_weight: Weight of the coverage loss added in training (See et al.: 1.0).
        use_bias: Learn the bias ``b``.
        kernel_initializer: Initializer of the projections.
        kernel_regularizer: Regularizer of the same.
        dropout: Dropout rate on the attention weights.
        seed: Dropout seed.
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> layer = CoverageAttention(units=8)
        >>> ctx, w = layer.attend(query=np.ones((1, 2, 3), "float32"),
        ...                       value=np.ones((1, 4, 5), "float32"))
        >>> float(coverage_loss(w)) >= 0
        True
    """

    has_state = True

    def __init__(self, units=None, coverage_loss_weight=0.0, use_bias=True,
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, dropout=0.0,
                 seed=None, **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        self._init_additive(units, use_bias, kernel_initializer, kernel_regularizer)
        if float(coverage_loss_weight) < 0:
            raise ValueError(f"coverage_loss_weight must be >= 0, got {coverage_loss_weight}")
        self.coverage_loss_weight = float(coverage_loss_weight)

    def build_weights(self, query_dim, key_dim, value_dim):
        self._build_additive(query_dim, key_dim)
        self.coverage_projection = self._dense(self._units, "coverage_projection")  # w_c
        self.coverage_projection.build((None, None, 1))

    def initial_state(self, batch_size, value_length, dtype=None):
        return {"coverage": ops.zeros((batch_size, value_length), dtype or self.compute_dtype)}

    def _prepare(self, key, value):
        return {"keys": self.key_projection(key), "values": value}

    def _score(self, query, memory, state):
        c = ops.expand_dims(ops.cast(state["coverage"], self.compute_dtype), -1)  # (b, Tv, 1)
        return self._additive_energy(query, memory["keys"], self.coverage_projection(c))

    def _next_state(self, weights, state, query, memory):
        cov = state["coverage"]
        return {"coverage": cov + ops.cast(weights[:, 0, :], cov.dtype)}

    def weights_loss(self, weights, query_mask=None):
        if self.coverage_loss_weight <= 0:
            return None
        return self.coverage_loss_weight * coverage_loss(weights, query_mask)

    def get_config(self):
        return {**super().get_config(), **self._additive_config(),
                "coverage_loss_weight": self.coverage_loss_weight}
