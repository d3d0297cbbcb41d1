"""The masked, label-smoothed sequence loss, summed over the replicas of a strategy."""

import keras
import numpy as np
from keras import ops


def global_sum(value):
    """Sums ``value`` over the replicas of a ``tf.distribute`` strategy (identity outside
    one, and on other backends, whose distributed batches are global arrays)."""
    ctx = replica_context()
    if ctx is None:
        return value
    import tensorflow as tf

    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def replica_context():
    """The ``tf.distribute`` replica context when more than one replica runs, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    return ctx if ctx is not None and ctx.num_replicas_in_sync > 1 else None


@keras.saving.register_keras_serializable(package="zoo")
class SequenceLoss(keras.losses.Loss):
    """Cross-entropy per target token, ignoring padding, with optional label smoothing.

    Returns the mean over the non-padding tokens of the batch (not over sentences, and not
    diluted by padding). Computed in float32 whatever the model's dtype.

    Args:
        label_smoothing: Mass spread uniformly over the vocabulary (Szegedy et al. 2016).
        pad_id: Label id that is ignored.
        name: Loss name.

    Example:
        >>> import numpy as np
        >>> loss = SequenceLoss()
        >>> y = np.array([[1, 0]]); logits = np.zeros((1, 2, 4), "float32")
        >>> round(float(loss(y, logits)), 4)  # log(4): only the first token counts
        1.3863
    """

    def __init__(self, label_smoothing=0.0, pad_id=0, name="sequence_loss", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction="sum", **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing, self.pad_id = float(label_smoothing), int(pad_id)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            sample_weight = ops.convert_to_tensor(sample_weight)
            if len(sample_weight.shape) == 1 and len(ops.shape(y_true)) == 2:
                # One weight per sentence, (batch,): for each of its tokens. (Keras would
                # try to multiply (batch, T) losses by (batch,) and fail inside TensorFlow.)
                sample_weight = ops.expand_dims(sample_weight, -1)
        return super().__call__(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        mask = ops.not_equal(y_true, self.pad_id)
        # Padding labels become a valid id, masked out below: every shape stays static.
        nll = self._nll(ops.where(mask, y_true, 0), ops.cast(y_pred, "float32"))  # (batch, T)
        mask = ops.cast(mask, "float32")
        # "sum" reduction over (batch, T) of nll * mask / tokens = the mean per real token.
        # Under tf.distribute each replica holds part of the batch: dividing by the tokens of
        # the whole global batch makes the replicas' losses (and gradients) sum to exactly
        # the single-device loss, however unevenly the tokens fall.
        return nll * mask / ops.maximum(global_sum(ops.sum(mask)), 1.0)

    def _nll(self, labels, logits):
        # Fused softmax cross-entropy kernels (one pass over the logits, a gradient of
        # softmax - target) rather than log_softmax + gather: the loss was an eighth of an
        # RNN translator's step. (Gathering the real rows first saved nothing: the gather's
        # gradient, a segment sum over the whole logits, cost what the skipped rows did.)
        if not self.label_smoothing:
            return ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        # Cross-entropy is linear in the target distribution, so (1 - e) CE(one-hot) +
        # e CE(uniform) = CE((1 - e) one-hot + e / V): one dense fused kernel, cheaper than
        # the sparse kernel plus a logsumexp for the uniform term (docs/RESULTS.md).
        vocab = ops.shape(logits)[-1]
        target = (ops.one_hot(labels, vocab, dtype=logits.dtype) * (1.0 - self.label_smoothing)
                  + self.label_smoothing / ops.cast(vocab, logits.dtype))
        return ops.categorical_crossentropy(target, logits, from_logits=True)

    def get_config(self):
        return {"label_smoothing": self.label_smoothing, "pad_id": self.pad_id,
                "name": self.name}
