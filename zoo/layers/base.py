"""The decoder contract, and the registry of encoder and decoder networks.

A decoder writes two things: the features of one step (``_step_features``) and the features of
a whole target at once (``_sequence_features``, teacher forcing: a scan of the same step for
RNNs, one parallel pass for Transformers). Everything after the features is defined once, here,
for both paths: the output distribution (``_output``) and the losses that read the attention
weights (``attention.weights_loss``, e.g. the coverage loss) and the copy distribution of a
pointer-generator (``copy=True``, See et al. 2017). So both hold for training and decoding alike,
for every decoder.
"""

from __future__ import annotations

import keras
from keras import ops

from zoo.attention.packing import PackedRows
from zoo.registry import Registry

#: Encoder and decoder networks by class name (``"RNNEncoder"``...); Keras serialization too.
NETWORKS = Registry("network", base=keras.layers.Layer)


def register_network(cls):
    """Class decorator: registers a network under its class name."""
    return NETWORKS.register(cls.__name__)(cls)


class Decoder(keras.layers.Layer):
    """Base of zoo decoders.

    Subclasses implement ``build(target_ids_shape, encoded_shape)`` (calling
    ``_build_copy(feature_dim)``), ``_prepare_memory``, ``initial_state``, ``_step_features``,
    ``_sequence_features`` and ``_output``, and set ``weights_attention`` (the attention whose
    weights they return).

    With ``copy=True`` the output is a pointer-generator's (See et al. 2017): a generation
    probability ``p_gen = sigmoid(w . features + b)`` mixes the vocabulary distribution with
    the attention weights scattered onto the source's token ids,
    ``P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{j: x_j = w} a_j``, and the "logits" returned
    are ``log P`` (a normalised log-distribution: ``softmax`` of it is ``P``, so every loss
    and decoding strategy works unchanged). Source and target must share one vocabulary; the
    model passes the source ids in the encoder's output dict as ``source_ids``.

    * ``decoder(target_ids, encoded)`` -> logits ``(batch, T, V)``: teacher forcing; in
      training, the weights' losses are added to the layer's losses.
    * ``decoder.forward(target_ids, encoded)`` -> ``{"logits", "attention" (batch, T, S)}``.
    * ``decoder.step(token_ids, state, memory)`` -> ``(logits (batch, V), state,
      weights (batch, S))``.

    Example:
        >>> import numpy as np
        >>> from zoo.layers import RNNDecoder, RNNEncoder
        >>> enc = RNNEncoder(vocab_size=20, embedding_dim=8, units=6)
        >>> dec = RNNDecoder(vocab_size=20, embedding_dim=8, units=10,
        ...                  attention={"class_name": "coverage",
        ...                             "config": {"coverage_loss_weight": 1.0}})
        >>> out = dec.forward(np.array([[2, 7, 5]]), enc(np.array([[4, 5, 3]])), training=True)
        >>> tuple(out["attention"].shape), len(dec.losses)
        ((1, 3, 3), 1)
    """

    #: The attention layer whose weights ``step``/``forward`` return (for weight losses).
    weights_attention = None
    #: Whether XLA can compile the training step (the gradient of a scan over a dynamic
    #: target length cannot be).
    supports_xla_training = True
    #: In training, skip the padding where the decoder can: every decoder projects only
    #: the real target positions onto the vocabulary (zeros at padding); Transformers also
    #: run their layers on the real positions only (:mod:`zoo.attention.packing`).
    #: ``Seq2Seq.compile`` sets it: on for TensorFlow without XLA, off where shapes must be
    #: static.
    pack_training = False

    def __init__(self, copy=False, **kwargs):
        super().__init__(**kwargs)
        self.copy = bool(copy)
        self.copy_gate = keras.layers.Dense(1, dtype=self.dtype_policy, name="copy_gate") \
            if self.copy else None

    def _build_copy(self, feature_dim):
        if self.copy_gate is not None:
            self.copy_gate.build((None, feature_dim))

    @property
    def needs_source_ids(self):
        """Whether ``encoded`` must carry ``source_ids`` (the copy distribution reads them)."""
        return self.copy

    def call(self, target_ids, encoded, training=None):
        return self.forward(target_ids, encoded, training=training)["logits"]

    def forward(self, target_ids, encoded, training=None):
        """Teacher forcing over a whole target.

        Args:
            target_ids: ``(batch, T)`` int ids (bos first, 0 = padding).
            encoded: The encoder's output dict.
            training: Enables dropout and the weights' losses.

        Returns:
            ``{"logits": (batch, T, V) float32, "attention": (batch, T, S) float32,
            "p_gen": (batch, T) float32}`` (``p_gen``: the generation probability of a
            copying decoder; ones for a decoder that does not copy). With ``copy`` the logits
            are log-probabilities.
        """
        features, weights = self._teacher_forced(target_ids, encoded, training)
        if training and not self.copy and self.pack_training:
            logits = self._packed_output(features, ops.not_equal(target_ids, 0), training)
        else:
            logits = self._output(features, weights, training)
        if self.copy:
            logits, p_gen = self._mix(logits, features, weights, self._source_ids(encoded))
        else:
            p_gen = ops.ones(ops.shape(target_ids), "float32")
        return {"logits": logits, "attention": ops.cast(weights, "float32"), "p_gen": p_gen}

    def forward_rows(self, target_ids, encoded, rows, training=None):
        """Teacher forcing, with the logits of the chosen positions only.

        The training step's form of :meth:`forward`. The loss needs the logits only where
        the labels are real. Projecting just those rows onto the vocabulary, and never
        writing a ``(batch, T, V)`` tensor, saves the largest matmul's share of the padding
        and the cross-entropy's.

        Args:
            target_ids: ``(batch, T)`` int ids (bos first, 0 = padding).
            encoded: The encoder's output dict.
            rows: A :class:`zoo.attention.PackedRows` over ``(batch, T)``: the positions whose
                logits are wanted (typically where the labels are not padding).
            training: Enables dropout and the weights' losses.

        Returns:
            ``(N, V)`` float32 logits, one row per position of ``rows``, in its order (with
            ``copy`` these are log-probabilities).

        Example:
            >>> import numpy as np
            >>> from zoo.attention import PackedRows
            >>> from zoo.layers import RNNDecoder, RNNEncoder
            >>> enc = RNNEncoder(vocab_size=20, embedding_dim=8, units=6)
            >>> dec = RNNDecoder(vocab_size=20, embedding_dim=8, units=10)
            >>> rows = PackedRows(np.array([[True, True, False]]))
            >>> tuple(dec.forward_rows(np.array([[2, 7, 5]]), enc(np.array([[4, 5, 3]])),
            ...                        rows).shape)
            (2, 20)
        """
        features, weights = self._teacher_forced(target_ids, encoded, training)
        features, weights = rows.pack(features), rows.pack(weights)  # (N, F), (N, S)
        logits = self._output(features, weights, training)
        if self.copy:
            source_ids = ops.take(self._source_ids(encoded), rows.sentences, axis=0)  # (N, S)
            logits, _ = self._mix(logits, features, weights, source_ids)
        return logits

    def _teacher_forced(self, target_ids, encoded, training):
        """``(features (batch, T, F), weights (batch, T, S))`` of teacher forcing (building
        the layer on first use); in training, the weights' losses are added."""
        if not self.built:
            self.build(tuple(target_ids.shape),
                       keras.tree.map_structure(lambda t: tuple(t.shape), encoded))
        features, weights = self._sequence_features(target_ids, encoded, training)
        if training:
            self._add_weights_loss(weights, ops.not_equal(target_ids, 0))
        return features, weights

    def _packed_output(self, features, mask, training):
        """Logits at the real target positions only, zeros at padding.

        The vocabulary projection is the largest matmul of a training step (a third of a
        small Transformer's), and random batches are about half padding; the loss masks
        padding out, so its logits are never needed. The rows are gathered, projected and
        scattered back: the output keeps its (batch, T, V) shape.
        """
        rows = PackedRows(mask)
        # ``_output`` ignores the weights unless copying, which never packs.
        return rows.unpack(self._output(rows.pack(features), None, training))  # (batch, T, V)

    def step(self, token_ids, state, memory, training=False):
        """One decoding step.

        Args:
            token_ids: ``(batch,)`` the previous tokens.
            state: From ``initial_state`` or the previous step.
            memory: From ``prepare_memory`` (not changed by the step).
            training: Enables dropout.

        Returns:
            ``(logits (batch, V) float32, state, weights (batch, S))``.
        """
        if self.copy:
            source_ids, memory = memory["source_ids"], memory["decoder"]
        features, weights, state = self._step_features(token_ids, state, memory, training)
        logits = self._output(features, weights, training)
        if self.copy:
            logits, _ = self._mix(logits, features, weights, source_ids)
        return logits, state, weights

    def prepare_memory(self, encoded):
        """The constant per-source input of every ``step`` (projected once per source).

        Args:
            encoded: The encoder's output dict (with ``source_ids`` when copying).

        Returns:
            The decoder's memory nest, leading axis ``batch``; a copying decoder's is
            ``{"decoder": ..., "source_ids": (batch, S) int32}``.
        """
        memory = self._prepare_memory(encoded)
        if self.copy:
            return {"decoder": memory, "source_ids": self._source_ids(encoded)}
        return memory

    def _source_ids(self, encoded):
        if "source_ids" not in encoded:
            raise ValueError(f"{type(self).__name__}(copy=True) needs the source ids in the "
                             f"encoder's output dict ('source_ids'); zoo models add them")
        return ops.cast(encoded["source_ids"], "int32")

    def _gate_input(self, features):
        """What ``p_gen`` reads (a decoder may normalise its features first)."""
        return features

    def _mix(self, logits, features, weights, source_ids):
        """The pointer-generator mixture (See et al. 2017, eq. 9).

        Args:
            logits: ``(batch, [T,] V)`` vocabulary logits.
            features: ``(batch, [T,] F)`` the decoder features of the same positions.
            weights: ``(batch, [T,] S)`` attention weights over the source.
            source_ids: ``(batch, S)`` int32 source token ids (0 = padding, weight 0).

        Returns:
            ``(log P (batch, [T,] V) float32, p_gen (batch, [T]) float32)``.
        """
        p_gen = ops.sigmoid(ops.cast(self.copy_gate(self._gate_input(features)), "float32"))
        p_vocab = ops.softmax(ops.cast(logits, "float32"), axis=-1)
        copied = scatter_onto_vocabulary(ops.cast(weights, "float32"), source_ids,
                                         ops.shape(logits)[-1])
        mixed = p_gen * p_vocab + (1.0 - p_gen) * copied
        # The floor keeps log finite where neither part gives mass (a token that is neither
        # likely nor in the source); 1e-12 is far below any probability a decision rests on.
        return ops.log(ops.maximum(mixed, 1e-12)), ops.squeeze(p_gen, -1)

    def _add_weights_loss(self, weights, target_mask):
        attention = self.weights_attention
        if attention is None:
            return
        loss = attention.weights_loss(weights, target_mask)
        if loss is not None:
            self.add_loss(loss)

    # ------------------------------------------------------------------ subclass hooks
    def _sequence_features(self, target_ids, encoded, training):
        """Teacher forcing: ``(features (batch, T, F), weights (batch, T, S))``."""
        raise NotImplementedError

    def _step_features(self, token_ids, state, memory, training):
        """One step: ``(features (batch, F), weights (batch, S), state)``."""
        raise NotImplementedError

    def _output(self, features, weights, training):
        """Features (``(batch, F)`` or ``(batch, T, F)``) -> float32 logits."""
        raise NotImplementedError

    def _tied_logits(self, x):
        """``x @ embedding^T`` as float32 logits: the output projection of a decoder whose
        ``embedding`` (a :class:`TokenEmbedding`) is tied to it (Press & Wolf 2017)."""
        table = ops.cast(self.embedding.embeddings, x.dtype)  # (V, D)
        return ops.cast(ops.matmul(x, ops.transpose(table)), "float32")

    def _prepare_memory(self, encoded):
        """The decoder's own constant per-source input (e.g. the projected keys)."""
        raise NotImplementedError

    def initial_state(self, encoded, max_length=None, growing=False):
        """The state before the first step (what every step changes).

        Args:
            encoded: The encoder's output dict.
            max_length: The longest decode (a fixed-size cache's positions).
            growing: Let the state grow with the steps where shapes may change (no XLA, no
                LiteRT); decoders without a cache ignore it.

        Returns:
            A nest of batch-major tensors.
        """
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "copy": self.copy}


def scatter_onto_vocabulary(weights, ids, vocab_size):
    """Adds each position's weight onto its token id: ``out[..., w] = sum_{j: ids_j = w} a_j``.

    A segment sum over ``batch * vocab`` segments, not a ``(batch, S, V)`` one-hot: memory is
    that of the output, whatever the source length.

    Args:
        weights: ``(batch, S)`` or ``(batch, T, S)`` float weights.
        ids: ``(batch, S)`` int32 token ids.
        vocab_size: ``V`` (int or scalar tensor).

    Returns:
        ``(batch, V)`` or ``(batch, T, V)``, same dtype as ``weights``.

    Example:
        >>> import numpy as np
        >>> out = scatter_onto_vocabulary(np.array([[0.5, 0.25, 0.25]], "float32"),
        ...                               np.array([[4, 5, 4]], "int32"), 6)
        >>> out.numpy().tolist()
        [[0.0, 0.0, 0.0, 0.0, 0.75, 0.25]]
    """
    weights = ops.convert_to_tensor(weights)
    ids = ops.cast(ids, "int32")
    one_step = len(weights.shape) == 2
    if one_step:
        weights = ops.expand_dims(weights, 1)  # (batch, 1, S)
    shape = ops.shape(weights)
    batch, steps, src = shape[0], shape[1], shape[2]
    # Segment of (b, j): b * V + ids[b, j]; the segments run over batch * V rows.
    segments = ids + ops.expand_dims(ops.arange(batch, dtype="int32") * vocab_size, -1)
    data = ops.reshape(ops.transpose(weights, (0, 2, 1)), (batch * src, steps))  # (b*S, T)
    summed = ops.segment_sum(data, ops.reshape(segments, (-1,)), num_segments=batch * vocab_size)
    out = ops.transpose(ops.reshape(summed, (batch, vocab_size, steps)), (0, 2, 1))
    return out[:, 0] if one_step else out
