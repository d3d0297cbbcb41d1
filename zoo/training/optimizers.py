"""Adam as zoo trains with it (dense embedding gradients, clipping), and the update count."""

import keras
from keras import ops

from zoo.training.losses import replica_context


@keras.saving.register_keras_serializable(package="zoo")
class Adam(keras.optimizers.Adam):
    """Keras Adam with two corrections that make one device and many agree.

    - Sparse gradients (an embedding's ``IndexedSlices``) are summed into a dense gradient
      before the update. Keras 3.15 squares them slice by slice, so a token seen k times in
      a batch gets the sum of k squares in its second moment instead of the square of its
      gradient; the textbook update (Kingma & Ba 2015) squares the gradient. The update is
      dense either way (``m`` and ``v`` are dense), so this costs nothing.
    - Under ``tf.distribute`` with ``clipnorm`` / ``global_clipnorm``, Keras clips each
      replica's part of the gradient before summing them. This clips the summed gradient,
      as one device would.

    Takes the arguments of ``keras.optimizers.Adam``.

    Example:
        >>> opt = Adam(1e-3, beta_2=0.98, clipnorm=1.0)
        >>> opt.get_config()["clipnorm"]
        1.0
    """

    def apply(self, grads, trainable_variables=None):
        grads = [_dense(g) for g in grads]
        replicas = replica_context()
        if replicas is not None and (self.clipnorm or self.global_clipnorm):
            import tensorflow as tf

            n = replicas.num_replicas_in_sync
            total = replicas.all_reduce(tf.distribute.ReduceOp.SUM,
                                        [g for g in grads if g is not None])
            total = iter(_clip(total, self.clipnorm, self.global_clipnorm))
            # Keras sums the replicas' gradients next: each passes its share of the clipped
            # sum (which its own per-replica clip then leaves alone).
            grads = [None if g is None else next(total) / n for g in grads]
        return super().apply(grads, trainable_variables)

    def update_step(self, gradient, variable, learning_rate):
        """Keras's update, as one fused kernel per variable on TensorFlow.

        Keras writes the update as about ten element-wise ops per variable, each a pass over
        the weights and a kernel launch (a tenth of a small Transformer's step: docs/RESULTS.md).
        TensorFlow's ``ResourceApplyAdam`` computes the same formula in one pass
        (Keras's Adam is TF1's: ``epsilon`` outside the square root; a test holds them equal).
        """
        if keras.backend.backend() != "tensorflow" or self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        index = self._get_variable_index(variable)
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)

        def cast(x):
            return ops.cast(x, dtype)

        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=ops.power(cast(self.beta_1), step),
            beta2_power=ops.power(cast(self.beta_2), step), lr=cast(learning_rate),
            beta1=cast(self.beta_1), beta2=cast(self.beta_2), epsilon=cast(self.epsilon),
            grad=cast(gradient))


def updates_done(optimizer):
    """The optimizer's update count as a Python int. (``int(optimizer.iterations)`` fails
    under ``tf.distribute``, where the count is a ``MirroredVariable``.)

    Example:
        >>> updates_done(Adam(1e-3))
        0
    """
    return int(ops.convert_to_numpy(optimizer.iterations))


def _dense(gradient):
    if keras.backend.backend() == "tensorflow" and gradient is not None:
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            return tf.convert_to_tensor(gradient)  # sums the slices of repeated ids
    return gradient


def _clip(grads, clipnorm, global_clipnorm):
    def scale(norm, limit):
        return ops.minimum(1.0, limit / ops.maximum(norm, 1e-12))

    if clipnorm:
        return [g * scale(ops.sqrt(ops.sum(ops.square(g))), clipnorm) for g in grads]
    norm = ops.sqrt(sum(ops.sum(ops.square(g)) for g in grads))
    return [g * scale(norm, global_clipnorm) for g in grads]
