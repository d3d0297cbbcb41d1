"""The trainer: one run as a few short steps over resolved settings.

:func:`train` resolves the settings once (:mod:`zoo.recipes.settings`), then: the
distribution strategy, the run directory and tokenizer (:mod:`zoo.recipes.run`), the model,
the datasets, the callbacks, ``fit``, and the report; the model directory appears only at the
end, all at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import warnings
from typing import Any, Optional, Sequence, Tuple

from zoo.recipes import run as run_dir
from zoo.recipes.settings import Settings, check_freeze


@dataclasses.dataclass
class RunOptions:
    """How a run is carried out (what it learns is in :class:`Settings`)."""

    out_dir: Optional[str] = None
    dev_pairs: Any = None
    overwrite: bool = False
    resume: bool = False
    checkpoint_every: Optional[int] = 500
    keep_checkpoints: int = 3
    devices: Optional[int] = None
    multi_worker: bool = False
    batch_multiple: Optional[int] = None
    tokenizer_sample: int = 500_000
    shuffle_buffer: int = 100_000
    jit_compile: bool = False
    tensorboard: bool = True
    verbose: Any = "auto"
    tokenizer: Any = None
    callbacks: Any = None
    info_extra: Optional[dict] = None


@dataclasses.dataclass
class _Run:
    """What the steps hand each other."""

    settings: Settings
    options: RunOptions
    train_pairs: Any
    streamed: bool
    strategy: Any = None
    chief: bool = True
    base: Any = None
    tokenizer: Any = None
    ckpt_dir: Optional[str] = None
    counts: dict = dataclasses.field(default_factory=dict)
    model: Any = None
    data_epoch: Any = None
    train_ds: Any = None
    dev_ds: Any = None
    decay_steps: Optional[int] = None
    times: dict = dataclasses.field(default_factory=dict)

    def scope(self):
        return self.strategy.scope() if self.strategy is not None else \
            contextlib.nullcontext()


def run_training(model_class, train_pairs, settings: Settings, options: RunOptions):
    """Carries out one run: ``(model, history, info)`` (see ``zoo.recipes.train``)."""
    r = _open(model_class, train_pairs, settings, options)
    _build_model(r, model_class)
    _make_datasets(r)
    _compile(r)
    callbacks, tracked = _callbacks(r)
    history = _fit(r, callbacks, tracked["checkpointer"])
    info = _report(r, history, tracked)
    r.model._meta = {"training": info}
    if options.out_dir and r.chief:
        from zoo.files import staged_directory

        # The run's own directory: its checkpoints and logs move into the finished one.
        with staged_directory(options.out_dir, overwrite=True, what="out_dir",
                              carry=("checkpoints", "logs")) as tmp:
            r.model.write_files(tmp)
    return r.model, history, info


def _open(model_class, train_pairs, settings, options) -> _Run:
    """Strategy, data, destination, seed, base model, run directory and tokenizer."""
    import keras

    from zoo.data import Corpus
    from zoo.files import check_destination
    from zoo.inputs import NUMBER

    NUMBER["keep_checkpoints"].check(options.keep_checkpoints)
    # First: a CPU can be split into devices only before TensorFlow's first operation.
    strategy = _strategy(options.devices, options.multi_worker)
    streamed = isinstance(train_pairs, Corpus)
    if not streamed:
        train_pairs = list(train_pairs)
        if not train_pairs:
            raise ValueError("no training pairs")
    _check_run(settings, options, streamed)
    r = _Run(settings, options, train_pairs, streamed, strategy=strategy)
    from zoo.training import distribute

    r.chief = distribute.is_chief(strategy)
    if options.out_dir and not options.resume and r.chief:
        check_destination(options.out_dir, options.overwrite, "out_dir")
    # Before any model exists: a loaded model's dropout seeds are drawn when it is built.
    keras.utils.set_random_seed(settings.seed)
    if settings.init_from is not None:
        r.base = _base_model(model_class, settings.init_from)
        r.settings = settings.with_base(r.base)
        options.tokenizer = r.base.source_tokenizer
    t0 = time.time()
    r.tokenizer, r.ckpt_dir = run_dir.open_run(r.settings, options, train_pairs, streamed,
                                               r.chief)
    r.times["tokenizer"] = time.time() - t0
    r.counts = run_dir.count_pieces(train_pairs, r.tokenizer, r.settings)
    return r


def _strategy(devices, multi_worker):
    from zoo.training import distribute

    if multi_worker and devices is not None and int(devices) > 1:
        raise ValueError("devices and multi_worker: give one (with multi_worker, each worker "
                         "uses all its GPUs, or its CPU)")
    if multi_worker:
        return distribute.multi_worker_strategy()
    if devices is not None and int(devices) > 1:
        return distribute.mirrored_strategy(int(devices))
    return None


def _check_run(s: Settings, options: RunOptions, streamed: bool) -> None:
    if options.resume and not options.out_dir:
        raise ValueError("resume needs out_dir (the run to continue)")
    if s.schedule == "linear" and not s.max_steps and (streamed or options.multi_worker):
        raise ValueError("schedule 'linear' decays to zero at max_steps, or at the end of the "
                         "last epoch of a corpus in memory: give max_steps")


def _base_model(model_class, handle):
    """The trained model a fine-tuning run starts from."""
    from zoo.models import load

    model = load(handle)
    if not isinstance(model, model_class):
        raise ValueError(f"init_from {handle!r} holds a {type(model).__name__} ({model.task}), "
                         f"not a {model_class.__name__}")
    return model


def _build_model(r: _Run, model_class) -> None:
    s = r.settings
    with r.scope():
        if r.base is not None:
            # Under a strategy the variables must be made in its scope: load again there.
            r.model = r.base if r.strategy is None else _base_model(model_class, s.init_from)
        else:
            r.model = model_class.from_preset(
                s.preset, tokenizer=r.tokenizer,
                dtype="mixed_float16" if s.mixed_precision else None,
                max_target_length=s.max_target_length,
                max_source_length=s.max_source_length, **s.overrides)
    freeze(r.model, s.freeze)


def freeze(model, parts: Sequence[str]) -> None:
    """Stops ``parts`` (``FREEZABLE``) of a model from training."""
    check_freeze(parts)
    if "encoder" in parts:
        model.encoder.trainable = False
    if "embeddings" in parts:
        for net in (model.encoder, model.decoder):
            net.embedding.trainable = False


def _make_datasets(r: _Run) -> None:
    """The training and validation batches (split over the workers of a cluster)."""
    import tensorflow as tf

    from zoo.training import distribute

    o = r.options
    # Each epoch's order is a function of (seed, epoch): what makes a resume exact.
    r.data_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    if not o.multi_worker:
        r.train_ds = _train_batches(r)
        r.dev_ds = _batches(r, list(o.dev_pairs), shuffle=False) if o.dev_pairs else None
        return
    # Every worker builds the same global batches and keeps its replicas' parts.
    total = r.strategy.num_replicas_in_sync
    local = len(r.strategy.extended.worker_devices)

    def across_workers(build):
        return r.strategy.distribute_datasets_from_function(
            lambda ctx: distribute.split_for_replicas(
                build(), ctx.input_pipeline_id * local, local, total))

    r.train_ds = across_workers(lambda: _train_batches(r))
    r.dev_ds = across_workers(lambda: _batches(r, list(o.dev_pairs), shuffle=False)) \
        if o.dev_pairs else None


def _dataset_kwargs(r: _Run) -> dict:
    s = r.settings
    # Under a strategy every batch splits evenly over the replicas.
    multiple = r.options.batch_multiple or (
        r.strategy.num_replicas_in_sync if r.strategy else 1)
    return dict(max_source_length=s.max_source_length, max_target_length=s.max_target_length,
                batch_size=s.batch_size or 64, batch_tokens=s.batch_tokens,
                batch_multiple=multiple)


def _batches(r: _Run, pairs, shuffle: bool):
    from zoo.data import make_dataset

    extra = dict(seed=r.settings.seed, epoch=r.data_epoch) if shuffle else {}
    return make_dataset(pairs, r.tokenizer, shuffle=shuffle, **extra, **_dataset_kwargs(r))


def _train_batches(r: _Run):
    from zoo.data import make_stream_dataset

    if not r.streamed:
        return _batches(r, r.train_pairs, shuffle=True)
    c = r.train_pairs
    return make_stream_dataset(c.paths, r.tokenizer, fmt=c.fmt, skip_invalid=c.skip_invalid,
                               shuffle_buffer=r.options.shuffle_buffer, seed=r.settings.seed,
                               epoch=r.data_epoch, **c.reader_kwargs, **_dataset_kwargs(r))


def _compile(r: _Run) -> None:
    """The schedule's decay (linear: to zero at the update budget) and ``compile``."""
    s = r.settings
    warmup = s.warmup_steps
    if s.schedule == "linear":
        # The in-memory dataset knows its number of batches.
        r.decay_steps = s.max_steps or s.epochs * int(r.train_ds.cardinality())
        if s.sources.get("warmup_steps") != "given" and r.decay_steps <= 10 * (warmup or 0):
            warmup = r.decay_steps // 10  # a default warm-up scaled to a short run
        if r.decay_steps <= (warmup or 0):
            raise ValueError(f"schedule 'linear': {s.epochs} epochs of "
                             f"{r.decay_steps // s.epochs} batches leave no update after "
                             f"warmup_steps ({warmup})")
    r.settings = dataclasses.replace(s, warmup_steps=warmup)
    with r.scope():
        r.model.compile(learning_rate=s.learning_rate, warmup_steps=warmup,
                        label_smoothing=s.label_smoothing, jit_compile=r.options.jit_compile,
                        decay_steps=r.decay_steps)


def _callbacks(r: _Run) -> Tuple[list, dict]:
    """The callbacks and the ones the report reads (``best``, ``average``,
    ``checkpointer``)."""
    from zoo.training import CheckpointAverage, CoveragePhase, EarlyStopping, SetEpoch
    from zoo.training import StopAfterSteps

    s, o = r.settings, r.options
    cbs = list(o.callbacks or [])
    if s.coverage_epochs:
        cbs.append(CoveragePhase(start_epoch=s.epochs - s.coverage_epochs,
                                 weight=s.coverage_loss_weight))
    if s.max_steps:
        cbs.append(StopAfterSteps(s.max_steps))
    tracked = {"best": None, "average": None, "checkpointer": None}
    if r.dev_ds is not None and (s.keep_best or s.patience is not None):
        # With averaging, CheckpointAverage chooses at the end: early stopping only stops.
        averaging = s.average_last > 1 and s.keep_best
        tracked["best"] = EarlyStopping(patience=s.patience, restore_best_weights=s.keep_best
                                        and not averaging)
        cbs.append(tracked["best"])
        if averaging:
            tracked["average"] = CheckpointAverage(last=s.average_last,
                                                   validation_data=r.dev_ds)
            cbs.append(tracked["average"])
    if r.ckpt_dir:
        tracked["checkpointer"] = _checkpointer(r, tracked)
        cbs.append(tracked["checkpointer"])
        if o.tensorboard and r.chief:
            import keras

            cbs.append(keras.callbacks.TensorBoard(os.path.join(o.out_dir, "logs")))
    else:
        cbs.append(SetEpoch(r.data_epoch))  # (a Checkpointer sets it otherwise)
    return cbs, tracked


def _checkpointer(r: _Run, tracked: dict):
    """The run's checkpoints, restored when resuming."""
    from zoo.training import Checkpointer

    s, o = r.settings, r.options
    ckpt = Checkpointer(r.ckpt_dir, every_steps=o.checkpoint_every, keep=o.keep_checkpoints,
                        data_epoch=r.data_epoch,
                        track=[cb for cb in (tracked["best"], tracked["average"]) if cb],
                        run_info={"epochs": s.epochs}, write=r.chief)
    with r.scope():  # builds the optimizer's slots on the devices
        restored = ckpt.restore(r.model) if o.resume else None
    if restored is not None and ckpt.initial_epoch >= s.epochs:
        raise ValueError(f"resume: the run in {o.out_dir} has already trained "
                         f"{ckpt.initial_epoch} epochs; ask for more (epochs > "
                         f"{ckpt.initial_epoch}) to continue it")
    return ckpt


def _fit(r: _Run, callbacks, ckpt):
    t1 = time.time()
    with warnings.catch_warnings():
        # A stream's number of batches is known only after its first pass, where Keras
        # says the input "ran out of data": that is the end of the epoch, not a problem.
        if r.streamed or r.options.multi_worker:
            warnings.filterwarnings("ignore", message="Your input ran out of data")
        # The dataset shuffles itself (and knows its length: a progress bar from epoch 1).
        history = r.model.fit(r.train_ds, validation_data=r.dev_ds, epochs=r.settings.epochs,
                              callbacks=callbacks, verbose=r.options.verbose, shuffle=False,
                              initial_epoch=ckpt.initial_epoch if ckpt else 0)
    r.times["train"] = time.time() - t1
    return history


def _report(r: _Run, history, tracked) -> dict:
    """The training report: settings, counts, history, times."""
    from zoo.training import updates_done

    s, o, ckpt = r.settings, r.options, tracked["checkpointer"]
    best, average = tracked["best"], tracked["average"]
    start = ckpt.initial_epoch if ckpt else 0
    # (History holds the epochs of this call; a resumed run trained the earlier ones.)
    epochs_trained = len(history.history["loss"]) + start
    keep_best = bool(s.keep_best and o.dev_pairs)
    return {
        "preset": s.preset, "epochs": s.epochs, "batch_size": s.batch_size,
        "batch_tokens": s.batch_tokens, "learning_rate": s.learning_rate,
        "warmup_steps": s.warmup_steps, "label_smoothing": s.label_smoothing,
        "vocab_size": r.tokenizer.vocab_size, "max_source_length": s.max_source_length,
        "max_target_length": s.max_target_length, "train_pairs": r.counts["pairs"],
        "streamed": r.streamed, "truncated_pairs": r.counts["truncated"],
        "truncated_sources": r.counts["truncated_sources"],
        "kept_epoch": best.best_epoch + 1 if best is not None and keep_best else
        epochs_trained, "epochs_trained": epochs_trained,
        "steps": updates_done(r.model.optimizer), "recipe": s.recipe,
        "max_steps": s.max_steps, "patience": s.patience, "average_last": s.average_last,
        "schedule": s.schedule, "decay_steps": r.decay_steps,
        "averaged": average.report if average is not None else None,
        # A resumed run's earlier epochs come from its checkpoints.
        "history": {k: [round(float(x), 4) for x in v] for k, v in (
            ckpt.history if ckpt is not None else history.history).items()},
        "parameters": int(r.model.count_params()),
        "tokenizer_seconds": round(r.times["tokenizer"], 1),
        "train_seconds": round(r.times["train"], 1), "mixed_precision": s.mixed_precision,
        "resumed_from_epoch": start if ckpt and o.resume else None,
        "devices": r.strategy.num_replicas_in_sync if r.strategy is not None else 1,
        "multi_worker": bool(o.multi_worker), "overrides": s.overrides,
        "init_from": s.init_from, "freeze": sorted(s.freeze),
        "unknown_pieces": r.counts["unknown"], "pieces": r.counts["pieces"],
        "coverage_epochs": s.coverage_epochs, "coverage_loss_weight": s.coverage_loss_weight,
        "settings_from": dict(s.sources), **(o.info_extra or {})}
