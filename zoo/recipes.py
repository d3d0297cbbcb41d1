"""End-to-end recipes: learn a tokenizer, build a preset, ``compile`` + ``fit``, save.

``train`` is the one recipe for every task; ``train_translator`` and ``train_summarizer`` set
its task defaults. What ``zoo train`` and ``bench/quality.py`` run; usable from Python.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from typing import Optional, Sequence, Tuple

#: Learning-rate schedules of :func:`train` (``schedule=``; recipes' ``train.schedule``).
SCHEDULES = ("inverse_sqrt", "linear")


def train_translator(train_pairs: Sequence[Tuple[str, str]], preset: Optional[str] = None,
                     out_dir: Optional[str] = None, dev_pairs=None,
                     vocab_size: Optional[int] = None, max_length: int = 64, **kwargs):
    """Trains a translator on sentence pairs: :func:`train` with a ``Translator``.

    Args:
        train_pairs: ``[(source, target), ...]``.
        preset: A translation preset (``zoo.models.presets.names("translation")``); default:
            the recipe's, else ``"rnn_tiny"``.
        out_dir: Where to save the model directory (see :func:`train`).
        dev_pairs: Validation pairs.
        vocab_size: Joint SentencePiece vocabulary size (default: the recipe's, else 8000).
        max_length: Token limit per side (longer sentences are truncated and counted).
        **kwargs: Any other argument of :func:`train`.

    Returns:
        ``(model, history, info)`` as :func:`train`.

    Example:
        >>> from zoo.data import anki_spa_eng_pairs
        >>> model, history, info = train_translator(anki_spa_eng_pairs(200), epochs=1,
        ...                                         vocab_size=300, verbose=0)
        >>> len(history.history["loss"])
        1
    """
    from zoo.models import Translator

    if preset is None and kwargs.get("recipe") is None and kwargs.get("init_from") is None:
        preset = "rnn_tiny"
    return train(Translator, train_pairs, preset=preset, out_dir=out_dir, dev_pairs=dev_pairs,
                 vocab_size=vocab_size, max_source_length=max_length,
                 max_target_length=max_length, **kwargs)


def train_summarizer(train_pairs: Sequence[Tuple[str, str]],
                     preset: Optional[str] = None, out_dir: Optional[str] = None,
                     dev_pairs=None, vocab_size: Optional[int] = None,
                     max_source_length: Optional[int] = None,
                     max_target_length: Optional[int] = None,
                     coverage_epochs: Optional[int] = None,
                     coverage_loss_weight: Optional[float] = None, **kwargs):
    """Trains a summarizer on ``(text, summary)`` pairs (dialogues: one turn per line).

    The tokenizer learns one vocabulary for both sides (the copy distribution needs it) with
    line breaks mapped to the reserved turn separator ``<sep>``; sources are cut to
    ``max_source_length`` tokens (400, as the SAMSum paper) and the cut ones counted.

    Args:
        train_pairs: ``[(dialogue, summary), ...]``.
        preset: A summarization preset (``zoo.models.presets.names("summarization")``);
            default: the recipe's, else ``"pointer_generator_small"``.
        out_dir: Where to save the model directory (see :func:`train`).
        dev_pairs: Validation pairs.
        vocab_size, max_source_length, max_target_length: None takes the preset's.
        coverage_epochs: Train the last this many epochs with the coverage loss (See et al.
            2017's final phase; :class:`zoo.training.CoveragePhase`); 0 never adds it. None
            takes the preset's.
        coverage_loss_weight: The coverage loss weight of that phase (See et al.: 1.0).
        **kwargs: Any other argument of :func:`train`; ``keep_best`` defaults to False when
            there is a coverage phase (its epochs raise the validation NLL by design).

    Returns:
        ``(model, history, info)`` as :func:`train`.
    """
    from zoo.models import Summarizer, presets
    from zoo.models.summarizer import TURN_SEPARATOR
    from zoo.training import CoveragePhase

    if kwargs.get("init_from") is not None:  # fine-tuning: the trained model's defaults
        defaults = fine_tune_defaults(kwargs["init_from"])
    else:
        if preset is None:
            preset = (presets.get_recipe(kwargs["recipe"])["preset"]
                      if kwargs.get("recipe") is not None else "pointer_generator_small")
        defaults = presets.get_preset(preset).get("train", {})
    if kwargs.get("recipe") is not None:  # the recipe's settings win over its preset's
        spec = presets.get_recipe(kwargs["recipe"])
        defaults = {**defaults, **spec["train"],
                    **({"vocab_size": spec["vocab_size"]} if "vocab_size" in spec else {})}
    epochs = int(kwargs.pop("epochs", None) or defaults.get("epochs", 10))
    cov_epochs = int(coverage_epochs if coverage_epochs is not None
                     else defaults.get("coverage_epochs", 0))
    attention = (kwargs.get("overrides") or {}).get("attention")
    if coverage_epochs is None and attention is not None and not _has_coverage(attention):
        cov_epochs = 0  # the preset's coverage phase needs a coverage attention
    cov_weight = float(coverage_loss_weight if coverage_loss_weight is not None
                       else defaults.get("coverage_loss_weight", 1.0))
    if not 0 <= cov_epochs <= epochs:
        raise ValueError(f"coverage_epochs must be in [0, epochs={epochs}], got {cov_epochs}")
    # Keeping the best held-out epoch would throw the coverage phase away: its epochs trade
    # likelihood for coverage, so validation NLL rises. With a phase, keep the last epoch.
    kwargs.setdefault("keep_best", cov_epochs == 0)
    callbacks = list(kwargs.pop("callbacks", None) or [])
    if cov_epochs:
        callbacks.append(CoveragePhase(start_epoch=epochs - cov_epochs, weight=cov_weight))
    model, history, info = train(
        Summarizer, train_pairs, preset=preset, out_dir=out_dir, dev_pairs=dev_pairs,
        vocab_size=vocab_size or defaults.get("vocab_size", 8000),
        max_source_length=max_source_length or defaults.get("max_source_length", 400),
        max_target_length=max_target_length or defaults.get("max_target_length", 100),
        turn_separator=TURN_SEPARATOR, epochs=epochs, callbacks=callbacks,
        info_extra={"coverage_epochs": cov_epochs, "coverage_loss_weight": cov_weight},
        **kwargs)
    return model, history, info


def _has_coverage(attention) -> bool:
    import zoo.attention

    return hasattr(zoo.attention.get(attention), "coverage_loss_weight")


def _chunks(pairs, size):
    chunk = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _reservoir(pairs, k: int, seed: int) -> list:
    """``k`` pairs drawn uniformly from an iterable in one pass (Vitter's algorithm R)."""
    import random

    rnd, sample = random.Random(seed), []
    for i, pair in enumerate(pairs):
        if i < k:
            sample.append(pair)
        else:
            j = rnd.randint(0, i)
            if j < k:
                sample[j] = pair
    return sample


def _fingerprint(pairs) -> str:
    import hashlib

    h = hashlib.sha256()
    for src, tgt in pairs:
        h.update(src.encode("utf-8") + b"\x00" + tgt.encode("utf-8") + b"\x01")
    return f"{len(pairs)}:{h.hexdigest()[:16]}"


def _check_numbers(**given):
    """Each number given is in its declared range (``zoo.inputs.NUMBERS``), before any work."""
    from zoo.inputs import NUMBER

    for name, value in given.items():
        if value is not None:
            NUMBER[name].check(value)


#: Fine-tuning defaults for a trained model whose preset records none.
FINE_TUNE = {"learning_rate": 3e-4, "warmup_steps": 100, "label_smoothing": 0.1,
             "batch_size": 64, "epochs": 3, "schedule": "linear"}
FREEZABLE = ("encoder", "embeddings")


def _base_model(model_class, handle):
    """``(model, training defaults)`` of the trained model a fine-tuning run starts from."""
    from zoo.models import load

    model = load(handle)
    if not isinstance(model, model_class):
        raise ValueError(f"init_from {handle!r} holds a {type(model).__name__} ({model.task}), "
                         f"not a {model_class.__name__}")
    return model, fine_tune_defaults(handle)


def fine_tune_defaults(handle) -> dict:
    """The training defaults of a fine-tuning run: its checkpoint preset's, over
    :data:`FINE_TUNE`."""
    from zoo.models import presets

    return {**FINE_TUNE, **(presets.PRESETS.get(handle) or {}).get("train", {})}


def _freeze(model, parts):
    """Stops ``parts`` (``FREEZABLE``) of a model from training."""
    unknown = sorted(set(parts) - set(FREEZABLE))
    if unknown:
        raise ValueError(f"freeze: unknown part {unknown[0]!r}; parts: {', '.join(FREEZABLE)}")
    if "encoder" in parts:
        model.encoder.trainable = False
    if "embeddings" in parts:
        for net in (model.encoder, model.decoder):
            net.embedding.trainable = False


def _start_run(out_dir, settings, tokenizer_fn, resume, overwrite):
    """Opens the run's ``checkpoints/`` in ``out_dir``: a new run writes its settings and
    tokenizer there; a resumed one checks its settings and reuses its tokenizer."""
    import json
    import tempfile

    from zoo.data import SentencePieceTokenizer
    from zoo.files import RUN_MARKER, write_file_atomically
    from zoo.training import CheckpointError

    ckpt_dir = os.path.join(out_dir, "checkpoints")
    run_path = os.path.join(out_dir, RUN_MARKER)
    if resume:
        try:
            with open(run_path) as f:
                run = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(f"resume: {out_dir} holds no training run to resume (no "
                                    f"{run_path}); start one without --resume") from None
        except ValueError as err:
            raise CheckpointError(f"{run_path}: not valid JSON ({err})") from None
        changed = [f"{k} (the run has {run[k]!r}, this call {v!r})"
                   for k, v in settings.items() if k in run and run[k] != v]
        if changed:
            raise CheckpointError(f"resume: the run in {out_dir} was started with other "
                                  f"settings: {'; '.join(changed)}")
        return ckpt_dir, SentencePieceTokenizer.load(os.path.join(ckpt_dir, "source.model"))
    if overwrite:
        # A fresh run: the old run's checkpoints and logs move aside (its model stays
        # loadable); all of it goes only when the new model is in place.
        for entry in ("checkpoints", "logs"):
            if os.path.lexists(os.path.join(out_dir, entry)):
                aside = tempfile.mkdtemp(prefix=f".zoo-old-{entry}-", dir=out_dir)
                os.rename(os.path.join(out_dir, entry), os.path.join(aside, entry))
    tokenizer = tokenizer_fn()
    os.makedirs(ckpt_dir, exist_ok=True)
    write_file_atomically(os.path.join(ckpt_dir, "source.model"), tokenizer.model)
    # Written last: its presence marks a run that can be resumed.
    write_file_atomically(run_path, json.dumps(settings, indent=2).encode("utf-8"))
    return ckpt_dir, tokenizer


def train(model_class, train_pairs, *args, **kwargs):
    # (Its docstring is _train's: set below.)
    import inspect

    from zoo.files import directory_lock

    bound = inspect.signature(_train).bind(model_class, train_pairs, *args, **kwargs)
    out_dir = bound.arguments.get("out_dir")
    # (Cluster workers other than the chief write nothing; they take no lock.)
    if not out_dir or bound.arguments.get("multi_worker"):
        return _train(model_class, train_pairs, *args, **kwargs)
    with directory_lock(out_dir, "out_dir"):
        return _train(model_class, train_pairs, *args, **kwargs)


def _train(model_class, train_pairs: Sequence[Tuple[str, str]], preset: Optional[str] = None,
          out_dir: Optional[str] = None, dev_pairs=None, vocab_size: Optional[int] = None,
          epochs: Optional[int] = None, batch_size: Optional[int] = None,
          batch_tokens: Optional[int] = None, learning_rate: Optional[float] = None,
          warmup_steps: Optional[int] = None, label_smoothing: Optional[float] = None,
          max_source_length: int = 64, max_target_length: int = 64,
          mixed_precision: bool = False, jit_compile: bool = False, tensorboard: bool = True,
          seed: int = 0, verbose="auto", overrides: Optional[dict] = None, tokenizer=None,
          callbacks=None, overwrite: bool = False, keep_best: bool = True,
          turn_separator: Optional[str] = None, info_extra: Optional[dict] = None,
          resume: bool = False, checkpoint_every: Optional[int] = 500,
          keep_checkpoints: int = 3, devices: Optional[int] = None,
          tokenizer_sample: int = 500_000, shuffle_buffer: int = 100_000,
          multi_worker: bool = False, batch_multiple: Optional[int] = None,
          recipe: Optional[str] = None, max_steps: Optional[int] = None,
          patience: Optional[int] = None, average_last: Optional[int] = None,
          schedule: Optional[str] = None, init_from: Optional[str] = None,
          freeze: Sequence[str] = ()):
    """Trains any task's model on text pairs: tokenizer, preset, ``compile`` + ``fit``, save.

    With ``out_dir``, the run is resumable: ``out_dir/checkpoints/`` gets the run's settings
    and tokenizer when it starts, and a checkpoint (:class:`zoo.training.Checkpointer`) every
    ``checkpoint_every`` batches, at each epoch's end, and on SIGINT/SIGTERM (then
    :class:`zoo.training.TrainingInterrupted` is raised). ``resume=True`` continues from the
    newest checkpoint and ends with the weights an uninterrupted run would have (see
    docs/training.md for what is exact). The model files appear in ``out_dir`` only when
    training ends, all at once.

    Args:
        model_class: The task class (``zoo.models.Translator``, ``Summarizer``...).
        train_pairs: ``[(source, target), ...]``, or a :class:`zoo.data.Corpus` of files
            to stream: then memory holds a shuffle buffer, not the corpus (the files are
            read on every epoch, the tokenizer learns from a sample).
        preset: A preset of that task (default: the recipe's).
        out_dir: Where to save the model directory (with ``checkpoints/`` and ``logs/``);
            None: no files, no checkpoints.
        dev_pairs: Validation pairs (validation loss each epoch).
        vocab_size: Joint SentencePiece vocabulary size (default: the recipe's, else 8000).
        epochs, batch_size, batch_tokens, learning_rate, warmup_steps, label_smoothing:
            Training settings; None takes the recipe's, else the preset's ``train`` defaults.
        max_source_length: Source tokens kept, eos included (longer ones are cut, counted).
        max_target_length: Target tokens kept per side of the shift (also the model's default
            generation limit).
        mixed_precision: ``mixed_float16`` compute (use on GPUs).
        jit_compile: XLA for the train step.
        tensorboard: Write TensorBoard logs under ``out_dir/logs``.
        seed: Seeds Python, NumPy, the backend and each epoch's data order.
        verbose: Keras ``fit`` verbosity (progress bar by default).
        overrides: Network config overrides (``{"attention": "coverage"}``...).
        tokenizer: Reuse a tokenizer instead of learning one.
        callbacks: Extra Keras callbacks.
        overwrite: Replace a model (or an unfinished run) that zoo wrote in ``out_dir`` (else
            it must be new or empty).
        keep_best: With ``dev_pairs``, keep the weights of the epoch with the lowest
            validation loss (:class:`zoo.training.EarlyStopping` with no early stop), not
            those of the last epoch.
        turn_separator: Learn the tokenizer with this reserved piece for line breaks.
        info_extra: More entries for the training report.
        resume: Continue the unfinished (or finished, for more ``epochs``) run in
            ``out_dir``; the settings must match the run's.
        checkpoint_every: Batches between checkpoints (None: epoch ends only).
        keep_checkpoints: Newest checkpoints kept.
        tokenizer_sample: With a streamed corpus, the tokenizer learns from this many pairs
            drawn uniformly from it (reservoir sampling, seeded).
        shuffle_buffer: With a streamed corpus, pairs held for shuffling.
        devices: Train data-parallel on this many devices of this host
            (:func:`zoo.training.distribute.mirrored_strategy`); ``batch_size`` and
            ``batch_tokens`` are then global. None or 1: one device.
        multi_worker: Train data-parallel on the cluster that ``TF_CONFIG`` describes
            (``tf.distribute.MultiWorkerMirroredStrategy``; every worker runs this with its
            own ``TF_CONFIG``; see docs/training.md). Batches are global; worker 0 writes
            ``out_dir`` (which the others read on resume: a shared file system).
        batch_multiple: Every batch holds a multiple of this many sentences (default: the
            number of replicas, so each gets an equal part; see ``make_dataset``). Set it
            on one device to train on the batches a cluster of that many replicas would.
        recipe: A recipe name (``zoo.models.presets.recipe_names()``): its preset, network
            overrides (``overrides`` wins per key) and training settings (explicit
            arguments win).
        max_steps: Stop after this many updates (:class:`zoo.training.StopAfterSteps`);
            None: ``epochs`` alone.
        patience: With ``dev_pairs``, stop after this many epochs without a lower
            validation loss (:class:`zoo.training.EarlyStopping`); None: never early.
        average_last: With ``dev_pairs``, end with the average of the weights of this many
            epoch ends up to the best one (:class:`zoo.training.CheckpointAverage`), if it
            has the lower validation loss than the best epoch alone; None or 1: no averaging.
        schedule: ``"inverse_sqrt"`` (warm-up, then ``1/sqrt(step)``; a constant rate
            without warm-up) or ``"linear"`` (warm-up, then linear decay to zero at
            ``max_steps``, else at the end of the last epoch). None: the recipe's, else
            ``"inverse_sqrt"``.
        init_from: Fine-tune: start from this trained model (a checkpoint preset such as
            ``"anki_es_en"``, a model directory, an archive or a URL with its SHA-256). Its
            tokenizer and architecture are kept (new text goes through its vocabulary; the
            unknown pieces are counted in the report) and its preset's fine-tuning defaults
            (``train``: lower peak rate, short warm-up, few epochs) replace the preset's.
        freeze: With ``init_from``, parts that do not train: ``"encoder"`` and/or
            ``"embeddings"``.

    Returns:
        ``(model, history, info)``: the trained model, the Keras ``History`` and a dict with
        the settings used, the training time and the number of pairs truncated.

    Raises:
        zoo.training.TrainingInterrupted: SIGINT or SIGTERM stopped the run after a
            checkpoint; no model was written.
    """
    import tensorflow as tf
    import keras

    from zoo.data import SentencePieceTokenizer, make_dataset, make_stream_dataset
    from zoo.data.tokenizer import speaker_tags
    from zoo.files import check_destination, staged_directory
    from zoo.models import presets
    from zoo.training import (CheckpointAverage, Checkpointer, EarlyStopping, SetEpoch,
                              StopAfterSteps, updates_done)

    import contextlib

    from zoo.data import Corpus
    from zoo.training import distribute

    _check_numbers(epochs=epochs, batch_size=batch_size, vocab_size=vocab_size,
                   learning_rate=learning_rate, max_source_length=max_source_length,
                   max_target_length=max_target_length, max_steps=max_steps,
                   patience=patience, average_last=average_last,
                   keep_checkpoints=keep_checkpoints)
    # First: a CPU can be split into devices only before TensorFlow's first operation.
    strategy = None
    if multi_worker and devices is not None and int(devices) > 1:
        raise ValueError("devices and multi_worker: give one (with multi_worker, each worker "
                         "uses all its GPUs, or its CPU)")
    if multi_worker:
        strategy = distribute.multi_worker_strategy()
    elif devices is not None and int(devices) > 1:
        strategy = distribute.mirrored_strategy(int(devices))
    chief = distribute.is_chief(strategy)
    streamed = isinstance(train_pairs, Corpus)
    if not streamed:
        train_pairs = list(train_pairs)
        if not train_pairs:
            raise ValueError("no training pairs")
    if resume and not out_dir:
        raise ValueError("resume needs out_dir (the run to continue)")
    if out_dir and not resume and chief:
        check_destination(out_dir, overwrite, "out_dir")
    # Before any model exists: a loaded model's dropout seeds are drawn when it is built.
    keras.utils.set_random_seed(seed)
    base = None
    if init_from is not None:
        if recipe is not None or preset is not None:
            raise ValueError("init_from fine-tunes a trained model with its own architecture "
                             "and tokenizer: give no preset or recipe with it")
        base, defaults = _base_model(model_class, init_from)
        preset, vocab_size = base.preset, base.source_tokenizer.vocab_size
        tokenizer = base.source_tokenizer
    elif freeze:
        raise ValueError("freeze applies to fine-tuning: give init_from")
    if base is not None:
        pass  # the trained model's own defaults
    elif recipe is not None:
        spec = presets.get_recipe(recipe)
        if spec["task"] != model_class.task:
            raise ValueError(f"recipe {recipe!r} is a {spec['task']} recipe, not "
                             f"{model_class.task}; {model_class.task} recipes: "
                             f"{', '.join(presets.recipe_names(model_class.task)) or 'none'}")
        preset = preset or spec["preset"]
        overrides = {**spec.get("overrides", {}), **(overrides or {})}
        vocab_size = vocab_size or spec.get("vocab_size")
        defaults = {**presets.get_preset(preset)["train"], **spec["train"]}
        # A recipe that batches by sentences (or tokens) replaces the preset's batching.
        for own, other in (("batch_size", "batch_tokens"), ("batch_tokens", "batch_size")):
            if own in spec["train"] and other not in spec["train"]:
                defaults[other] = None
    elif preset is None:
        raise ValueError("train: give a preset or a recipe")
    else:
        defaults = presets.get_preset(preset)["train"]
    vocab_size = int(vocab_size or defaults.get("vocab_size", 8000))
    max_steps = max_steps if max_steps is not None else defaults.get("max_steps")
    patience = patience if patience is not None else defaults.get("patience")
    average_last = int(average_last if average_last is not None
                       else defaults.get("average_last") or 1)
    epochs = int(epochs or defaults["epochs"])
    lr = learning_rate or defaults["learning_rate"]
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and 0 < lr <= 1):
        raise ValueError(f"learning_rate must be a number in (0, 1], got {lr!r}")
    warmup = warmup_steps if warmup_steps is not None else defaults.get("warmup_steps")
    smoothing = label_smoothing if label_smoothing is not None else defaults["label_smoothing"]
    schedule = schedule or defaults.get("schedule") or "inverse_sqrt"
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if schedule == "linear" and not max_steps and (streamed or multi_worker):
        raise ValueError("schedule 'linear' decays to zero at max_steps, or at the end of the "
                         "last epoch of a corpus in memory: give max_steps")
    if schedule == "linear" and max_steps and warmup and int(max_steps) <= int(warmup):
        raise ValueError(f"schedule 'linear': max_steps ({max_steps}) must be larger than "
                         f"warmup_steps ({warmup})")
    if batch_size is None and batch_tokens is None:
        batch_size, batch_tokens = defaults.get("batch_size", 64), defaults.get("batch_tokens")
    # What the next step depends on: a resumed run must match it (epochs may grow).
    settings = {"task": model_class.task, "preset": preset, "overrides": overrides or {},
                "vocab_size": vocab_size, "batch_size": batch_size,
                "batch_tokens": batch_tokens, "learning_rate": lr, "warmup_steps": warmup,
                "label_smoothing": smoothing, "max_source_length": max_source_length,
                "max_target_length": max_target_length, "mixed_precision": mixed_precision,
                "seed": seed, "keep_best": bool(keep_best and dev_pairs),
                "recipe": recipe, "max_steps": max_steps, "patience": patience,
                "average_last": average_last, "schedule": schedule,
                "turn_separator": turn_separator, "init_from": init_from,
                "freeze": sorted(freeze),
                "train_data": train_pairs.fingerprint() if streamed else
                _fingerprint(train_pairs),
                "dev_data": _fingerprint(list(dev_pairs)) if dev_pairs else None}
    t0 = time.time()

    def learn_tokenizer():
        if tokenizer is not None:
            return tokenizer
        sample = _reservoir(train_pairs, tokenizer_sample, seed) if streamed else train_pairs
        texts = [s for pair in sample for s in pair]
        # Dialogue speaker tags stay one piece, so copying takes a whole tag or none of it.
        return SentencePieceTokenizer.train(
            texts, vocab_size=vocab_size, seed=seed, turn_separator=turn_separator,
            symbols=speaker_tags(texts) if turn_separator else ())

    ckpt_dir = None
    if out_dir and (chief or resume):
        ckpt_dir, tokenizer = _start_run(out_dir, settings, learn_tokenizer, resume, overwrite)
    else:  # another worker than the chief learns the same tokenizer (deterministic)
        tokenizer = learn_tokenizer()
        ckpt_dir = os.path.join(out_dir, "checkpoints") if out_dir else None
    tok_time = time.time() - t0
    # Counted host-side, as the pipeline cuts: source ids + eos, bos + target ids + eos. A
    # streamed corpus is read once here, in chunks: every pair is checked before training.
    sp = tokenizer.processor
    n_pairs = truncated_sources = truncated = n_pieces = n_unknown = 0
    for chunk in _chunks(train_pairs, 4096):
        src_len = sp.encode([s for s, _ in chunk])
        tgt_len = sp.encode([t for _, t in chunk])
        n_pairs += len(chunk)
        truncated_sources += sum(1 for a in src_len if len(a) > max_source_length - 1)
        truncated += sum(1 for a, b in zip(src_len, tgt_len)
                         if len(a) > max_source_length - 1 or len(b) > max_target_length - 1)
        n_pieces += sum(len(a) + len(b) for a, b in zip(src_len, tgt_len))
        n_unknown += sum(row.count(tokenizer.unk_id) for row in src_len + tgt_len)
    if not n_pairs:
        raise ValueError("no training pairs")

    def scope():
        return strategy.scope() if strategy is not None else contextlib.nullcontext()

    with scope():
        if base is not None:
            # Under a strategy the variables must be made in its scope: load again there.
            model = base if strategy is None else _base_model(model_class, init_from)[0]
        else:
            model = model_class.from_preset(
                preset, tokenizer=tokenizer,
                dtype="mixed_float16" if mixed_precision else None,
                max_target_length=max_target_length, max_source_length=max_source_length,
                **(overrides or {}))
    _freeze(model, freeze)
    # Under a strategy every batch splits evenly over the replicas.
    ds_kw = dict(max_source_length=max_source_length, max_target_length=max_target_length,
                 batch_size=batch_size or 64, batch_tokens=batch_tokens,
                 batch_multiple=batch_multiple or (
                     strategy.num_replicas_in_sync if strategy else 1))
    # Each epoch's order is a function of (seed, epoch): what makes a resume exact.
    data_epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def train_batches():
        if streamed:
            return make_stream_dataset(
                train_pairs.paths, tokenizer, fmt=train_pairs.fmt,
                skip_invalid=train_pairs.skip_invalid, shuffle_buffer=shuffle_buffer,
                seed=seed, epoch=data_epoch, **train_pairs.reader_kwargs, **ds_kw)
        return make_dataset(train_pairs, tokenizer, shuffle=True, seed=seed,
                            epoch=data_epoch, **ds_kw)

    def dev_batches():
        return make_dataset(list(dev_pairs), tokenizer, shuffle=False, **ds_kw)

    if multi_worker:
        # Every worker builds the same global batches and keeps its replicas' parts.
        total = strategy.num_replicas_in_sync
        local = len(strategy.extended.worker_devices)

        def across_workers(build):
            return strategy.distribute_datasets_from_function(
                lambda ctx: distribute.split_for_replicas(
                    build(), ctx.input_pipeline_id * local, local, total))

        train_ds = across_workers(train_batches)
        dev_ds = across_workers(dev_batches) if dev_pairs else None
    else:
        train_ds = train_batches()
        dev_ds = dev_batches() if dev_pairs else None
    decay_steps = None
    if schedule == "linear":
        # To zero at the update budget, else at the end of the last epoch (the in-memory
        # dataset knows its number of batches).
        decay_steps = max_steps or epochs * int(train_ds.cardinality())
        if warmup_steps is None and decay_steps <= 10 * (warmup or 0):
            warmup = decay_steps // 10  # a default warm-up scaled to a short run
        if decay_steps <= (warmup or 0):
            raise ValueError(f"schedule 'linear': {epochs} epochs of {decay_steps // epochs} "
                             f"batches leave no update after warmup_steps ({warmup})")
    with scope():
        model.compile(learning_rate=lr, warmup_steps=warmup, label_smoothing=smoothing,
                      jit_compile=jit_compile, decay_steps=decay_steps)
    cbs = list(callbacks or [])
    if max_steps:
        cbs.append(StopAfterSteps(max_steps))
    average = best = None
    if dev_ds is not None and (keep_best or patience is not None):
        # With averaging, the average (or the best epoch) is chosen at the end by
        # CheckpointAverage: early stopping then only stops.
        averaging = average_last > 1 and keep_best
        best = EarlyStopping(patience=patience, restore_best_weights=keep_best and not
                             averaging)
        cbs.append(best)
        if averaging:
            average = CheckpointAverage(last=average_last, validation_data=dev_ds)
            cbs.append(average)
    ckpt = None
    if not ckpt_dir:
        cbs.append(SetEpoch(data_epoch))  # (a Checkpointer sets it otherwise)
    if ckpt_dir:
        ckpt = Checkpointer(ckpt_dir, every_steps=checkpoint_every, keep=keep_checkpoints,
                            data_epoch=data_epoch,
                            track=[cb for cb in (best, average) if cb is not None],
                            run_info={"epochs": epochs}, write=chief)
        with scope():  # builds the optimizer's slots on the devices
            restored = ckpt.restore(model) if resume else None
        if restored is not None and ckpt.initial_epoch >= epochs:
            raise ValueError(f"resume: the run in {out_dir} has already trained "
                             f"{ckpt.initial_epoch} epochs; ask for more (epochs > "
                             f"{ckpt.initial_epoch}) to continue it")
        cbs.append(ckpt)
        if tensorboard and chief:
            cbs.append(keras.callbacks.TensorBoard(os.path.join(out_dir, "logs")))
    t1 = time.time()
    # The dataset shuffles itself (and knows its length: a progress bar from epoch 1).
    with warnings.catch_warnings():
        # A stream's number of batches is known only after its first pass, where Keras
        # says the input "ran out of data": that is the end of the epoch, not a problem.
        if streamed or multi_worker:
            warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = model.fit(train_ds, validation_data=dev_ds, epochs=epochs, callbacks=cbs,
                            verbose=verbose, shuffle=False,
                            initial_epoch=ckpt.initial_epoch if ckpt else 0)
    train_time = time.time() - t1
    # (History holds the epochs of this call; a resumed run trained the earlier ones.)
    epochs_trained = len(history.history["loss"]) + (ckpt.initial_epoch if ckpt else 0)
    info = {"preset": preset, "epochs": epochs, "batch_size": batch_size,
            "batch_tokens": batch_tokens, "learning_rate": lr, "warmup_steps": warmup,
            "label_smoothing": smoothing, "vocab_size": tokenizer.vocab_size,
            "max_source_length": max_source_length,
            "max_target_length": max_target_length, "train_pairs": n_pairs,
            "streamed": streamed,
            "truncated_pairs": truncated, "truncated_sources": truncated_sources,
            "kept_epoch": (best.best_epoch + 1) if best is not None and keep_best else
            epochs_trained, "epochs_trained": epochs_trained,
            "steps": updates_done(model.optimizer), "recipe": recipe,
            "max_steps": max_steps, "patience": patience, "average_last": average_last,
            "schedule": schedule, "decay_steps": decay_steps,
            "averaged": average.report if average is not None else None,
            # A resumed run's earlier epochs come from its checkpoints.
            "history": {k: [round(float(x), 4) for x in v] for k, v in (
                ckpt.history if ckpt is not None else history.history).items()},
            "parameters": int(model.count_params()), "tokenizer_seconds": round(tok_time, 1),
            "train_seconds": round(train_time, 1), "mixed_precision": mixed_precision,
            "resumed_from_epoch": (ckpt.initial_epoch if ckpt and resume else None),
            "devices": strategy.num_replicas_in_sync if strategy is not None else 1,
            "multi_worker": bool(multi_worker),
            "overrides": overrides or {}, "init_from": init_from, "freeze": sorted(freeze),
            "unknown_pieces": n_unknown, "pieces": n_pieces, **(info_extra or {})}
    model._meta = {"training": info}
    if out_dir and chief:
        # The run's own directory: its checkpoints and logs move into the finished one.
        with staged_directory(out_dir, overwrite=True, what="out_dir",
                              carry=("checkpoints", "logs")) as tmp:
            model.write_files(tmp)
    return model, history, info


# One docstring for the public name: the arguments are _train's, and the lock is train's.
train.__doc__ = _train.__doc__.replace(
    "    Returns:", "    A second process training into the same ``out_dir`` is refused\n"
    "    (:class:`zoo.files.OutputLockedError`) while this one runs.\n\n    Returns:", 1)
