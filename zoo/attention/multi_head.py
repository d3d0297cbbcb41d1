"""Multi-head attention (Vaswani et al. 2017) behind the zoo contract."""

import math

import keras
import numpy as np
from keras import ops

from zoo.attention.base import Attention, causal, independent_initializer, register


def _as_stored(array, shape):
    """``array`` in Keras's per-head layout ((dim, H, d), (H, d) or (H, d, dim_out)) as the
    2-D ``shape`` zoo stores, or unchanged when it is not that layout."""
    array_shape = tuple(getattr(array, "shape", ()))
    shape = tuple(shape)
    if array_shape == shape or len(array_shape) != len(shape) + 1 or \
            math.prod(array_shape) != math.prod(shape):
        return array
    if len(shape) == 1 or array_shape[0] == shape[0] or array_shape[-1] == shape[-1]:
        return np.asarray(array).reshape(shape)
    return array


class _ReshapedStore:
    """A weights store whose arrays are laid out as the layer's variables (a reshape)."""

    def __init__(self, store, shapes):
        self.store, self.shapes = store, shapes

    def keys(self):
        return self.store.keys()

    def __len__(self):
        return len(self.store.keys())

    def __getitem__(self, key):
        array = self.store[key]
        shape = self.shapes.get(key)
        return array if shape is None else _as_stored(array[...], shape)


@keras.saving.register_keras_serializable(package="zoo")
class HeadProjection(keras.layers.EinsumDense):
    """One of multi-head attention's four projections, stored as the 2-D matrix it multiplies.

    ``(dim, H * d)`` for the queries, keys and values, ``(H * d, dim_out)`` for the output:
    Keras's per-head ``(dim, H, d)`` kernels cost a reshape of every kernel in every call,
    and XLA on CPU fuses that reshape into a one-row product (batch-1 decoding) as a naive
    loop, an order of magnitude slower (docs/RESULTS.md). Weights and
    checkpoints in Keras's layout load by a reshape (:meth:`load_own_variables`).

    Args:
        units: Output size (``H * d`` in, ``dim_out`` out).
        **kwargs: ``EinsumDense`` arguments but the equation and output shape.

    Example:
        >>> import numpy as np
        >>> layer = HeadProjection(6, bias_axes="d")
        >>> layer.build((None, None, 4))
        >>> tuple(layer.kernel.shape)  # (dim, H * d)
        (4, 6)
        >>> layer.load_own_variables({"0": np.ones((4, 2, 3)), "1": np.zeros((2, 3))})
        >>> float(layer.kernel.numpy().sum())  # Keras's (dim, H, d) layout, reshaped
        24.0
    """

    def __init__(self, units, **kwargs):
        super().__init__("abc,cd->abd", output_shape=(None, int(units)), **kwargs)
        self.units = int(units)

    def quantize(self, mode=None, type_check=True, config=None):
        # EinsumDense refuses to quantize subclasses, whose call may differ; this one's call
        # is EinsumDense's (``model.quantize`` would otherwise skip the attention).
        super().quantize(mode, type_check=False, config=config)

    def load_own_variables(self, store):
        if self.quantization_mode is None and self.built:
            shapes = {"0": self._kernel.shape}
            if self.bias is not None:
                shapes["1"] = self.bias.shape
            store = _ReshapedStore(store, shapes)
        super().load_own_variables(store)

    def get_config(self):
        config = super().get_config()
        for key in ("equation", "output_shape"):
            config.pop(key)
        return {**config, "units": self.units}


def _project(dense, x, heads=None, rows=False):
    """``dense(x)`` for a :class:`HeadProjection`, as one 2-D matmul.

    With a dynamic length, TensorFlow runs a 3-D einsum as a batched matmul against a
    broadcast kernel, whose gradient is a batched product plus a sum over the batch: that sum
    and the batched kernels were a quarter of a Transformer's training step on CPU. Folding
    (batch, T) into rows gives a plain matmul forward and backward. Quantized or LoRA layers
    run their own call.

    Args:
        dense: A :class:`HeadProjection`.
        x: ``(batch, T, c)``, or ``(batch, T, H, d)`` heads (the output projection's input).
        heads: Split the output into this many heads: ``(batch, T, H, units // H)``.
        rows: ``x`` is packed rows (:mod:`zoo.attention.packing`): no time axis.

    Returns:
        ``(batch, T, units)``, or ``(batch, T, heads, units // heads)`` (no ``T`` for
        ``rows``).
    """
    x = ops.convert_to_tensor(x)
    # A static length (a decoding step's 1) lets the batch be inferred (-1): the step then
    # reshapes without reading its shape at run time (a Shape, a slice and a pack per
    # projection: 54 of the 739 nodes of a 3-layer greedy loop body). -1 cannot infer an
    # empty length.
    if rows:
        lead = (-1,)
    elif x.shape[1]:
        lead = (-1, x.shape[1])
    else:
        lead = (ops.shape(x)[0], ops.shape(x)[1])
    x = ops.reshape(x, (-1, math.prod(x.shape[len(lead):])))  # (rows, c)
    if dense.quantization_mode is not None or getattr(dense, "lora_enabled", False):
        y = dense(ops.expand_dims(x, 1))[:, 0]
    else:
        x = ops.cast(x, dense.compute_dtype)
        y = ops.matmul(x, ops.cast(dense.kernel, dense.compute_dtype))
        if dense.bias is not None:
            y = y + ops.cast(dense.bias, y.dtype)
    units = y.shape[-1]
    return ops.reshape(y, lead + ((heads, units // heads) if heads else (units,)))


@register("multi_head", aliases=("mha", "multihead"))
class MultiHeadAttention(Attention):
    """Multi-head scaled dot-product attention with its own projections.

    ``head_h = softmax(Q_h K_h^T / sqrt(key_dim)) V_h`` with ``Q_h = q W^Q_h``,
    ``K_h = k W^K_h``, ``V_h = v W^V_h``; the heads are concatenated and projected by ``W^O``.
    The weights have the names, order and initial scale of Keras's ``MultiHeadAttention``
    (whose initializers read the fans of the 2-D product too), stored as the 2-D matrices the
    products use (:class:`HeadProjection`): ``(dim, H * d)`` rather than ``(dim, H, d)``.
    Keras's weights copy across by :meth:`set_weights`, and checkpoints with per-head kernels
    load (the same numbers in the same order, reshaped). Unlike Keras's layer, masks are
    honoured however the inputs were produced, and fully masked rows give zeros.

    Args:
        num_heads: Number of heads.
        key_dim: Size of each head's queries and keys; ``None`` means ``dim_q // num_heads``.
        value_dim: Size of each head's values; ``None`` means ``key_dim``.
        output_dim: Size of the output; ``None`` means the query size.
        use_bias: Biases in the four projections.
        kernel_initializer: Initializer of the projections.
        bias_initializer: Initializer of the biases.
        kernel_regularizer: Regularizer of the projections.
        dropout: Dropout rate on the attention weights.
        seed: Dropout seed.
        **kwargs: Keras layer arguments.

    Returns weights of shape ``(batch, num_heads, Tq, Tv)``.

    Example:
        >>> import numpy as np
        >>> layer = MultiHeadAttention(num_heads=2)
        >>> ctx, w = layer.attend(query=np.ones((1, 3, 8), "float32"),
        ...                       value=np.ones((1, 5, 8), "float32"))
        >>> tuple(ctx.shape), tuple(w.shape)
        ((1, 3, 8), (1, 2, 3, 5))
    """

    has_heads = True

    def __init__(self, num_heads=8, key_dim=None, value_dim=None, output_dim=None,
                 use_bias=True, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, dropout=0.0, seed=None, **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        for nm, val in (("num_heads", num_heads), ("key_dim", key_dim),
                        ("value_dim", value_dim), ("output_dim", output_dim)):
            if val is not None and int(val) < 1:
                raise ValueError(f"{nm} must be a positive integer, got {val}")
        self.num_heads = int(num_heads)
        self.key_dim = None if key_dim is None else int(key_dim)
        self.value_dim = None if value_dim is None else int(value_dim)
        self.output_dim = None if output_dim is None else int(output_dim)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def _output_dim(self, query_dim, value_dim):
        return self.output_dim or query_dim

    def _projection(self, units, name, size_in):
        layer = HeadProjection(
            units, bias_axes="d" if self.use_bias else None,
            # One initializer instance would give q, k, v and the output the same values.
            kernel_initializer=independent_initializer(self.kernel_initializer, name),
            bias_initializer=independent_initializer(self.bias_initializer, name),
            kernel_regularizer=self.kernel_regularizer, dtype=self.dtype_policy, name=name)
        layer.build((None, None, size_in))
        return layer

    def build_weights(self, query_dim, key_dim, value_dim):
        h = self.num_heads
        kd = self.key_dim or query_dim // h
        if kd < 1:
            raise ValueError(f"{self._label()}: query size {query_dim} is smaller than "
                             f"num_heads={h}; set key_dim")
        vd = self.value_dim or kd
        self._head_key_dim, self._head_value_dim = kd, vd
        self.query_dense = self._projection(h * kd, "query", query_dim)
        self.key_dense = self._projection(h * kd, "key", key_dim)
        self.value_dense = self._projection(h * vd, "value", value_dim)
        self.output_dense = self._projection(self._output_dim(query_dim, value_dim),
                                             "attention_output", h * vd)
        self._scale_value = 1.0 / math.sqrt(kd)

    # The prepared memory is laid out for the two products of a step (keys (b, H, kd, Tv),
    # values (b, H, Tv, vd)): a decoder step then reads its key/value cache and the encoder's
    # memory without transposing them (transposes were a sixth of an exported step).
    def _prepare(self, key, value):
        h = self.num_heads
        keys = _project(self.key_dense, key, h)  # (batch, Tv, H, kd)
        values = _project(self.value_dense, value, h)  # (batch, Tv, H, vd)
        if keys.shape[1] == 1:
            # One position (a decoding step's new keys): the layouts differ by a reshape.
            # tf2onnx moved the transpose onto the concatenation with the cache instead,
            # transposing the whole key cache twice per layer and step.
            h, kd, vd = keys.shape[2], keys.shape[3], values.shape[3]
            return {"keys": ops.reshape(keys, (-1, h, kd, 1)),
                    "values": ops.reshape(values, (-1, h, 1, vd))}
        return {"keys": ops.transpose(keys, (0, 2, 3, 1)),  # (batch, H, kd, Tv)
                "values": ops.transpose(values, (0, 2, 1, 3))}  # (batch, H, Tv, vd)

    def _score(self, query, memory, state):
        q = _project(self.query_dense, query, self.num_heads) * \
            ops.cast(self._scale_value, query.dtype)
        # (batch, Tq, H, kd) -> (batch, H, Tq, Tv)
        return ops.matmul(ops.transpose(q, (0, 2, 1, 3)), memory["keys"])

    def _combine(self, weights, memory):
        heads = ops.matmul(weights, memory["values"])  # (batch, H, Tq, vd)
        return _project(self.output_dense, ops.transpose(heads, (0, 2, 1, 3)))

    def attend_packed(self, query, value, query_rows, value_rows, use_causal_mask=False,
                      training=None, score_bias=None):
        """:meth:`attend` on packed rows: the four projections run at real positions only.

        Only the products between positions (scores, weighted sum) see the padded layout.
        Everything else is ``attend``'s on the padded inputs (same masks, normalisation,
        dropout); see :mod:`zoo.attention.packing`.

        Args:
            query: ``(Nq, dim_q)``, ``query_rows.pack`` of the padded queries.
            value: ``(Nv, dim_v)``, ``value_rows.pack`` of the padded memory (also the keys).
            query_rows: :class:`~zoo.attention.PackedRows` of the query mask.
            value_rows: :class:`~zoo.attention.PackedRows` of the memory mask.
            use_causal_mask: Hide memory positions after the query's own.
            training: Enables dropout.
            score_bias: As :meth:`attend`'s, ``(1, heads, Tq, Tv)``.

        Returns:
            ``(context, weights)``: context ``(Nq, dim_out)`` packed like ``query``; weights
            ``(batch, heads, Tq, Tv)``, zero at padding queries.

        Example:
            >>> import numpy as np
            >>> from zoo.attention import PackedRows
            >>> layer = MultiHeadAttention(num_heads=2)
            >>> rows = PackedRows(np.array([[True, True, False]]))
            >>> x = rows.pack(np.ones((1, 3, 8), "float32"))  # (2, 8)
            >>> ctx, w = layer.attend_packed(x, x, rows, rows)
            >>> tuple(ctx.shape), tuple(w.shape)
            ((2, 8), (1, 2, 3, 3))
        """
        query = self._as_float(query, "query")
        value = self._as_float(value, "value")
        self._check_rank(query, 2, "query")
        self._check_rank(value, 2, "value")
        if not self.built:
            self.build((None, None, query.shape[-1]), (None, None, value.shape[-1]))
        h = self.num_heads
        q = _project(self.query_dense, query, h, rows=True) * \
            ops.cast(self._scale_value, query.dtype)
        keys = value_rows.unpack(_project(self.key_dense, value, h, rows=True))  # (b, Tv, H, kd)
        values = value_rows.unpack(_project(self.value_dense, value, h, rows=True))
        memory = {"keys": ops.transpose(keys, (0, 2, 3, 1)),  # (batch, H, kd, Tv)
                  "values": ops.transpose(values, (0, 2, 1, 3)),  # (batch, H, Tv, vd)
                  "mask": value_rows.mask}
        mask = ops.expand_dims(value_rows.mask, 1)  # (batch, 1, Tv)
        if use_causal_mask:
            mask = causal(mask, query_rows.length, value_rows.length)
        q = ops.transpose(query_rows.unpack(q), (0, 2, 1, 3))  # (batch, H, Tq, kd)
        scores = ops.matmul(q, memory["keys"])  # (batch, H, Tq, Tv)
        if score_bias is not None:
            scores = scores + ops.cast(score_bias, scores.dtype)
        weights, dropped = self._weigh(scores, mask, query_rows.mask, None, memory, {},
                                       training)
        heads = ops.matmul(dropped, memory["values"])  # (batch, H, Tq, vd)
        heads = query_rows.pack(ops.transpose(heads, (0, 2, 1, 3)))  # (Nq, H, vd)
        return _project(self.output_dense, heads, rows=True), weights

    def empty_cache(self, batch_size, length, dtype=None):
        """A key/value cache of ``length`` empty positions for :meth:`roll_cache`, or with
        ``length=None`` a cache of no positions for :meth:`append_cache`.

        Args:
            batch_size: Batch size (int or scalar tensor).
            length: Positions kept (the longest decode); None for a cache that grows.
            dtype: The cache's dtype; the compute dtype if None.

        Returns:
            ``{"keys": (batch, H, kd, length), "values": (batch, H, length, vd)}`` of zeros,
            laid out as :meth:`prepare`'s memory. A growing cache's length axis has a
            dynamic size from the start (in a graph its static size is None), so a loop
            accepts its growth.

        Example:
            >>> layer = MultiHeadAttention(num_heads=2)
            >>> layer.build((None, None, 4), (None, None, 4))
            >>> tuple(layer.empty_cache(3, None)["keys"].shape)  # (batch, H, kd, 0)
            (3, 2, 2, 0)
        """
        if not self.built:
            raise ValueError(f"{self._label()} is not built: build it before empty_cache")
        dtype = dtype or self.compute_dtype
        h, kd, vd = self.num_heads, self._head_key_dim, self._head_value_dim
        if length is None:
            # One slot gathered by the (empty) nonzero positions of a zero: no positions, and
            # a length a graph does not know when it is built (TensorFlow's shape inference
            # folds a zeros() of a computed 0 back to a static 0, which a loop may not grow).
            none = ops.nonzero(ops.zeros((1,), "bool"))[0]
            return {"keys": ops.take(ops.zeros((batch_size, h, kd, 1), dtype), none, axis=3),
                    "values": ops.take(ops.zeros((batch_size, h, 1, vd), dtype), none,
                                       axis=2)}
        return {"keys": ops.zeros((batch_size, h, kd, int(length)), dtype),
                "values": ops.zeros((batch_size, h, int(length), vd), dtype)}

    def roll_cache(self, cache, new):
        """Drops the oldest position of ``cache`` and appends ``new`` (constant shapes).

        Args:
            cache: ``{"keys", "values"}`` as :meth:`empty_cache` gives.
            new: ``prepare(value=x)`` of one position, ``x (batch, 1, dim)``.

        Returns:
            The cache with ``new`` in its last position.

        Example:
            >>> import numpy as np
            >>> layer = MultiHeadAttention(num_heads=2)
            >>> layer.build((None, None, 4), (None, None, 4))
            >>> cache = layer.empty_cache(1, 3)
            >>> cache = layer.roll_cache(cache, layer.prepare(value=np.ones((1, 1, 4))))
            >>> tuple(cache["values"].shape)  # (batch, H, length, vd)
            (1, 2, 3, 2)
        """
        return {"keys": ops.concatenate([cache["keys"][..., 1:],
                                         ops.cast(new["keys"], cache["keys"].dtype)], axis=3),
                "values": ops.concatenate([cache["values"][:, :, 1:],
                                           ops.cast(new["values"], cache["values"].dtype)],
                                          axis=2)}

    def append_cache(self, cache, new):
        """Appends ``new`` to a growing ``cache`` (``empty_cache(batch, None)``).

        Each step copies the positions so far rather than ``max_length`` of them, and the
        attention reads no empty slots: for graphs whose shapes may change (TensorFlow
        without XLA, ONNX), not for XLA or LiteRT, which take :meth:`roll_cache`.

        Args:
            cache: ``{"keys", "values"}`` of ``t`` positions.
            new: ``prepare(value=x)`` of one position, ``x (batch, 1, dim)``.

        Returns:
            The cache of ``t + 1`` positions, ``new`` last.

        Example:
            >>> import numpy as np
            >>> layer = MultiHeadAttention(num_heads=2)
            >>> layer.build((None, None, 4), (None, None, 4))
            >>> cache = layer.empty_cache(1, None)
            >>> cache = layer.append_cache(cache, layer.prepare(value=np.ones((1, 1, 4))))
            >>> tuple(cache["values"].shape)  # (batch, H, 1, vd)
            (1, 2, 1, 2)
        """
        return {"keys": ops.concatenate([cache["keys"],
                                         ops.cast(new["keys"], cache["keys"].dtype)], axis=3),
                "values": ops.concatenate([cache["values"],
                                           ops.cast(new["values"], cache["values"].dtype)],
                                          axis=2)}

    def set_weights(self, weights):
        """Sets the weights from arrays in this layer's layout or in Keras's per-head one.

        Args:
            weights: ``get_weights()`` of this layer, or of a
                ``keras.layers.MultiHeadAttention`` of the same sizes.
        """
        if len(weights) == len(self.weights):
            weights = [_as_stored(w, v.shape) for w, v in zip(weights, self.weights)]
        super().set_weights(weights)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "output_dim": self.output_dim,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}
