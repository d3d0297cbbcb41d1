"""Monotonic attention (Raffel et al. 2017): the expected alignment of a left-to-right hard
attention for training, the hard alignment itself at inference."""

import keras
from keras import ops

from zoo.attention.additive import AdditiveScoreMixin
from zoo.attention.base import Attention, register

_MODES = ("auto", "soft", "hard")


@register("monotonic", aliases=("raffel",))
class MonotonicAttention(AdditiveScoreMixin, Attention):
    """Monotonic attention.

    At output step ``i`` a reader scans the memory from where it stopped at step ``i-1`` and
    stops at ``j`` with probability ``p_{i,j} = sigmoid(e_{i,j})``, with the additive energy
    ``e_{i,j} = v^T tanh(W_q q_i + W_k k_j + b) + r``. Training uses the expected alignment
    ``a_{i,j} = p_{i,j} sum_{k<=j} a_{i-1,k} prod_{k<=m<j} (1 - p_{i,m})``, computed here in log
    space (``log(1-p) = -softplus(e)``), which is exact and stable where the published
    cumulative-product form divides by vanishing products. Inference stops at the first
    ``p > 0.5`` at or after the previous position. Weights need not sum to one: the reader may
    run off the end. Linear time and online decoding: use it for streaming.

    State: ``{"weights": (batch, Tv)}``, one-hot at position 0.

    Args:
        units: Hidden size of the energy; ``None`` means the key size.
        mode: ``"soft"`` (expected alignment), ``"hard"``, or ``"auto"``: soft in training,
            hard otherwise.
        sigmoid_noise: Std of Gaussian noise added to the energies in soft training (Raffel et
            al. recommend about 1 to push ``p`` towards 0 or 1).
        score_bias_init: Initial value of the learned energy bias ``r`` (Raffel et al.: -4
            for long sources).
        use_bias: Learn the bias ``b``.
        kernel_initializer: Initializer of the projections.
        kernel_regularizer: Regularizer of the same.
        dropout: Dropout rate on the attention weights.
        seed: Seed of the dropout and the noise.
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> layer = MonotonicAttention(units=8, mode="soft")
        >>> ctx, w = layer.attend(query=np.ones((1, 2, 3), "float32"),
        ...                       value=np.ones((1, 4, 5), "float32"))
        >>> bool((np.asarray(w).sum(-1) <= 1 + 1e-6).all())
        True
    """

    has_state = True
    reads_memory_mask = True

    def __init__(self, units=None, mode="auto", sigmoid_noise=0.0, score_bias_init=0.0,
                 use_bias=True, kernel_initializer="glorot_uniform", kernel_regularizer=None,
                 dropout=0.0, seed=None, **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        self._init_additive(units, use_bias, kernel_initializer, kernel_regularizer)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if float(sigmoid_noise) < 0:
            raise ValueError(f"sigmoid_noise must be >= 0, got {sigmoid_noise}")
        self.mode = mode
        self.sigmoid_noise = float(sigmoid_noise)
        self.score_bias_init = float(score_bias_init)
        self._noise_seed = keras.random.SeedGenerator(seed) if self.sigmoid_noise else None

    def build_weights(self, query_dim, key_dim, value_dim):
        self._build_additive(query_dim, key_dim)
        self.score_bias = self.add_weight(
            name="score_bias", shape=(),
            initializer=keras.initializers.Constant(self.score_bias_init))

    def initial_state(self, batch_size, value_length, dtype=None):
        start = ops.one_hot(ops.zeros((batch_size,), "int32"), value_length,
                            dtype=dtype or self.compute_dtype)
        return {"weights": start}

    def _prepare(self, key, value):
        return {"keys": self.key_projection(key), "values": value}

    def _score(self, query, memory, state):
        return self._additive_energy(query, memory["keys"]) + self._cast_weight(self.score_bias)

    def _normalize(self, scores, mask, query, memory, state, training):
        soft = self.mode == "soft" or (self.mode == "auto" and bool(training))
        e = ops.cast(scores, "float32")  # (batch, Tq, Tv)
        maskf = ops.cast(ops.broadcast_to(mask, ops.shape(e)), "float32")
        previous = ops.expand_dims(ops.cast(state["weights"], "float32"), 1)  # (b, 1, Tv)
        if not soft:
            chosen = ops.cast(e > 0, "float32") * maskf  # p > 0.5
            chosen = chosen * ops.cumsum(previous, axis=-1)  # only at or after the last stop
            not_before = ops.cumprod(1.0 - chosen, axis=-1)
            not_before = ops.concatenate([ops.ones_like(not_before[..., :1]),
                                          not_before[..., :-1]], axis=-1)  # exclusive
            return ops.cast(chosen * not_before, scores.dtype)
        if training and self.sigmoid_noise > 0:
            e = e + self.sigmoid_noise * keras.random.normal(ops.shape(e),
                                                             seed=self._noise_seed)
        p = ops.sigmoid(e) * maskf
        log_stay = -ops.softplus(e) * maskf  # log(1 - p), 0 where masked
        cum = ops.cumsum(log_stay, axis=-1) - log_stay  # L_j = sum_{m<j} log(1 - p_m)
        diff = ops.expand_dims(cum, -1) - ops.expand_dims(cum, -2)  # (b, Tq, j, k): L_j - L_k
        tv = ops.shape(e)[-1]
        lower = ops.expand_dims(ops.arange(tv), 1) >= ops.expand_dims(ops.arange(tv), 0)
        # The fill keeps exp() away from the k > j entries, where L_j - L_k > 0 could overflow.
        transfer = ops.exp(ops.where(lower, diff, ops.full_like(diff, -1e9)))
        reach = ops.squeeze(ops.matmul(transfer, ops.expand_dims(previous, -1)), -1)
        return ops.cast(p * reach, scores.dtype)

    def _next_state(self, weights, state, query, memory):
        return {"weights": ops.cast(weights[:, 0, :], state["weights"].dtype)}

    def get_config(self):
        return {**super().get_config(), **self._additive_config(), "mode": self.mode,
                "sigmoid_noise": self.sigmoid_noise, "score_bias_init": self.score_bias_init}
