"""RNN encoder and attentional RNN decoder (Bahdanau and Luong styles)."""

import keras
from keras import ops

import zoo.attention
from zoo.layers.base import Decoder, register_network
from zoo.layers.embedding import TokenEmbedding


def _cast_floats(tree, dtype):
    return keras.tree.map_structure(
        lambda x: ops.cast(x, dtype) if "float" in str(x.dtype) else x, tree)


def _cell(kind, units, dtype, name):
    if kind == "gru":
        return keras.layers.GRUCell(units, dtype=dtype, name=name, reset_after=True)
    if kind == "lstm":
        return keras.layers.LSTMCell(units, dtype=dtype, name=name)
    raise ValueError(f"cell must be 'gru' or 'lstm', got {kind!r}")


@register_network
class RNNEncoder(keras.layers.Layer):
    """Embedding + stacked (bi)directional GRU/LSTM.

    Args:
        vocab_size: Source vocabulary size (id 0 is padding).
        embedding_dim: Embedding size.
        units: Units per direction.
        num_layers: Stacked recurrent layers.
        cell: ``"gru"`` or ``"lstm"``.
        bidirectional: Run each layer in both directions and concatenate.
        dropout: Dropout on embeddings and between layers.
        **kwargs: Keras layer arguments.

    Returns (from ``call``):
        ``{"outputs": (batch, S, units * directions), "mask": (batch, S) bool,
        "final": (batch, units * directions)}`` (``final``: the last states of the top layer).

    Example:
        >>> import numpy as np
        >>> enc = RNNEncoder(vocab_size=20, embedding_dim=8, units=6)
        >>> m = enc(np.array([[4, 5, 3, 0]]))
        >>> tuple(m["outputs"].shape), tuple(m["final"].shape)
        ((1, 4, 12), (1, 12))
    """

    def __init__(self, vocab_size, embedding_dim=256, units=256, num_layers=1, cell="gru",
                 bidirectional=True, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.vocab_size, self.embedding_dim, self.units = int(vocab_size), int(embedding_dim), int(units)
        self.num_layers, self.cell, self.bidirectional = int(num_layers), cell, bool(bidirectional)
        self.dropout = float(dropout)
        _cell(cell, 1, None, "check")
        self.embedding = TokenEmbedding(self.vocab_size, self.embedding_dim,
                                        dtype=self.dtype_policy, name="embedding")
        rnn_cls = keras.layers.GRU if cell == "gru" else keras.layers.LSTM
        self.rnns = []
        for i in range(self.num_layers):
            rnn = rnn_cls(self.units, return_sequences=True, return_state=True,
                          dtype=self.dtype_policy, name=f"rnn_{i}")
            if self.bidirectional:
                rnn = keras.layers.Bidirectional(rnn, dtype=self.dtype_policy, name=f"birnn_{i}")
            self.rnns.append(rnn)
        self.drop = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    @property
    def output_dim(self):
        return self.units * (2 if self.bidirectional else 1)

    def build(self, input_shape=None):
        self.embedding.build()
        dim = self.embedding_dim
        for rnn in self.rnns:
            rnn.build((None, None, dim))
            dim = self.output_dim
        self.built = True

    def call(self, ids, training=None):
        mask = ops.not_equal(ids, 0)
        x = self.drop(self.embedding(ids), training=training)
        for i, rnn in enumerate(self.rnns):
            out = rnn(x, mask=mask, training=training)
            x, states = out[0], out[1:]
            if i + 1 < self.num_layers:
                x = self.drop(x, training=training)
        per_dir = len(states) // (2 if self.bidirectional else 1)
        # GRU: [h] per direction; LSTM: [h, c]: keep the h of each direction.
        final = ops.concatenate([states[0], states[per_dir]], -1) if self.bidirectional \
            else states[0]
        return {"outputs": x, "mask": mask, "final": final}

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "units": self.units,
                "num_layers": self.num_layers, "cell": self.cell,
                "bidirectional": self.bidirectional, "dropout": self.dropout}


@register_network
class RNNDecoder(Decoder):
    """GRU/LSTM decoder with any zoo attention.

    Two wirings (one ``step`` serves teacher forcing and decoding):

    * ``attention_position="before"`` (Bahdanau et al. 2015): the previous hidden state
      queries the memory; ``[embedding; context]`` feeds the cell; the output layer sees
      ``[hidden; context; embedding]``.
    * ``"after"`` (Luong et al. 2015): the cell runs first (fed ``[embedding;
      previous attentional state]`` when ``input_feeding``), its output queries the memory,
      and ``tanh(W [context; hidden])`` is the attentional state the output layer sees.

    Args:
        vocab_size: Target vocabulary size.
        embedding_dim: Embedding size.
        units: Cell size.
        attention: Any name, config or instance from ``zoo.attention``.
        attention_position: ``"before"`` or ``"after"`` (see above).
        input_feeding: Luong input feeding (``"after"`` only).
        cell: ``"gru"`` or ``"lstm"``.
        dropout: Dropout on embeddings and before the output layer.
        bridge: Initialise the cell state from the encoder's ``final`` state through a
            ``tanh`` projection (else zeros).
        output_dim: A linear layer of this size between the features and the vocabulary
            projection (See et al. 2017's ``V``, ``V'``): fewer weights and a cheaper
            softmax layer when the features are wide. None: project directly.
        copy: Pointer-generator output (see :class:`zoo.layers.Decoder`): mix in the
            attention weights scattered onto the source's ids, gated by ``p_gen``.
        tie_embeddings: Project onto the vocabulary with the (transposed) target embedding
            matrix instead of a layer of its own (Press & Wolf 2017): ``vocab * dim`` fewer
            weights, and the output layer learns from every input token. The features must
            reach the projection at the embedding size: set ``output_dim=embedding_dim``
            unless the features already have it.
        **kwargs: Keras layer arguments.

    Example:
        >>> import numpy as np
        >>> enc = RNNEncoder(vocab_size=20, embedding_dim=8, units=6)
        >>> dec = RNNDecoder(vocab_size=20, embedding_dim=8, units=10, attention="additive")
        >>> memory = enc(np.array([[4, 5, 3]]))
        >>> tuple(dec(np.array([[2, 7]]), memory).shape)
        (1, 2, 20)
    """

    supports_xla_training = False  # the teacher-forcing scan over a dynamic length

    def __init__(self, vocab_size, embedding_dim=256, units=512, attention="additive",
                 attention_position="before", input_feeding=True, cell="gru", dropout=0.0,
                 bridge=True, output_dim=None, copy=False, tie_embeddings=False, **kwargs):
        super().__init__(copy=copy, **kwargs)
        if attention_position not in ("before", "after"):
            raise ValueError(f"attention_position must be 'before' (Bahdanau) or 'after' "
                             f"(Luong), got {attention_position!r}")
        self.vocab_size, self.embedding_dim, self.units = int(vocab_size), int(embedding_dim), int(units)
        self.attention_position, self.input_feeding = attention_position, bool(input_feeding)
        self.cell_kind, self.dropout, self.bridge = cell, float(dropout), bool(bridge)
        self.attention = zoo.attention.get(attention)
        self.embedding = TokenEmbedding(self.vocab_size, self.embedding_dim,
                                        dtype=self.dtype_policy, name="embedding")
        self.cell = _cell(cell, self.units, self.dtype_policy, "cell")
        self.drop = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        if output_dim is not None and int(output_dim) < 1:
            raise ValueError(f"output_dim must be a positive integer or None, got {output_dim}")
        self.output_dim = None if output_dim is None else int(output_dim)
        self.bottleneck = None if self.output_dim is None else keras.layers.Dense(
            self.output_dim, dtype=self.dtype_policy, name="bottleneck")
        self.tie_embeddings = bool(tie_embeddings)
        if self.tie_embeddings and self.output_dim not in (None, self.embedding_dim):
            raise ValueError(f"tie_embeddings: output_dim ({self.output_dim}) must equal "
                             f"embedding_dim ({self.embedding_dim}), the size the tied "
                             f"embedding matrix projects from")
        self.output_layer = None if self.tie_embeddings else keras.layers.Dense(
            self.vocab_size, dtype=self.dtype_policy, name="logits")
        self.bridge_layer = keras.layers.Dense(self.units, activation="tanh",
                                               dtype=self.dtype_policy, name="bridge")
        self.attentional = keras.layers.Dense(self.units, activation="tanh", use_bias=False,
                                              dtype=self.dtype_policy, name="attentional")

    @property
    def _feeds(self):
        return self.attention_position == "after" and self.input_feeding

    def build(self, target_ids_shape=None, encoded_shape=None):
        """Creates the weights for the memory dict's shapes (``outputs``, ``final``)."""
        memory_dim = encoded_shape["outputs"][-1]
        final_dim = encoded_shape["final"][-1] if "final" in encoded_shape else memory_dim
        self.embedding.build()
        if not self.attention.built:  # a deserialized attention arrives built
            self.attention.build((None, None, self.units), (None, None, memory_dim))
        ctx_dim = self.attention.compute_output_shape(
            (None, 1, self.units), (None, 1, memory_dim))[-1]
        if self.attention_position == "before":
            cell_in = self.embedding_dim + ctx_dim
            out_in = self.units + ctx_dim + self.embedding_dim
        else:
            cell_in = self.embedding_dim + (self.units if self._feeds else 0)
            out_in = self.units
            self.attentional.build((None, ctx_dim + self.units))
        self.cell.build((None, cell_in))
        if self.bridge:
            self.bridge_layer.build((None, final_dim or memory_dim))
        if self.bottleneck is not None:
            self.bottleneck.build((None, out_in))
        if self.tie_embeddings and (self.output_dim or out_in) != self.embedding_dim:
            raise ValueError(f"tie_embeddings: the features reach the output projection with "
                             f"{out_in} values, not embedding_dim={self.embedding_dim}; set "
                             f"output_dim={self.embedding_dim}")
        if self.output_layer is not None:
            self.output_layer.build((None, self.output_dim or out_in))
        self._build_copy(out_in)
        self._feature_dim = out_in
        self._memory_dim = memory_dim
        self.built = True

    # ------------------------------------------------------------------ state
    def _prepare_memory(self, encoded):
        """The constant per-source input of every ``step``: the attention's projected memory.

        Args:
            encoded: The encoder's output dict (``outputs``, ``mask``).

        Returns:
            The attention's ``prepare`` dict (``keys``, ``values``, ``mask``...), leading axis
            ``batch``.
        """
        return self.attention.prepare(value=encoded["outputs"], value_mask=encoded["mask"])

    def initial_state(self, encoded, max_length=None, growing=False):
        """The varying decoder state before the first step (``max_length`` and ``growing``
        are unused by RNNs: their state has one size).

        Args:
            encoded: The encoder's output dict (``final`` feeds the bridge).
            max_length: Unused (the Transformer decoder's cache size).
            growing: Unused (the Transformer decoder's growing cache).

        Returns:
            ``{"cell": {"h"[, "c"]}, "attention": {...}[, "feed"]}``, leading axis ``batch``.
        """
        outputs = encoded["outputs"]
        batch, src_len = ops.shape(outputs)[0], ops.shape(outputs)[1]
        if self.bridge:
            h = self.bridge_layer(encoded["final"])
        else:
            h = ops.zeros((batch, self.units), self.compute_dtype)
        cell = {"h": h}
        if self.cell_kind == "lstm":
            cell["c"] = ops.zeros_like(h)
        state = {"cell": cell,
                 "attention": self.attention.initial_state(batch, src_len,
                                                           dtype=self.compute_dtype)}
        if self._feeds:
            state["feed"] = ops.zeros((batch, self.units), self.compute_dtype)
        return state

    def _cell_call(self, x, cell_state, training):
        states = [cell_state["h"]] + ([cell_state["c"]] if "c" in cell_state else [])
        h, new = self.cell(x, states, training=training)
        new = new if isinstance(new, (list, tuple)) else [new]
        out = {"h": new[0]}
        if "c" in cell_state:
            out["c"] = new[1]
        return h, out

    def _step_core(self, emb, state, memory, training):
        """One step from an embedded token: returns (features, weights, state)."""
        new_state = dict(state)
        if self.attention_position == "before":
            ctx, weights, att = self.attention.step(state["cell"]["h"], memory,
                                                    state["attention"], training=training)
            h, cell = self._cell_call(ops.concatenate([emb, ops.cast(ctx, emb.dtype)], -1),
                                      state["cell"], training)
            features = ops.concatenate([h, ops.cast(ctx, h.dtype), emb], -1)
        else:
            x = ops.concatenate([emb, state["feed"]], -1) if self._feeds else emb
            h, cell = self._cell_call(x, state["cell"], training)
            ctx, weights, att = self.attention.step(h, memory, state["attention"],
                                                    training=training)
            features = self.attentional(ops.concatenate([ops.cast(ctx, h.dtype), h], -1))
            if self._feeds:
                new_state["feed"] = features
        new_state["cell"], new_state["attention"] = cell, att
        if self.attention.has_heads:
            weights = ops.mean(weights, axis=1)  # (batch, S)
        return features, weights, new_state

    @property
    def weights_attention(self):
        return self.attention

    def _output(self, features, weights, training):
        x = self.drop(features, training=training)
        if self.bottleneck is not None:
            x = self.bottleneck(x)
        if self.output_layer is not None:
            return ops.cast(self.output_layer(x), "float32")
        return self._tied_logits(x)

    def _step_features(self, token_ids, state, memory, training):
        return self._step_core(self.embedding(token_ids), state, memory, training)

    @property
    def _parallel(self):
        """True when the attention never feeds back into the recurrence (Luong attention
        after the cell, no input feeding, a stateless attention): teacher forcing then runs
        the cell over the whole target first and attends from every position at once."""
        return (self.attention_position == "after" and not self.input_feeding
                and not self.attention.has_state)

    def _input_projection(self, x):
        """``x @ kernel + input bias`` of the cell for a whole sequence at once, ``x`` being
        the first features of the cell's input (the embedding): the part of a step that does
        not depend on the previous state, hoisted out of the time loop."""
        kernel = ops.cast(self.cell.kernel[:ops.shape(x)[-1]], x.dtype)
        x = ops.matmul(x, kernel)
        if self.cell.use_bias:
            bias = self.cell.bias[0] if self.cell_kind == "gru" else self.cell.bias
            x = x + ops.cast(bias, x.dtype)
        return x

    def _recurrence(self, xw, cell_state):
        """The rest of the cell's step given ``xw``, the input projection with its bias:
        the maths of ``keras.layers.GRUCell`` (``reset_after``) and ``LSTMCell``, so teacher
        forcing matches the ``step`` that decoding runs (a test holds them equal)."""
        c = self.cell
        h = cell_state["h"]
        inner = ops.matmul(h, ops.cast(c.recurrent_kernel, h.dtype))
        if self.cell_kind == "gru":
            if c.use_bias:
                inner = inner + ops.cast(c.bias[1], h.dtype)
            x_z, x_r, x_h = ops.split(xw, 3, axis=-1)
            r_z, r_r, r_h = ops.split(inner, 3, axis=-1)
            z = c.recurrent_activation(x_z + r_z)
            r = c.recurrent_activation(x_r + r_r)
            hh = c.activation(x_h + r * r_h)
            h = z * h + (1 - z) * hh
            return h, {"h": h}
        g_i, g_f, g_c, g_o = ops.split(xw + inner, 4, axis=-1)
        cell = (c.recurrent_activation(g_f) * cell_state["c"]
                + c.recurrent_activation(g_i) * c.activation(g_c))
        h = c.recurrent_activation(g_o) * c.activation(cell)
        return h, {"h": h, "c": cell}

    def _sequence_features(self, target_ids, encoded, training):
        """Teacher forcing: a scan over the target (the cell's input projection of the
        embeddings hoisted out of it), or, when ``_parallel``, the recurrence alone followed
        by one attention over all positions."""
        emb = self.drop(self.embedding(target_ids), training=training)  # (batch, T, E)
        state = self.initial_state(encoded)
        compute = self.compute_dtype
        if self._parallel:
            return self._parallel_features(emb, state, encoded, training)
        memory = self._prepare_memory(encoded)
        # The embedding's share of the cell input projection, for every step in one matmul.
        emb_proj = self._input_projection(emb)  # (batch, T, gates * units)
        emb_dim = self.embedding_dim
        rest_kernel = self.cell.kernel[emb_dim:]

        def cell_step(emb_proj_t, rest, cell_state):
            xw = emb_proj_t + ops.matmul(rest, ops.cast(rest_kernel, rest.dtype))
            return self._recurrence(xw, cell_state)

        def body(carry, inputs):
            s, _, _ = carry
            s = _cast_floats(s, compute)
            inputs = ops.cast(inputs, compute)
            emb_t, proj_t = inputs[:, :emb_dim], inputs[:, emb_dim:]
            new_state = dict(s)
            if self.attention_position == "before":
                ctx, w, att = self.attention.step(s["cell"]["h"], memory, s["attention"],
                                                  training=training)
                ctx = ops.cast(ctx, compute)
                h, cell = cell_step(proj_t, ctx, s["cell"])
                feats = ops.concatenate([h, ctx, emb_t], -1)
            else:
                if self._feeds:
                    h, cell = cell_step(proj_t, s["feed"], s["cell"])
                else:
                    h, cell = self._recurrence(proj_t, s["cell"])
                ctx, w, att = self.attention.step(h, memory, s["attention"], training=training)
                feats = self.attentional(ops.concatenate([ops.cast(ctx, h.dtype), h], -1))
                if self._feeds:
                    new_state["feed"] = feats
            new_state["cell"], new_state["attention"] = cell, att
            if self.attention.has_heads:
                w = ops.mean(w, axis=1)  # (batch, S)
            # The scan carries float32 whatever the compute dtype: TF's scan gradient fails
            # on float16 tensor lists under mixed precision.
            out = (_cast_floats(new_state, "float32"), ops.cast(feats, "float32"),
                   ops.cast(w, "float32"))
            return out, out  # keras.ops.scan on TF: outputs mirror the carry

        batch, src_len = ops.shape(target_ids)[0], ops.shape(encoded["outputs"])[1]
        init = (_cast_floats(state, "float32"), ops.zeros((batch, self._feature_dim), "float32"),
                ops.zeros((batch, src_len), "float32"))
        # One sequence of inputs: Keras 3.15's TF scan fails on several whose length is
        # unknown when traced.
        time_major = ops.transpose(
            ops.concatenate([ops.cast(emb, "float32"), ops.cast(emb_proj, "float32")], -1),
            (1, 0, 2))
        _, (_, feats, weights) = ops.scan(body, init, time_major)
        feats = ops.cast(ops.transpose(feats, (1, 0, 2)), compute)  # (batch, T, F)
        return feats, ops.transpose(weights, (1, 0, 2))  # (batch, T, S)

    def _parallel_features(self, emb, state, encoded, training):
        compute = self.compute_dtype

        def body(carry, proj_t):
            h, cell = self._recurrence(ops.cast(proj_t, compute),
                                       _cast_floats(carry[0], compute))
            out = (_cast_floats(cell, "float32"), ops.cast(h, "float32"))
            return out, out  # keras.ops.scan on TF: outputs mirror the carry

        proj = ops.transpose(ops.cast(self._input_projection(emb), "float32"), (1, 0, 2))
        init = _cast_floats(state["cell"], "float32")
        _, (_, hs) = ops.scan(body, (init, init["h"]), proj)
        hs = ops.cast(ops.transpose(hs, (1, 0, 2)), compute)  # (batch, T, units)
        ctx, weights = self.attention.attend(query=hs, value=encoded["outputs"],
                                             value_mask=encoded["mask"], training=training)
        if self.attention.has_heads:
            weights = ops.mean(weights, axis=1)  # (batch, T, S)
        features = self.attentional(ops.concatenate([ops.cast(ctx, hs.dtype), hs], -1))
        return features, ops.cast(weights, "float32")

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "units": self.units,
                "attention": keras.saving.serialize_keras_object(self.attention),
                "attention_position": self.attention_position,
                "input_feeding": self.input_feeding, "cell": self.cell_kind,
                "dropout": self.dropout, "bridge": self.bridge, "output_dim": self.output_dim,
                "tie_embeddings": self.tie_embeddings}
