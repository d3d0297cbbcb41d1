"""Training pieces: the masked, label-smoothed loss, token accuracy, schedules, and the
callbacks a long run needs (resumable checkpoints, early stopping, checkpoint averaging, an
update budget, See et al.'s coverage phase)."""

import keras
import numpy as np
from keras import ops


def _global_sum(value):
    """Sums ``value`` over the replicas of a ``tf.distribute`` strategy (identity outside
    one, and on other backends, whose distributed batches are global arrays)."""
    ctx = _replica_context()
    if ctx is None:
        return value
    import tensorflow as tf

    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


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
        return nll * mask / ops.maximum(_global_sum(ops.sum(mask)), 1.0)

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
        replicas = _replica_context()
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


def _replica_context():
    """The ``tf.distribute`` replica context when more than one replica runs, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    return ctx if ctx is not None and ctx.num_replicas_in_sync > 1 else None


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


@keras.saving.register_keras_serializable(package="zoo")
class InverseSqrtSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then decay with ``1 / sqrt(step)`` (Vaswani et al. 2017).

    Args:
        peak: Learning rate reached at the end of warm-up.
        warmup_steps: Steps of linear warm-up (>= 1).

    Example:
        >>> s = InverseSqrtSchedule(peak=1e-3, warmup_steps=100)
        >>> [round(float(s(x)), 6) for x in (0, 99, 399)]
        [1e-05, 0.001, 0.0005]
    """

    def __init__(self, peak=1e-3, warmup_steps=4000):
        if warmup_steps < 1 or peak <= 0:
            raise ValueError(f"need peak > 0 and warmup_steps >= 1, got {peak}, {warmup_steps}")
        self.peak, self.warmup_steps = float(peak), int(warmup_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        warm = float(self.warmup_steps)
        return self.peak * ops.minimum(step / warm, ops.sqrt(warm / step))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps}


@keras.saving.register_keras_serializable(package="zoo")
class LinearDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then linear decay to zero at ``total_steps``.

    For a run with a fixed update budget (``max_steps``) that brings the model near
    convergence: annealing to zero at the budget's end beats a schedule still at a high rate
    when the budget cuts it (Li et al. 2020, "Budgeted training"; +1.3 BLEU with the
    Multi30k Transformer recipe). A model far from convergence can lose by it (the 2-epoch
    main job did: docs/RESULTS.md). After ``total_steps`` the rate stays at zero.

    Args:
        peak: Learning rate reached at the end of warm-up.
        warmup_steps: Steps of linear warm-up (0: start at ``peak``).
        total_steps: The update at which the rate reaches zero (> ``warmup_steps``).

    Example:
        >>> s = LinearDecaySchedule(peak=1e-3, warmup_steps=100, total_steps=1100)
        >>> [round(float(s(x)), 6) for x in (0, 99, 600, 1100, 2000)]
        [1e-05, 0.001, 0.0005, 0.0, 0.0]
    """

    def __init__(self, peak=1e-3, warmup_steps=0, total_steps=10000):
        if peak <= 0 or warmup_steps < 0 or total_steps <= warmup_steps:
            raise ValueError(f"need peak > 0, warmup_steps >= 0 and total_steps > "
                             f"warmup_steps, got {peak}, {warmup_steps}, {total_steps}")
        self.peak, self.warmup_steps = float(peak), int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")  # updates made so far
        warm = (step + 1.0) / float(max(self.warmup_steps, 1))
        decay = (float(self.total_steps) - step) / float(self.total_steps - self.warmup_steps)
        return self.peak * ops.clip(ops.minimum(warm, decay), 0.0, 1.0)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps}


class CoveragePhase(keras.callbacks.Callback):
    """See et al. (2017)'s recipe: train without the coverage loss, then add it for a short
    final phase.

    From epoch ``start_epoch`` (0-based) on, the coverage attention of a zoo model's decoder
    (``model.decoder.weights_attention``) gets ``coverage_loss_weight = weight``, and the train
    step is traced again (the weight is a Python constant of the traced step). Works with
    plain ``fit``.

    Args:
        start_epoch: First epoch (0-based) that trains with the coverage loss.
        weight: The coverage loss weight from then on (See et al.: 1.0).

    Example:
        >>> phase = CoveragePhase(start_epoch=8, weight=1.0)
        >>> phase.start_epoch, phase.weight
        (8, 1.0)
    """

    def __init__(self, start_epoch, weight=1.0):
        super().__init__()
        if int(start_epoch) < 0 or float(weight) < 0:
            raise ValueError(f"need start_epoch >= 0 and weight >= 0, got {start_epoch}, "
                             f"{weight}")
        self.start_epoch, self.weight = int(start_epoch), float(weight)

    def _attentions(self):
        # A zoo model's decoder names the attention whose weights its losses read.
        attention = getattr(getattr(self.model, "decoder", None), "weights_attention", None)
        return [attention] if hasattr(attention, "coverage_loss_weight") else []

    def on_train_begin(self, logs=None):
        if not self._attentions():
            raise ValueError("CoveragePhase: the model has no attention with a coverage loss "
                             "(use attention='coverage')")

    def on_epoch_begin(self, epoch, logs=None):
        # ">=": a run resumed inside the phase starts with the weight set.
        attentions = self._attentions()
        if epoch >= self.start_epoch and any(
                layer.coverage_loss_weight != self.weight for layer in attentions):
            for layer in attentions:
                layer.coverage_loss_weight = self.weight
            self.model.make_train_function(force=True)


class SetEpoch(keras.callbacks.Callback):
    """Sets a variable to the epoch at each epoch's start: what ``zoo.data.make_dataset(...,
    epoch=v)`` reads to order that epoch's data (a :class:`Checkpointer` with
    ``data_epoch=v`` does it too).

    Example:
        >>> import tensorflow as tf
        >>> v = tf.Variable(0, dtype=tf.int64)
        >>> SetEpoch(v).on_epoch_begin(3); int(v.numpy())
        3
    """

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras ``EarlyStopping`` whose progress survives a resume.

    Defaults suit sequence models: watch ``val_loss``, and at the end restore the weights of
    the best epoch. With ``patience=None`` it never stops early and only keeps the best
    weights. Its state (best value, best epoch, epochs without improvement, best weights)
    goes into every :class:`Checkpointer` checkpoint that tracks it, so a resumed run picks
    the same epoch as an uninterrupted one.

    Args:
        monitor: The logged value to watch.
        patience: Epochs without improvement before stopping (None: never stop).
        min_delta: Smallest change that counts as an improvement.
        restore_best_weights: Restore the best epoch's weights when training ends.
        mode: ``"auto"``, ``"min"`` or ``"max"``.

    Example:
        >>> es = EarlyStopping(patience=None)
        >>> es.patience > 10**6, es.restore_best_weights
        (True, True)
    """

    def __init__(self, monitor="val_loss", patience=None, min_delta=0.0,
                 restore_best_weights=True, mode="auto"):
        super().__init__(monitor=monitor, patience=2**31 if patience is None else int(patience),
                         min_delta=min_delta, restore_best_weights=restore_best_weights,
                         mode=mode)
        self._resumed = None

    def get_state(self) -> dict:
        """JSON-able values and ``np.ndarray`` weights (see :class:`Checkpointer`)."""
        state = {"best": None if self.best is None else float(self.best),
                 "best_epoch": int(self.best_epoch), "wait": int(self.wait)}
        for i, w in enumerate(self.best_weights or []):
            state[f"weights/{i}"] = np.asarray(w)
        state["n_weights"] = len(self.best_weights or [])
        return state

    def set_state(self, state: dict) -> None:
        """Takes effect when training begins (Keras resets the callback then)."""
        self._resumed = dict(state)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._resumed is not None:
            s, self._resumed = self._resumed, None
            self.best, self.best_epoch, self.wait = s["best"], s["best_epoch"], s["wait"]
            n = int(s.get("n_weights", 0))
            self.best_weights = [s[f"weights/{i}"] for i in range(n)] or None


class StopAfterSteps(keras.callbacks.Callback):
    """Stops training after a number of optimizer updates (a recipe's update budget).

    Counts ``model.optimizer.iterations``, which a :class:`Checkpointer` restores, so a
    resumed run stops at the same update. The epoch in which the budget runs out ends there,
    and is validated and logged as a whole one.

    Args:
        max_steps: Updates after which training stops (>= 1).

    Example:
        >>> StopAfterSteps(8000).max_steps
        8000
    """

    def __init__(self, max_steps):
        super().__init__()
        if int(max_steps) < 1:
            raise ValueError(f"max_steps must be a positive integer, got {max_steps}")
        self.max_steps = int(max_steps)

    def on_train_batch_end(self, batch, logs=None):
        if updates_done(self.model.optimizer) >= self.max_steps:
            self.model.stop_training = True


class CheckpointAverage(keras.callbacks.Callback):
    """Ends training with the average of the weights of the last few epoch ends.

    Checkpoint averaging (Vaswani et al. 2017; Popel & Bojar 2018) smooths the noise of the
    last updates and usually adds a fraction of a BLEU point for free. The weights at the end
    of each of the last ``last`` epochs are kept in host memory. With ``monitor``, the window
    averaged is the one that ends at the best epoch by that logged value, so the callback
    composes with early stopping: the epochs trained after the best one while patience ran
    out are not averaged in. When training ends, the model gets the mean of the window's
    floating-point weights (other variables, such as dropout seeds, come from its newest
    epoch). With ``validation_data``, the average is evaluated against the window's best
    single epoch and the better one by ``monitor`` is kept: the choice is made on held-out
    data, never assumed. Its state goes into every :class:`Checkpointer` checkpoint that
    tracks it, so a resumed run averages the same epochs.

    Args:
        last: Epoch ends averaged (>= 1; 1 keeps the best epoch's weights).
        monitor: The logged value that picks the window (``"val_loss"``); None: the last
            ``last`` epochs of the run.
        mode: ``"min"`` or ``"max"`` (``"auto"``: max for names with acc/bleu/chrf/rouge).
        validation_data: Data for ``model.evaluate`` (a dataset, or an ``(x, y)`` tuple) to
            compare the average with the best single epoch (None: keep the average). ``monitor`` without its ``val_`` prefix is
            the value compared.

    Attributes:
        report: After training: ``{"epochs": [averaged epochs, 1-based], "single": value,
            "averaged": value, "kept": "average" | "best epoch"}`` (values None when not
            evaluated).

    Example:
        >>> avg = CheckpointAverage(last=5)
        >>> avg.last, avg.monitor
        (5, 'val_loss')
    """

    def __init__(self, last=5, monitor="val_loss", mode="auto", validation_data=None):
        super().__init__()
        if int(last) < 1:
            raise ValueError(f"last must be a positive integer, got {last}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            higher = monitor and any(k in monitor for k in ("acc", "bleu", "chrf", "rouge"))
            mode = "max" if higher else "min"
        self.last, self.monitor, self.mode = int(last), monitor, mode
        self.validation_data = validation_data
        self.report = None
        self._window, self._best_window, self._best = [], [], None
        self._resumed = None

    def _better(self, value, than):
        return than is None or (value < than if self.mode == "min" else value > than)

    def on_train_begin(self, logs=None):
        if self._resumed is not None:
            self._window, self._best_window, self._best = self._resumed
            self._resumed = None
        self.report = None

    def on_epoch_end(self, epoch, logs=None):
        weights = [np.array(w) for w in self.model.get_weights()]  # copies, on the host
        self._window = (self._window + [(int(epoch), weights)])[-self.last:]
        if self.monitor is None:
            return
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(f"CheckpointAverage monitors {self.monitor!r}, which fit did not "
                             f"log (logged: {', '.join(sorted(logs or {})) or 'nothing'}); "
                             f"give fit validation_data, or monitor=None")
        if self._better(float(value), self._best):
            self._best, self._best_window = float(value), list(self._window)

    def on_train_end(self, logs=None):
        window = self._best_window if self.monitor is not None else self._window
        if not window:
            return
        newest = window[-1][1]
        averaged = [np.mean([w[i] for _, w in window], axis=0).astype(a.dtype)
                    if np.issubdtype(a.dtype, np.floating) else a
                    for i, a in enumerate(newest)]
        report = {"epochs": [e + 1 for e, _ in window], "single": None, "averaged": None,
                  "kept": "average"}
        if self.validation_data is not None and len(window) > 1:
            key = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
            data = self.validation_data
            x, y = data if isinstance(data, tuple) else (data, None)
            scores = {}
            for name, weights in (("single", newest), ("averaged", averaged)):
                self.model.set_weights(weights)
                scores[name] = float(self.model.evaluate(x, y, verbose=0,
                                                         return_dict=True)[key])
            report.update(scores)
            if not self._better(scores["averaged"], scores["single"]):
                report["kept"] = "best epoch"
        self.model.set_weights(averaged if report["kept"] == "average" else newest)
        self.report = report

    def get_state(self) -> dict:
        """JSON-able values and ``np.ndarray`` weights (see :class:`Checkpointer`). The two
        windows mostly hold the same epochs: each epoch's weights are stored once."""
        epochs = dict(self._window + self._best_window)
        state = {"best": self._best, "last": self.last,
                 "window": [e for e, _ in self._window],
                 "best_window": [e for e, _ in self._best_window],
                 "n_weights": len(next(iter(epochs.values()), []))}
        for e, weights in epochs.items():
            for i, w in enumerate(weights):
                state[f"epoch/{e}/{i}"] = w
        return state

    def set_state(self, state: dict) -> None:
        """Takes effect when training begins."""
        n = int(state["n_weights"])

        def window(name):
            return [(int(e), [state[f"epoch/{e}/{i}"] for i in range(n)])
                    for e in state[name]]

        self._resumed = (window("window"), window("best_window"), state["best"])

from zoo.training.checkpoints import (  # noqa: E402
    Checkpointer, CheckpointError, TrainingInterrupted, latest_checkpoint, list_checkpoints,
    read_checkpoint)

__all__ = ["Adam", "CheckpointAverage", "CheckpointError", "Checkpointer", "CoveragePhase",
           "EarlyStopping", "InverseSqrtSchedule", "SequenceLoss", "SetEpoch",
           "StopAfterSteps", "TokenAccuracy",
           "TrainingInterrupted", "latest_checkpoint", "list_checkpoints", "read_checkpoint"]
