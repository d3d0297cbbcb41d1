"""The real (non-padding) positions of a padded batch, packed into rows and back.

Random batches of text are about half padding, and every position-wise part of a
Transformer (projections, feed-forward, norms, dropout, the vocabulary projection) costs the
same at a padding position as at a real one. Packing the real positions into ``(N, ...)``
rows lets those parts skip the padding; only the products between positions (attention's
scores and weighted sums) need the padded ``(batch, T, ...)`` layout, and get it back from
:meth:`PackedRows.unpack`. Removing padding this way is what FasterTransformer calls
"remove padding" (Effective Transformer); the results at real positions are the padded
computation's.

The number of rows depends on the data, so packed graphs need dynamic shapes: TensorFlow
without XLA. ``Seq2Seq.compile`` turns packing on only there.
"""

from keras import ops


class PackedRows:
    """Where the real positions of a ``(batch, T)`` mask are, and how to move between layouts.

    Args:
        mask: ``(batch, T)`` bool, True at real positions.

    Attributes:
        mask: The mask.
        index: ``(N,)`` int flat indices (``b * T + t``) of the real positions, in order.
        positions: ``(N,)`` int the time index ``t`` of each row.
        sentences: ``(N,)`` int the batch index ``b`` of each row (to give each row its
            sentence's per-sentence values, e.g. ``ops.take(source_ids, rows.sentences, 0)``).

    Example:
        >>> import numpy as np
        >>> rows = PackedRows(np.array([[True, True, False], [True, False, False]]))
        >>> x = np.arange(6, dtype="float32").reshape(2, 3, 1)
        >>> rows.pack(x)[:, 0].numpy().tolist()
        [0.0, 1.0, 3.0]
        >>> rows.unpack(rows.pack(x))[:, :, 0].numpy().tolist()
        [[0.0, 1.0, 0.0], [3.0, 0.0, 0.0]]
    """

    def __init__(self, mask):
        self.mask = ops.cast(mask, "bool")
        shape = ops.shape(self.mask)
        self.batch, self.length = shape[0], shape[1]
        self.index = ops.cast(ops.nonzero(ops.reshape(self.mask, (-1,)))[0], "int32")  # (N,)
        self.positions = self.index % ops.cast(self.length, "int32")
        self.sentences = self.index // ops.cast(self.length, "int32")

    def pack(self, x):
        """``(batch, T, ...) -> (N, ...)``: the rows at real positions."""
        x = ops.convert_to_tensor(x)
        return ops.take(ops.reshape(x, (-1,) + _tail(x)), self.index, axis=0)

    def unpack(self, rows):
        """``(N, ...) -> (batch, T, ...)``, zeros at padding positions."""
        tail = _tail(rows, 1)
        out = ops.scatter(ops.expand_dims(self.index, -1), rows,
                          (self.batch * self.length,) + tail)
        return ops.reshape(out, (self.batch, self.length) + tail)


def _tail(x, start=2):
    """The sizes of ``x``'s axes from ``start`` on, static where known (a dynamic size, e.g.
    the source length of attention weights, where not)."""
    dynamic = ops.shape(x)
    return tuple(dynamic[i] if size is None else size
                 for i, size in enumerate(x.shape) if i >= start)
