"""Checkpoints that let a killed or pre-empted run resume exactly where it stopped.

A checkpoint is one ``ckpt-<global step>.npz`` file holding everything the next step depends
on: the model's variables (weights and the dropout seed generators' states), the optimizer's
variables (its slots and its iteration count, which drives the learning-rate schedule), the
data position (epoch and batch within it) and the state of tracked callbacks (the best
weights so far, for instance). It is written to a temporary file, flushed to disk and renamed,
so a file named ``ckpt-*.npz`` is always complete; a crash mid-write leaves only a
``*.tmp-*`` file, which is ignored and cleaned up.

Resuming is exact when the data order is a function of the epoch (``zoo.data.make_dataset``
with ``epoch=``, which this callback sets at each epoch's start): the resumed run sees the
same batches, with the same dropout masks, from the same weights and optimizer state. The
batches of the interrupted epoch that were already trained on are drawn and skipped (the
data pipeline is not asked to seek), so Keras's epochs, validation and callbacks stay aligned
with an uninterrupted run.

Example:
    >>> import tempfile
    >>> ckpt = Checkpointer(tempfile.mkdtemp(), every_steps=100, keep=2)
    >>> latest_checkpoint(ckpt.directory) is None, ckpt.initial_epoch
    (True, 0)
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
import signal
import threading
import time
import zipfile
from typing import Optional, Sequence

import keras
import numpy as np

from zoo.files import write_atomically as _write_atomically

CHECKPOINT_GLOB = "ckpt-*.npz"
_NAME = re.compile(r"^ckpt-(\d+)\.npz$")
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be used (names the file and the reason)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM after saving a checkpoint.

    Attributes:
        signal_name: ``"SIGINT"`` or ``"SIGTERM"``.
        checkpoint: The checkpoint file written at the stop.
        epoch, step: Where the run will resume (0-based epoch, batches done in it).
    """

    def __init__(self, signal_name, checkpoint, epoch, step):
        self.signal_name, self.checkpoint, self.epoch, self.step = (signal_name, checkpoint,
                                                                    epoch, step)
        super().__init__(f"{signal_name}: stopped at epoch {epoch + 1}, batch {step}; "
                         f"checkpoint {checkpoint}")


def list_checkpoints(directory: str) -> list:
    """Complete checkpoint files in ``directory``, oldest first (by global step)."""
    found = []
    for path in glob.glob(os.path.join(directory, CHECKPOINT_GLOB)):
        m = _NAME.match(os.path.basename(path))
        if m:
            found.append((int(m.group(1)), path))
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str) -> Optional[str]:
    """The newest complete checkpoint in ``directory``, or None."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def read_checkpoint(path: str) -> tuple:
    """Reads a checkpoint file.

    Returns:
        ``(meta, arrays)``: the JSON metadata and ``{name: np.ndarray}``.

    Raises:
        CheckpointError: The file cannot be read as a checkpoint.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(bytes(arrays.pop("__meta__")).decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path}: not a readable zoo checkpoint ({err})") from None
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')!r}, this zoo "
                              f"reads {FORMAT_VERSION}")
    return meta, arrays


def _variables_state(prefix, variables):
    arrays = {f"{prefix}/{i}": np.asarray(keras.ops.convert_to_numpy(v))
              for i, v in enumerate(variables)}
    index = [[v.path, list(v.shape)] for v in variables]
    return arrays, index


def _assign(prefix, variables, index, arrays, path):
    if len(index) != len(variables):
        raise CheckpointError(f"{path}: holds {len(index)} {prefix} variables, the model has "
                              f"{len(variables)} (was it written by another model or "
                              f"preset?)")
    for i, (v, (vpath, shape)) in enumerate(zip(variables, index)):
        if list(v.shape) != list(shape):
            raise CheckpointError(f"{path}: {prefix} variable {vpath} has shape {shape}, the "
                                  f"model's {v.path} has {list(v.shape)}")
        v.assign(arrays[f"{prefix}/{i}"])


class Checkpointer(keras.callbacks.Callback):
    """Saves resumable checkpoints during ``fit`` and restores the newest one.

    Saves every ``every_steps`` batches, at each epoch's end, and when the process gets
    SIGINT (Ctrl-C) or SIGTERM (a pre-empted machine): then it finishes the current batch,
    saves, stops training and raises :class:`TrainingInterrupted` from ``fit``. A second
    Ctrl-C interrupts at once. Keeps the newest ``keep`` files.

    Use: build and compile the model, call :meth:`restore` (which builds the optimizer), then
    ``fit(..., initial_epoch=ckpt.initial_epoch, callbacks=[ckpt])``. For an exact resume the
    training data's order must depend only on the epoch: pass the same variable to
    ``zoo.data.make_dataset(..., epoch=v)`` and ``Checkpointer(..., data_epoch=v)``.

    Args:
        directory: Where the ``ckpt-*.npz`` files go (created if needed).
        every_steps: Also save every this many training batches (None: epoch ends only).
        keep: Newest checkpoints kept (older ones are deleted once a newer one is complete).
        data_epoch: A ``tf.Variable`` that the dataset reads to seed each epoch's shuffle;
            set to the epoch at each epoch's start.
        track: Callbacks with ``get_state()`` / ``set_state(state)`` (e.g.
            :class:`zoo.training.EarlyStopping`) whose state goes into each checkpoint.
        run_info: JSON-able facts about the run stored in each checkpoint.
        handle_signals: Save and stop on SIGINT/SIGTERM (only in the main thread).
        write: Write files (False on the workers of a cluster other than the chief: they
            restore from the chief's checkpoints, on a file system they share).

    Example:
        >>> import tempfile
        >>> ckpt = Checkpointer(tempfile.mkdtemp(), every_steps=50)
        >>> ckpt.every_steps, ckpt.initial_epoch
        (50, 0)
    """

    def __init__(self, directory: str, every_steps: Optional[int] = None, keep: int = 3,
                 data_epoch=None, track: Sequence = (), run_info: Optional[dict] = None,
                 handle_signals: bool = True, write: bool = True):
        super().__init__()
        if every_steps is not None and int(every_steps) < 1:
            raise ValueError(f"every_steps must be a positive integer or None, got "
                             f"{every_steps}")
        if int(keep) < 1:
            raise ValueError(f"keep must be a positive integer, got {keep}")
        self.directory = os.fspath(directory)
        self.every_steps = int(every_steps) if every_steps else None
        self.keep = int(keep)
        self.data_epoch = data_epoch
        self.track = list(track)
        self.run_info = dict(run_info or {})
        #: Every epoch's logs since the run began, the earlier processes' included.
        self.history = {}
        self.handle_signals = handle_signals
        self.write = bool(write)
        self.initial_epoch, self.initial_step = 0, 0
        self.global_step = 0
        self.last_saved: Optional[str] = None
        self.interrupted: Optional[TrainingInterrupted] = None
        self._epoch, self._step = 0, 0
        self._skip = 0
        self._signal = None
        self._handlers = {}
        self._train_function = None

    # ------------------------------------------------------------------ restore
    def restore(self, model, path: Optional[str] = None) -> Optional[dict]:
        """Loads the newest checkpoint (or ``path``) into a built, compiled model.

        Sets :attr:`initial_epoch` (pass it to ``fit``) and the number of batches of that
        epoch to skip. Returns the checkpoint's metadata, or None when there is none.
        """
        if path is None:
            path, meta, arrays = self._newest_readable()
            if path is None:
                return None
        else:
            meta, arrays = read_checkpoint(path)
        if not model.built:
            model.build()
        if model.optimizer is None:
            raise CheckpointError("restore: compile the model first (the checkpoint holds the "
                                  "optimizer's state)")
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        _assign("model", model.variables, meta["model"], arrays, path)
        _assign("optimizer", model.optimizer.variables, meta["optimizer"], arrays, path)
        for i, cb in enumerate(self.track):
            cb.set_state({k.split("/", 2)[2]: v for k, v in arrays.items()
                          if k.startswith(f"track/{i}/")} | meta["track"][i])
        self.initial_epoch, self.initial_step = int(meta["epoch"]), int(meta["step"])
        self.history = {k: list(v)[:self.initial_epoch] for k, v in
                        meta.get("history", {}).items()}
        self.global_step = int(meta["global_step"])
        self.last_saved = path
        return meta

    def _newest_readable(self):
        """``(path, meta, arrays)`` of the newest checkpoint that reads, warning about each
        newer one that does not (a file cut short by a full disk); ``(None,) * 3`` when there
        is none at all."""
        import warnings

        found = list_checkpoints(self.directory)
        errors = []
        for path in reversed(found):
            try:
                meta, arrays = read_checkpoint(path)
            except CheckpointError as err:
                errors.append(str(err))
                continue
            for message in errors:
                warnings.warn(f"{message}; resuming from the previous checkpoint {path}",
                              stacklevel=3)
            return path, meta, arrays
        if errors:
            raise CheckpointError(f"resume: no checkpoint in {self.directory} can be read "
                                  f"({errors[0]})")
        return None, None, None

    # ------------------------------------------------------------------ save
    def save(self) -> str:
        """Writes a checkpoint of the model now (atomically) and prunes old ones; returns
        its path (the newest one, on a worker that does not write)."""
        model = self.model
        if not self.write:
            return latest_checkpoint(self.directory)
        os.makedirs(self.directory, exist_ok=True)
        arrays, model_index = _variables_state("model", model.variables)
        opt_arrays, opt_index = _variables_state("optimizer", model.optimizer.variables)
        arrays.update(opt_arrays)
        track_meta = []
        for i, cb in enumerate(self.track):
            state = cb.get_state()
            plain = {}
            for k, v in state.items():
                if isinstance(v, np.ndarray):
                    arrays[f"track/{i}/{k}"] = v
                else:
                    plain[k] = v
            track_meta.append(plain)
        meta = {"format": FORMAT_VERSION, "epoch": self._epoch, "step": self._step,
                "global_step": self.global_step, "time": time.time(),
                "model": model_index, "optimizer": opt_index, "track": track_meta,
                "run": self.run_info, "history": self.history}
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
        path = os.path.join(self.directory, f"ckpt-{self.global_step:09d}.npz")

        def write(f):
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            f.write(buf.getbuffer())

        _write_atomically(path, write)
        self.last_saved = path
        for old in list_checkpoints(self.directory)[:-self.keep]:
            os.remove(old)
        return path

    # ------------------------------------------------------------------ callback
    def on_train_begin(self, logs=None):
        self.interrupted, self._signal = None, None
        for tmp in glob.glob(os.path.join(self.directory, "ckpt-*.npz.tmp-*")) \
                if self.write else ():
            os.remove(tmp)  # a write that a crash cut short
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._handlers[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        self._signal = signal.Signals(signum).name
        if signum == signal.SIGINT:  # a second Ctrl-C interrupts at once, as users expect
            previous = self._handlers.get(signal.SIGINT)
            signal.signal(signal.SIGINT, previous if callable(previous) else
                          signal.default_int_handler)

    def _restore_handlers(self):
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        self._handlers = {}

    def on_train_end(self, logs=None):
        self._restore_handlers()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self.data_epoch is not None:
            self.data_epoch.assign(epoch)
        self._skip = self.initial_step if epoch == self.initial_epoch else 0
        self._step = 0
        self.initial_step = 0
        if self._skip:
            self._train_function = self.model.train_function
            self.model.train_function = self._skip_batch

    def _skip_batch(self, iterator):
        # Draws a batch the interrupted run already trained on, without training.
        next(iterator)
        return {}

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._skip:
            self._skip -= 1
            if not self._skip:
                self.model.train_function = self._train_function
            return  # a signal now waits for the first real batch: the state is a checkpoint's
        self.global_step += 1
        if self._signal:
            self._stop(self.save())
        elif self.every_steps and self.global_step % self.every_steps == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        if self._skip:  # the checkpoint was at the epoch's last batch
            self.model.train_function, self._skip = self._train_function, 0
        self._epoch, self._step = epoch + 1, 0
        for key, value in (logs or {}).items():
            values = self.history.setdefault(key, [])
            del values[epoch:]  # (a resumed epoch replaces what a killed run logged)
            values.append(round(float(value), 6))
        path = self.save()
        if self._signal:
            self._stop(path)

    def _stop(self, path):
        # Raised here, not by setting stop_training: Keras would still run the validation
        # pass, and a pre-empted machine has seconds left.
        self._restore_handlers()
        self.interrupted = TrainingInterrupted(self._signal, path, self._epoch, self._step)
        raise self.interrupted
