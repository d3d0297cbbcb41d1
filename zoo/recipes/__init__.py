"""Training: one recipe for every task, as a small pipeline.

:func:`train` merges the run's settings once (:mod:`zoo.recipes.settings`: zoo < task <
preset or trained model < recipe < caller), then the trainer (:mod:`zoo.recipes.trainer`)
runs its steps. ``train_translator`` and ``train_summarizer`` name the task. What ``zoo
train`` and the bench scripts run; usable from Python.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple

from zoo.recipes.settings import (FINE_TUNE, FREEZABLE, SCHEDULES, Settings,  # noqa: F401
                                  fine_tune_defaults, resolve)
from zoo.recipes.trainer import RunOptions, freeze, run_training  # noqa: F401

_SETTINGS = {f.name for f in dataclasses.fields(Settings)} - {"task", "sources"}
_OPTIONS = {f.name for f in dataclasses.fields(RunOptions)}


def train(model_class, train_pairs, preset: Optional[str] = None,
          out_dir: Optional[str] = None, dev_pairs=None, **kwargs):
    """Trains any task's model on text pairs: tokenizer, preset, ``compile`` + ``fit``, save.

    With ``out_dir``, the run is resumable: ``out_dir/checkpoints/`` gets the run's settings
    and tokenizer when it starts, and a checkpoint (:class:`zoo.training.Checkpointer`) every
    ``checkpoint_every`` batches, at each epoch's end, and on SIGINT/SIGTERM (then
    :class:`zoo.training.TrainingInterrupted` is raised). ``resume=True`` continues from the
    newest checkpoint and ends with the weights an uninterrupted run would have (see
    docs/training.md for what is exact). The model files appear in ``out_dir`` only when
    training ends, all at once. A second process training into the same ``out_dir`` is
    refused (:class:`zoo.files.OutputLockedError`) while this one runs.

    Args:
        model_class: The task class (``zoo.models.Translator``, ``Summarizer``...).
        train_pairs: ``[(source, target), ...]``, or a :class:`zoo.data.Corpus` of files
            to stream: then memory holds a shuffle buffer, not the corpus (the files are
            read on every epoch, the tokenizer learns from a sample).
        preset: A preset of that task (default: the recipe's, else the task's).
        out_dir: Where to save the model directory (with ``checkpoints/`` and ``logs/``);
            None: no files, no checkpoints.
        dev_pairs: Validation pairs (validation loss each epoch).
        **kwargs: What the run learns with, each None for "not given" (merged by
            :func:`zoo.recipes.settings.resolve`): ``recipe`` (a name of
            ``zoo.models.presets.recipe_names()``: its preset, overrides and settings),
            ``init_from`` (fine-tune a trained model: a checkpoint preset, a directory, an
            archive or a URL with its SHA-256; its tokenizer, architecture and fine-tuning
            defaults are kept), ``freeze`` (with ``init_from``: ``"encoder"``,
            ``"embeddings"``), ``overrides`` (network config: ``{"attention":
            "coverage"}``), ``vocab_size``, ``epochs``, ``batch_size`` or ``batch_tokens``,
            ``learning_rate``, ``warmup_steps``, ``label_smoothing``, ``schedule``
            (``"inverse_sqrt"``, or ``"linear"`` decay to zero at ``max_steps``, else at the
            last epoch's end), ``max_steps``, ``patience`` (early stop with ``dev_pairs``),
            ``average_last`` (end with the average of that many epochs up to the best, when
            it validates better), ``keep_best`` (keep the best validation epoch's weights),
            ``max_source_length`` / ``max_target_length`` (tokens kept, eos included; longer
            ones are cut and counted), ``coverage_epochs`` / ``coverage_loss_weight`` (the
            last epochs with the coverage loss), ``seed``, ``mixed_precision``,
            ``turn_separator``. And how the run is carried out (:class:`RunOptions`):
            ``overwrite`` (replace a model or run that zoo wrote), ``resume``,
            ``checkpoint_every``, ``keep_checkpoints``, ``devices`` (data-parallel replicas
            of this host), ``multi_worker`` (the ``TF_CONFIG`` cluster; worker 0 writes),
            ``batch_multiple``, ``tokenizer_sample`` and ``shuffle_buffer`` (streamed
            corpora), ``jit_compile``, ``tensorboard``, ``verbose``, ``tokenizer`` (reuse
            one), ``callbacks``, ``info_extra`` (more report entries).

    Returns:
        ``(model, history, info)``: the trained model, the Keras ``History`` and a dict with
        the settings used (``settings_from`` names the layer of each), the training time and
        the number of pairs truncated.

    Raises:
        zoo.training.TrainingInterrupted: SIGINT or SIGTERM stopped the run after a
            checkpoint; no model was written.

    Example:
        >>> from zoo.data import anki_spa_eng_pairs
        >>> from zoo.models import Translator
        >>> model, history, info = train(Translator, anki_spa_eng_pairs(200), epochs=1,
        ...                              vocab_size=300, verbose=0)
        >>> info["settings_from"]["epochs"], info["settings_from"]["preset"]
        ('given', 'task')
    """
    from zoo.files import directory_lock

    unknown = sorted(set(kwargs) - _SETTINGS - _OPTIONS)
    if unknown:
        raise TypeError(f"train() got an unexpected keyword argument {unknown[0]!r}")
    given = {k: v for k, v in kwargs.items() if k in _SETTINGS}
    settings = resolve(model_class, {**given, "preset": preset})
    options = RunOptions(out_dir=out_dir, dev_pairs=dev_pairs,
                         **{k: v for k, v in kwargs.items() if k in _OPTIONS})
    # (Cluster workers other than the chief write nothing; they take no lock.)
    if not out_dir or options.multi_worker:
        return run_training(model_class, train_pairs, settings, options)
    with directory_lock(out_dir, "out_dir"):
        return run_training(model_class, train_pairs, settings, options)


def train_translator(train_pairs: Sequence[Tuple[str, str]], preset: Optional[str] = None,
                     out_dir: Optional[str] = None, dev_pairs=None,
                     max_length: Optional[int] = None, **kwargs):
    """Trains a translator on sentence pairs: :func:`train` with a ``Translator``.

    Args:
        train_pairs: ``[(source, target), ...]``.
        preset: A translation preset (``zoo.models.presets.names("translation")``); default:
            the recipe's, else ``"rnn_tiny"``.
        out_dir: Where to save the model directory (see :func:`train`).
        dev_pairs: Validation pairs.
        max_length: Token limit per side (longer sentences are truncated and counted;
            default 64).
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

    return train(Translator, train_pairs, preset=preset, out_dir=out_dir, dev_pairs=dev_pairs,
                 max_source_length=max_length, max_target_length=max_length, **kwargs)


def train_summarizer(train_pairs: Sequence[Tuple[str, str]], preset: Optional[str] = None,
                     out_dir: Optional[str] = None, dev_pairs=None, **kwargs):
    """Trains a summarizer on ``(text, summary)`` pairs (dialogues: one turn per line).

    The tokenizer learns one vocabulary for both sides (the copy distribution needs it) with
    line breaks mapped to the reserved turn separator ``<sep>`` and speaker tags as single
    pieces; sources are cut to ``max_source_length`` tokens (400, as the SAMSum paper) and the
    cut ones counted. The last ``coverage_epochs`` epochs add the coverage loss (See et al.
    2017's final phase); with such a phase the last epoch is kept, not the best validating.

    Args:
        train_pairs: ``[(dialogue, summary), ...]``.
        preset: A summarization preset (``zoo.models.presets.names("summarization")``);
            default: the recipe's, else ``"pointer_generator_small"``.
        out_dir: Where to save the model directory (see :func:`train`).
        dev_pairs: Validation pairs.
        **kwargs: Any other argument of :func:`train`.

    Returns:
        ``(model, history, info)`` as :func:`train`.
    """
    from zoo.models import Summarizer
    from zoo.models.summarizer import TURN_SEPARATOR

    return train(Summarizer, train_pairs, preset=preset, out_dir=out_dir, dev_pairs=dev_pairs,
                 turn_separator=TURN_SEPARATOR, **kwargs)
