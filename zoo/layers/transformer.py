"""Transformer encoder and decoder (pre-norm, or post-norm as in Vaswani et al. 2017) with a
fixed-size key/value cache for decoding."""

import keras
from keras import ops

import zoo.attention
from zoo.attention import PackedRows
from zoo.layers.base import Decoder, register_network
from zoo.layers.embedding import RelativePositionBias, TokenEmbedding


#: Feed-forward activations by name (``activation=``): T5 uses ReLU or, gated, GELU's tanh
#: approximation (Flan-T5, T5 v1.1); BART uses exact GELU.
#: What a stack's ``positions=`` may be.
POSITIONS = ("sinusoidal", "relative", "learned")
ACTIVATIONS = {"relu": ops.relu, "gelu": lambda x: ops.gelu(x, approximate=False),
               "gelu_approximate": lambda x: ops.gelu(x, approximate=True)}


class _FeedForward(keras.layers.Layer):
    """``outer(drop(act(inner(x))))``, or gated (Shazeer 2020):
    ``outer(drop(act(inner(x)) * gate(x)))``."""

    def __init__(self, dim, ff_dim, dropout, activation="relu", gated=False, use_bias=True,
                 **kwargs):
        super().__init__(**kwargs)
        dense = dict(use_bias=use_bias, dtype=self.dtype_policy)
        self.inner = keras.layers.Dense(ff_dim, name="inner", **dense)
        self.gate = keras.layers.Dense(ff_dim, name="gate", **dense) if gated else None
        self.outer = keras.layers.Dense(dim, name="outer", **dense)
        self.drop = keras.layers.Dropout(dropout, dtype=self.dtype_policy)
        self.dim, self.ff_dim, self.activation = dim, ff_dim, ACTIVATIONS[activation]

    def build(self, input_shape=None):
        self.inner.build((None, self.dim))
        if self.gate is not None:
            self.gate.build((None, self.dim))
        self.outer.build((None, self.ff_dim))
        self.built = True

    def call(self, x, training=None):
        h = self.activation(self.inner(x))
        if self.gate is not None:
            h = h * self.gate(x)
        return self.outer(self.drop(h, training=training))


class _Base(keras.layers.Layer):
    #: In training, run the stack on the real positions only (see
    #: :mod:`zoo.attention.packing`). ``Seq2Seq.compile`` sets it: on for TensorFlow without
    #: XLA, off where shapes must be static.
    pack_training = False

    def __init__(self, vocab_size, dim=256, num_layers=3, num_heads=8, ff_dim=1024,
                 dropout=0.1, attention_dropout=0.0, activation_dropout=None,
                 normalize_first=True, norm="layer", norm_epsilon=1e-6, activation="relu",
                 gated_ffn=False, use_bias=True, head_dim=None, positions="sinusoidal",
                 relative_buckets=32, relative_max_distance=128, max_positions=1024,
                 embedding_norm=False, **kwargs):
        super().__init__(**kwargs)
        for nm, v in (("vocab_size", vocab_size), ("dim", dim), ("num_layers", num_layers),
                      ("num_heads", num_heads), ("ff_dim", ff_dim), ("head_dim", head_dim)):
            if v is not None and int(v) < 1:
                raise ValueError(f"{nm} must be a positive integer, got {v}")
        if head_dim is None and int(dim) % int(num_heads):
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads}), "
                             f"or give head_dim")
        for nm, v, allowed in (("norm", norm, ("layer", "rms")),
                               ("activation", activation, tuple(ACTIVATIONS)),
                               ("positions", positions, POSITIONS)):
            if v not in allowed:
                raise ValueError(f"{nm} must be one of {', '.join(allowed)}; got {v!r}")
        self.norm, self.norm_epsilon = norm, float(norm_epsilon)
        self.activation, self.gated_ffn = activation, bool(gated_ffn)
        self.use_bias, self.positions = bool(use_bias), positions
        self.head_dim = None if head_dim is None else int(head_dim)
        self.relative_buckets = int(relative_buckets)
        self.relative_max_distance = int(relative_max_distance)
        self.vocab_size, self.dim, self.num_layers = int(vocab_size), int(dim), int(num_layers)
        self.num_heads, self.ff_dim = int(num_heads), int(ff_dim)
        self.dropout, self.attention_dropout = float(dropout), float(attention_dropout)
        # None keeps the feed-forward's inner dropout at ``dropout`` (what models saved before
        # this option was added do); fairseq and Wu et al. 2021 use 0 there.
        self.activation_dropout = (None if activation_dropout is None
                                   else float(activation_dropout))
        for nm, v in (("dropout", self.dropout), ("attention_dropout", self.attention_dropout),
                      ("activation_dropout", self.activation_dropout)):
            if v is not None and not 0.0 <= v < 1.0:
                raise ValueError(f"{nm} must be in [0, 1), got {v}")
        # T5 has no position embedding: its positions are a bias on the attention scores,
        # and its token embeddings are not scaled.
        self.embedding = TokenEmbedding(self.vocab_size, self.dim,
                                        positional=positions == "sinusoidal",
                                        dtype=self.dtype_policy, name="embedding")
        self.position_bias = RelativePositionBias(
            self.num_heads, bidirectional=self._bidirectional, num_buckets=relative_buckets,
            max_distance=relative_max_distance, dtype=self.dtype_policy,
            name="position_bias") if positions == "relative" else None
        if int(max_positions) < 1:
            raise ValueError(f"max_positions must be a positive integer, got {max_positions}")
        self.max_positions, self.embedding_norm = int(max_positions), bool(embedding_norm)
        # BART: a learned table per stack (the token table may be shared), then a norm.
        self.position_embedding = keras.layers.Embedding(
            self.max_positions, self.dim, dtype=self.dtype_policy,
            name="position_embedding") if positions == "learned" else None
        self.embed_norm = self._norm("embedding_norm") if self.embedding_norm else None
        self.drop = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.normalize_first = bool(normalize_first)
        # Pre-norm leaves the residual stream unnormalised, so it ends with a norm of its own;
        # post-norm's last sub-layer has normalised it already.
        self.final_norm = self._norm("final_norm") if self.normalize_first else None

    def _norm(self, name):
        if self.norm == "rms":  # T5: no bias, no mean subtracted
            return keras.layers.RMSNormalization(epsilon=self.norm_epsilon,
                                                 dtype=self.dtype_policy, name=name)
        return keras.layers.LayerNormalization(epsilon=self.norm_epsilon,
                                               dtype=self.dtype_policy, name=name)

    def _build_positions(self):
        self.embedding.build()
        if self.position_bias is not None:
            self.position_bias.build()
        if self.position_embedding is not None:
            self.position_embedding.build((None,))
        if self.embed_norm is not None:
            self.embed_norm.build((None, None, self.dim))

    def _embed(self, ids, positions=None):
        """Token embeddings with the stack's positions (and norm): ``(..., dim)`` for ids
        ``(...)``; ``positions`` like ids, default ``0..T-1`` along the last axis."""
        x = self.embedding(ids, positions=positions)
        if self.position_embedding is not None:
            if positions is None:
                positions = ops.arange(ops.shape(ids)[-1])
            x = x + ops.cast(self.position_embedding(positions), x.dtype)
        return x if self.embed_norm is None else self.embed_norm(x)

    def _bias(self, length):
        """The self-attention's score bias over ``length`` positions, or None."""
        if self.position_bias is None:
            return None
        return self.position_bias.full(length, length)

    def _residual(self, x, norm, sublayer, training):
        """One residual sub-layer: ``x + f(norm(x))`` pre-norm, ``norm(x + f(x))`` post-norm.

        Args:
            x: The residual stream, (batch, T, dim) or (batch, dim).
            norm: The sub-layer's LayerNormalization.
            sublayer: ``f(y) -> (output, extra)``; ``extra`` is passed through.
            training: Dropout on.

        Returns:
            ``(new x, extra)``.
        """
        out, extra = sublayer(norm(x) if self.normalize_first else x)
        x = x + self.drop(ops.cast(out, x.dtype), training=training)
        return (x if self.normalize_first else norm(x)), extra

    def _final(self, x):
        return self.final_norm(x) if self.final_norm is not None else x

    def _mha(self, name):
        return zoo.attention.get("multi_head", num_heads=self.num_heads, key_dim=self.head_dim,
                                 use_bias=self.use_bias, dropout=self.attention_dropout,
                                 dtype=self.dtype_policy, name=name)

    def _ffn(self, name):
        inner = self.dropout if self.activation_dropout is None else self.activation_dropout
        return _FeedForward(self.dim, self.ff_dim, inner, self.activation, self.gated_ffn,
                            self.use_bias, dtype=self.dtype_policy, name=name)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim,
                "num_layers": self.num_layers, "num_heads": self.num_heads,
                "ff_dim": self.ff_dim, "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "activation_dropout": self.activation_dropout,
                "normalize_first": self.normalize_first, "norm": self.norm,
                "norm_epsilon": self.norm_epsilon, "activation": self.activation,
                "gated_ffn": self.gated_ffn, "use_bias": self.use_bias,
                "head_dim": self.head_dim, "positions": self.positions,
                "relative_buckets": self.relative_buckets,
                "relative_max_distance": self.relative_max_distance,
                "max_positions": self.max_positions, "embedding_norm": self.embedding_norm}


@register_network
class TransformerEncoder(_Base):
    _bidirectional = True

    """Transformer encoder (Vaswani et al. 2017), pre-norm by default (Xiong et al. 2020).

    Args:
        vocab_size: Source vocabulary size (id 0 is padding).
        dim: Model size.
        num_layers: Encoder layers.
        num_heads: Attention heads.
        ff_dim: Feed-forward inner size.
        dropout: Residual and embedding dropout (and the feed-forward's inner activations
            unless ``activation_dropout`` is given).
        attention_dropout: Dropout on attention weights.
        activation_dropout: Dropout on the feed-forward's inner (ReLU) activations; None:
            ``dropout``.
        normalize_first: Pre-norm (``x + f(norm(x))``, and a final norm): trains stably
            without a long warm-up. False: post-norm (``norm(x + f(x))``), the original
            Transformer and fairseq's default, which Wu et al. 2021's small-data results use.
        norm: ``"layer"`` (LayerNormalization) or ``"rms"`` (no bias, no mean subtracted:
            T5's).
        norm_epsilon: The norms' epsilon.
        activation: The feed-forward's: ``relu``, ``gelu`` or ``gelu_approximate``.
        gated_ffn: Gate the feed-forward's inner layer by a second projection (GEGLU with
            GELU; T5 v1.1 and Flan-T5).
        use_bias: Biases in the attention and feed-forward projections (T5 has none).
        head_dim: Size of each head's queries, keys and values; None: ``dim // num_heads``.
        positions: ``"sinusoidal"`` (added to the scaled token embeddings),
            ``"relative"`` (T5: a learned bias on every self-attention's scores, by bucket
            of the distance; the embeddings are neither scaled nor summed with positions)
            or ``"learned"`` (BART: a table of ``max_positions`` rows added to the unscaled
            token embeddings).
        relative_buckets, relative_max_distance: The relative bias's buckets.
        max_positions: The learned table's rows (the longest sequence); unused otherwise.
        embedding_norm: A norm on the embeddings before the first layer (BART).
        **kwargs: Keras layer arguments.

    Returns (from ``call``): ``{"outputs": (batch, S, dim), "mask": (batch, S) bool}``.

    Example:
        >>> import numpy as np
        >>> enc = TransformerEncoder(vocab_size=20, dim=8, num_layers=1, num_heads=2, ff_dim=16)
        >>> tuple(enc(np.array([[4, 5, 3, 0]]))["outputs"].shape)
        (1, 4, 8)
    """

    def __init__(self, vocab_size, dim=256, num_layers=3, num_heads=8, ff_dim=1024,
                 dropout=0.1, attention_dropout=0.0, activation_dropout=None,
                 normalize_first=True, norm="layer", norm_epsilon=1e-6, activation="relu",
                 gated_ffn=False, use_bias=True, head_dim=None, positions="sinusoidal",
                 relative_buckets=32, relative_max_distance=128, max_positions=1024,
                 embedding_norm=False, **kwargs):
        super().__init__(vocab_size, dim, num_layers, num_heads, ff_dim, dropout,
                         attention_dropout, activation_dropout, normalize_first, norm,
                         norm_epsilon, activation, gated_ffn, use_bias, head_dim, positions,
                         relative_buckets, relative_max_distance, max_positions,
                         embedding_norm, **kwargs)
        self.blocks = [{"norm1": self._norm(f"l{i}_norm1"),
                        "attn": self._mha(f"l{i}_self_attention"),
                        "norm2": self._norm(f"l{i}_norm2"),
                        "ffn": self._ffn(f"l{i}_ffn")} for i in range(self.num_layers)]

    @property
    def output_dim(self):
        return self.dim

    def build(self, input_shape=None):
        self._build_positions()
        for b in self.blocks:
            b["norm1"].build((None, None, self.dim))
            b["attn"].build((None, None, self.dim), (None, None, self.dim))
            b["norm2"].build((None, None, self.dim))
            b["ffn"].build()
        if self.final_norm is not None:
            self.final_norm.build((None, None, self.dim))
        self.built = True

    def call(self, ids, training=None):
        mask = ops.not_equal(ids, 0)
        rows = PackedRows(mask) if training and self.pack_training else None
        bias = self._bias(ops.shape(ids)[1])
        if rows is None:
            x = self._embed(ids)  # (batch, S, dim)

            def attend(attn, y):
                # Masks go in explicitly: an implicit Keras mask would not survive the residual.
                return attn(query=y, value=y, query_mask=mask, value_mask=mask,
                            training=training, score_bias=bias)
        else:
            x = self._embed(rows.pack(ids), positions=rows.positions)  # (N, dim)

            def attend(attn, y):
                return attn.attend_packed(y, y, rows, rows, training=training,
                                          score_bias=bias)[0]
        x = self.drop(x, training=training)
        for b in self.blocks:
            x, _ = self._residual(x, b["norm1"], lambda y, b=b: (attend(b["attn"], y), None),
                                  training)
            x, _ = self._residual(x, b["norm2"], lambda y, b=b: (
                b["ffn"](y, training=training), None), training)
        x = self._final(x)
        return {"outputs": x if rows is None else rows.unpack(x), "mask": mask}


@register_network
class TransformerDecoder(_Base, Decoder):
    _bidirectional = False

    """Transformer decoder (pre-norm by default); its step keeps a key/value cache.

    The cache is either a window of ``max_length`` positions per layer that rolls, or a
    cache that grows (``initial_state(..., growing=True)``). The window has constant shapes
    (XLA compiles it once; LiteRT needs it): each step drops the oldest (still empty) slot
    and appends the new keys/values at the end, a slice and a concatenation, instead of
    blending every slot with a position mask (the blend's broadcast was half of an exported
    ONNX step at batch 64). A growing cache appends only, and a step attends to every
    position so far with no mask (every slot is real). Attention ignores the order of its
    keys; the positions live in the embeddings, so in a window only the mask knows the
    layout: a row that has taken ``i + 1`` steps sees the last ``i + 1`` slots.

    Args:
        vocab_size: Target vocabulary size.
        dim, num_layers, num_heads, ff_dim, dropout, attention_dropout, activation_dropout,
            normalize_first, norm, norm_epsilon, activation, gated_ffn, use_bias, head_dim,
            positions, relative_buckets, relative_max_distance, max_positions,
            embedding_norm: As the encoder's (a decoder's relative position bias is causal:
            keys after the query have none).
        tie_embeddings: Use the embedding matrix as the output projection (else a Dense
            layer, with a bias when ``use_bias``).
        copy: Pointer-generator output (see :class:`zoo.layers.Decoder`) over the last
            layer's cross-attention, averaged over heads.
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> enc = TransformerEncoder(vocab_size=20, dim=8, num_layers=1, num_heads=2, ff_dim=16)
        >>> dec = TransformerDecoder(vocab_size=20, dim=8, num_layers=1, num_heads=2, ff_dim=16)
        >>> tuple(dec(np.array([[2, 7]]), enc(np.array([[4, 5, 3]]))).shape)
        (1, 2, 20)
    """

    def __init__(self, vocab_size, dim=256, num_layers=3, num_heads=8, ff_dim=1024,
                 dropout=0.1, attention_dropout=0.0, activation_dropout=None,
                 tie_embeddings=True, copy=False, normalize_first=True, norm="layer",
                 norm_epsilon=1e-6, activation="relu", gated_ffn=False, use_bias=True,
                 head_dim=None, positions="sinusoidal", relative_buckets=32,
                 relative_max_distance=128, max_positions=1024, embedding_norm=False,
                 **kwargs):
        super().__init__(vocab_size, dim, num_layers, num_heads, ff_dim, dropout,
                         attention_dropout, activation_dropout, normalize_first, norm,
                         norm_epsilon, activation, gated_ffn, use_bias, head_dim, positions,
                         relative_buckets, relative_max_distance, max_positions,
                         embedding_norm, copy=copy, **kwargs)
        self.tie_embeddings = bool(tie_embeddings)
        self.blocks = [{"norm1": self._norm(f"l{i}_norm1"),
                        "self_attn": self._mha(f"l{i}_self_attention"),
                        "norm2": self._norm(f"l{i}_norm2"),
                        "cross_attn": self._mha(f"l{i}_cross_attention"),
                        "norm3": self._norm(f"l{i}_norm3"),
                        "ffn": self._ffn(f"l{i}_ffn")} for i in range(self.num_layers)]
        self.output_layer = None if self.tie_embeddings else keras.layers.Dense(
            self.vocab_size, use_bias=self.use_bias, dtype=self.dtype_policy, name="logits")

    def build(self, target_ids_shape=None, encoded_shape=None):
        memory_dim = encoded_shape["outputs"][-1]
        self._build_positions()
        d = self.dim
        for b in self.blocks:
            for k in ("norm1", "norm2", "norm3"):
                b[k].build((None, None, d))
            b["self_attn"].build((None, None, d), (None, None, d))
            b["cross_attn"].build((None, None, d), (None, None, memory_dim))
            b["ffn"].build()
        if self.final_norm is not None:
            self.final_norm.build((None, None, d))
        if self.output_layer is not None:
            self.output_layer.build((None, d))
        self._build_copy(d)
        self.built = True

    @property
    def weights_attention(self):
        return self.blocks[-1]["cross_attn"]

    def _gate_input(self, features):
        return self._final(features)  # pre-norm: the residual stream's scale grows with depth

    def _output(self, features, weights, training):
        x = self._final(features)
        if self.output_layer is not None:
            return ops.cast(self.output_layer(x), "float32")
        return self._tied_logits(x)

    def _block(self, b, x, self_attend, cross_attend, training):
        """One decoder layer, for both paths: ``self_attend(y)`` and ``cross_attend(y) ->
        (context, weights)`` are the only things teacher forcing and a step do differently."""
        x, _ = self._residual(x, b["norm1"], lambda y: (self_attend(y), None), training)
        x, w = self._residual(x, b["norm2"], cross_attend, training)
        x, _ = self._residual(x, b["norm3"], lambda y: (b["ffn"](y, training=training), None),
                              training)
        return x, w

    def _sequence_features(self, target_ids, encoded, training):
        mask = ops.not_equal(target_ids, 0)
        mem, mem_mask = encoded["outputs"], encoded["mask"]
        rows = PackedRows(mask) if training and self.pack_training else None
        bias = self._bias(ops.shape(target_ids)[1])
        if rows is None:
            x = self._embed(target_ids)  # (batch, T, dim)

            def self_attend(b, y):
                return b["self_attn"](query=y, value=y, query_mask=mask, value_mask=mask,
                                      use_causal_mask=True, training=training,
                                      score_bias=bias)

            def cross_attend(b, y):
                return b["cross_attn"].attend(query=y, value=mem, query_mask=mask,
                                              value_mask=mem_mask, training=training)
        else:
            x = self._embed(rows.pack(target_ids), positions=rows.positions)  # (N, dim)
            mem_rows = PackedRows(mem_mask)
            mem = mem_rows.pack(mem)  # (Ns, dim), once for every layer

            def self_attend(b, y):
                return b["self_attn"].attend_packed(y, y, rows, rows, use_causal_mask=True,
                                                    training=training, score_bias=bias)[0]

            def cross_attend(b, y):
                return b["cross_attn"].attend_packed(y, mem, rows, mem_rows,
                                                     training=training)
        x = self.drop(x, training=training)
        weights = None
        for b in self.blocks:
            x, weights = self._block(b, x, lambda y, b=b: self_attend(b, y),
                                     lambda y, b=b: cross_attend(b, y), training)
        if rows is not None:
            x = rows.unpack(x)  # (batch, T, dim), zeros at padding
        # Last layer's cross-attention averaged over heads: (batch, T, S).
        return x, ops.mean(weights, axis=1)

    def _prepare_memory(self, encoded):
        """The constant per-source input of every ``step``: each layer's projected memory.

        Args:
            encoded: The encoder's output dict (``outputs``, ``mask``).

        Returns:
            ``{"mask": (batch, S) bool, "layers": [{"keys", "values"} per layer]}``, leading
            axis ``batch``: the cross-attentions' ``prepare`` dicts, whose source mask (the
            same for every layer) is kept once, so a decoding loop that drops finished rows
            gathers it once and an exported step prepares it once.
        """
        layers = [b["cross_attn"].prepare(value=encoded["outputs"], value_mask=encoded["mask"])
                  for b in self.blocks]
        mask = layers[0]["mask"]
        return {"mask": mask, "layers": [{k: v for k, v in layer.items() if k != "mask"}
                                         for layer in layers]}

    def initial_state(self, encoded, max_length, growing=False):
        """Empty self-attention caches: a rolling window of ``max_length`` positions, or with
        ``growing`` caches that start empty and grow by one position a step.

        The window keeps every shape constant (XLA, LiteRT). A growing cache is cheaper
        where shapes may change (TensorFlow without XLA, ONNX): a step copies and attends
        to the positions so far instead of ``max_length`` (with ``max_length`` 24, beam
        search at batch 64 in onnxruntime spent a fifth of its step rolling the windows).

        Args:
            encoded: The encoder's output dict (gives the batch size).
            max_length: Cache positions (the longest decode); unused when ``growing``.
            growing: Caches that grow (the state then holds an empty ``growing`` entry,
                which tells ``step`` to append rather than roll).

        Returns:
            ``{"index": (batch,), "layers": [{"keys": (batch, H, kd, L), "values": (batch, H,
            L, vd)}]}`` (the self-attention's ``empty_cache``); ``L`` is 0 when growing.
        """
        batch = ops.shape(encoded["outputs"])[0]
        length = None if growing else max_length
        state = {"index": ops.zeros((batch,), "int32"),
                 "layers": [b["self_attn"].empty_cache(batch, length) for b in self.blocks]}
        if growing:
            state["growing"] = ()
        return state

    def _step_features(self, token_ids, state, memory, training):
        """One token per sequence; puts its keys/values in the cache (rolled or grown)."""
        index = state["index"]  # (batch,)
        growing = "growing" in state
        x = self._embed(token_ids, positions=index)  # (batch, dim)
        if growing:
            # Every row started empty and appended one slot a step: every slot is real, and
            # a step without a mask saves kernels in every exported step.
            visible = None
        else:
            slots = ops.shape(state["layers"][0]["values"])[2]
            positions = ops.expand_dims(ops.arange(slots, dtype="int32"), 0)  # (1, L)
            # After this step the row's i + 1 entries fill the last i + 1 slots.
            visible = ops.greater_equal(positions, slots - 1 - ops.expand_dims(index, 1))
        bias = None
        if self.position_bias is not None:
            # The keys after this step's: the cache so far plus one, or the window.
            keys = ops.shape(state["layers"][0]["values"])[2]
            bias = self.position_bias.for_step(keys + 1 if growing else keys)
        new_layers, weights = [], None
        for b, layer, mem in zip(self.blocks, state["layers"], memory["layers"]):
            cache = {}
            put = b["self_attn"].append_cache if growing else b["self_attn"].roll_cache

            def self_attend(y, b=b, layer=layer, cache=cache, put=put):
                cache.update(put(layer, b["self_attn"].prepare(value=ops.expand_dims(y, 1))))
                ctx, _, _ = b["self_attn"].step(y, {**cache, "mask": visible, "bias": bias},
                                                {}, training=training)
                return ctx

            def cross_attend(y, b=b, mem=mem):
                ctx, w, _ = b["cross_attn"].step(y, {**mem, "mask": memory["mask"]}, {},
                                                 training=training)
                return ctx, w

            x, weights = self._block(b, x, self_attend, cross_attend, training)
            new_layers.append(cache)
        new_state = {**state, "index": index + 1, "layers": new_layers}
        # Last layer's cross-attention, averaged over heads: (batch, S).
        return x, ops.mean(weights, axis=1), new_state

    def get_config(self):
        return {**super().get_config(), "tie_embeddings": self.tie_embeddings}
