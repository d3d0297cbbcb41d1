"""Token accuracy over non-padding target tokens."""

import keras
import numpy as np
from keras import ops

from zoo.training.losses import global_sum


@keras.saving.register_keras_serializable(package="zoo")
class TokenAccuracy(keras.metrics.Metric):
    """Arg-max accuracy over non-padding target tokens.

    Example:
        >>> import numpy as np
        >>> m = TokenAccuracy(); m.update_state(np.array([[2, 0]]), np.eye(3)[None, [2, 1]])
        >>> float(m.result())
        1.0
    """

    def __init__(self, pad_id=0, name="token_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pad_id = int(pad_id)
        self.correct = self.add_variable((), "zeros", name="correct")
        self.total = self.add_variable((), "zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        mask = ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        # Right when the label's logit is the largest: one max over the vocabulary. Keras's
        # float argmax first rewrites every -0.0 (a sign-bit test and a select over the whole
        # (batch, T, V) logits): a tenth of a small Transformer's training step on a CPU.
        # (A tie counts as right here; argmax would take the lower id.)
        at_label = ops.take_along_axis(y_pred, ops.expand_dims(ops.maximum(y_true, 0), -1),
                                       axis=-1)[..., 0]
        hit = ops.cast(ops.greater_equal(at_label, ops.max(y_pred, axis=-1)), "float32")
        self.correct.assign_add(ops.sum(hit * mask))
        self.total.assign_add(ops.sum(mask))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}
