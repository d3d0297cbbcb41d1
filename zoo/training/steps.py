"""A training step that computes the logits and the loss at the real labels only.

Keras's step asks the model for ``(batch, T, V)`` logits and hands them to the loss, which masks
the padding out. Random batches of text are about half padding. The vocabulary projection and
the softmax cross-entropy are the largest costs left once the layers skip it
(:mod:`zoo.attention.packing`), and they pay for every padding position too. Building the dense
logits also costs a scatter forward and a gather backward. The step below gathers the
positions whose labels are real, asks the model for those rows only (``forward_rows``), and
computes the same loss on ``(N, V)``: the value and the gradients are Keras's (a test holds
them equal), and a step of the peers' models in ``bench/peers.py`` took about 13% less time.

The step is Keras 3.15's TensorFlow ``train_step`` with the forward pass swapped: the loss
tracker, loss scaling for mixed precision, ``tf.distribute`` and gradient accumulation are
handled as they are there. The metrics see the rows too: ``y`` as ``(N,)`` real labels and
``y_pred`` as ``(N, V)``. (Evaluation keeps the padded layout.)
"""

import keras
from keras import ops

from zoo.attention.packing import PackedRows


def _rows_of(weights, rows):
    """A Keras ``sample_weight`` (``(batch,)`` or ``(batch, T)``) -> ``(N,)``."""
    if weights is None:
        return None
    weights = ops.convert_to_tensor(weights)
    if len(weights.shape) == 1:
        return ops.take(weights, rows.sentences, axis=0)
    if len(weights.shape) == 2:
        return rows.pack(weights)
    raise ValueError(f"sample_weight must have shape (batch,) or (batch, T), "
                     f"got {tuple(weights.shape)}")


def train_step_on_rows(model, data):
    """One optimizer step of ``model`` (a ``zoo.models.Seq2Seq`` compiled with
    ``zoo.training.SequenceLoss``) on the positions whose labels are real.

    Args:
        model: The model (its ``loss`` a ``SequenceLoss``; TensorFlow backend).
        data: ``(x, y[, sample_weight])`` as ``fit`` passes it: ``x = {"source", "target"}``
            ids, ``y`` ``(batch, T)`` labels (``loss.pad_id`` = padding).

    Returns:
        The metrics' logs, as Keras's ``train_step`` returns them.

    Example:
        >>> import numpy as np, zoo
        >>> m = zoo.models.Translator.from_preset("rnn_tiny", vocab_size=30)
        >>> m.compile()
        >>> x = {"source": np.array([[5, 6, 3]]), "target": np.array([[2, 7, 8]])}
        >>> logs = train_step_on_rows(m, (x, np.array([[7, 8, 3]])))
        >>> sorted(logs)
        ['loss', 'token_accuracy']
    """
    import tensorflow as tf

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    model._check_inputs(x)
    if y is None:
        raise ValueError(f"{type(model).__name__}.fit needs labels: (x, y) pairs, y the "
                         f"target ids after bos, (batch, T)")
    y = ops.convert_to_tensor(y)
    rows = PackedRows(ops.not_equal(y, model.loss.pad_id))
    y_rows, weight_rows = rows.pack(y), _rows_of(sample_weight, rows)  # (N,), (N,)
    with tf.GradientTape() as tape:
        y_pred = model.forward_rows(x["source"], x["target"], rows, training=True)  # (N, V)
        loss = model._compute_loss(x=x, y=y_rows, y_pred=y_pred, sample_weight=weight_rows,
                                   training=True)
        # Keras's tracker weights the loss by the sentences of the batch, as its step does.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        model._loss_tracker.update_state(loss * replicas, sample_weight=tf.shape(y)[0])
        if model.optimizer is not None:
            loss = model.optimizer.scale_loss(loss)
    weights = model.trainable_weights
    model.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
    return model.compute_metrics(x, y_rows, y_pred, sample_weight=weight_rows)
