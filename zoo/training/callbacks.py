"""The callbacks a long run needs: early stopping that can keep the best epoch, checkpoint
averaging, an update budget, See et al.'s coverage phase, and the data epoch."""

import keras
import numpy as np

from zoo.training.optimizers import updates_done


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
