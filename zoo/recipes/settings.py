"""The one merge of training settings: zoo's defaults < the task's (``zoo.tasks``) < the
preset's (or, when fine-tuning, the trained model's) < the recipe's < the caller's.

Every training entry point (``zoo.recipes.train``, ``zoo train``, the bench scripts) resolves
its settings here, once, before any work; the result, with the layer each value came from, is
recorded in the run and in the model's training report.

Example:
    >>> from zoo.models import Translator
    >>> s = resolve(Translator, {"preset": "rnn_tiny", "epochs": 2})
    >>> s.epochs, s.sources["epochs"], s.sources["learning_rate"]
    (2, 'given', 'preset')
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

#: Learning-rate schedules (``schedule=``; recipes' ``train.schedule``).
SCHEDULES = ("inverse_sqrt", "linear")
#: Fine-tuning defaults for a trained model whose preset records none.
FINE_TUNE = {"learning_rate": 3e-4, "warmup_steps": 100, "label_smoothing": 0.1,
             "batch_size": 64, "epochs": 3, "schedule": "linear"}
#: What ``freeze=`` may stop from training.
FREEZABLE = ("encoder", "embeddings")
#: The lowest layer: what no task, preset or recipe sets.
ZOO_DEFAULTS = {"epochs": 10, "learning_rate": 1e-3, "vocab_size": 8000, "batch_size": 64, "batch_tokens": None,
                "warmup_steps": None, "label_smoothing": 0.0, "schedule": "inverse_sqrt",
                "max_steps": None, "patience": None, "average_last": 1,
                "max_source_length": 64, "max_target_length": 64, "coverage_epochs": 0,
                "coverage_loss_weight": 1.0}


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a training run learns with: the resolved settings (see :func:`resolve`).

    ``sources`` names the layer each value came from: ``zoo``, ``task``, ``preset``,
    ``fine_tune``, ``recipe`` or ``given``.
    """

    task: str
    preset: str
    recipe: Optional[str]
    init_from: Optional[str]
    freeze: Tuple[str, ...]
    overrides: dict
    vocab_size: int
    epochs: int
    batch_size: Optional[int]
    batch_tokens: Optional[int]
    learning_rate: float
    warmup_steps: Optional[int]
    label_smoothing: float
    schedule: str
    max_steps: Optional[int]
    patience: Optional[int]
    average_last: int
    max_source_length: int
    max_target_length: int
    coverage_epochs: int
    coverage_loss_weight: float
    keep_best: bool
    seed: int
    mixed_precision: bool
    turn_separator: Optional[str]
    sources: dict = dataclasses.field(compare=False)

    def with_base(self, base) -> "Settings":
        """A fine-tuning run's settings: the trained model's preset and vocabulary; length
        limits within a table of learned positions (a default is cut to it, a given one
        refused beyond it)."""
        lengths = {}
        for name, network in (("max_source_length", base.encoder),
                              ("max_target_length", base.decoder)):
            table = getattr(network, "max_positions", None)
            if getattr(network, "positions", None) != "learned" or getattr(self, name) <= table:
                continue
            if self.sources.get(name) == "given":
                base._check_positions(name, getattr(self, name), network)
            lengths[name] = int(table)
        return dataclasses.replace(self, preset=base.preset,
                                   vocab_size=base.source_tokenizer.vocab_size, **lengths)

    def run_record(self) -> dict:
        """What the next step depends on: a resumed run must match it (epochs may grow)."""
        keys = ("task", "preset", "overrides", "vocab_size", "batch_size", "batch_tokens",
                "learning_rate", "warmup_steps", "label_smoothing", "max_source_length",
                "max_target_length", "mixed_precision", "seed", "recipe", "max_steps",
                "patience", "average_last", "schedule", "turn_separator", "init_from")
        record = {k: getattr(self, k) for k in keys}
        record["freeze"] = sorted(self.freeze)
        return record


def fine_tune_defaults(handle) -> dict:
    """The training defaults of a fine-tuning run: its checkpoint preset's, over
    :data:`FINE_TUNE`."""
    from zoo.models import presets

    return {**FINE_TUNE, **(presets.PRESETS.get(handle) or {}).get("train", {})}


def _layers(task: str, given: dict) -> list:
    """``[(layer name, settings)]`` from lowest to highest priority."""
    from zoo.models import presets

    recipe = given.get("recipe")
    spec = presets.get_recipe(recipe) if recipe is not None else None
    if spec is not None and spec["task"] != task:
        raise ValueError(f"recipe {recipe!r} is a {spec['task']} recipe, not {task}; {task} "
                         f"recipes: {', '.join(presets.recipe_names(task)) or 'none'}")
    from zoo import tasks

    task_layer = dict(tasks.get(task).training) if task in tasks.TASKS else {}
    if given.get("init_from") is not None:
        middle = ("fine_tune", fine_tune_defaults(given["init_from"]))
        task_layer.pop("preset", None)
    else:
        preset = given.get("preset") or (spec or {}).get("preset") or task_layer.get("preset")
        if preset is None:
            raise ValueError("train: give a preset or a recipe")
        if presets.task_of(preset) != task:
            raise ValueError(f"preset {preset!r} is a {presets.task_of(preset)} preset; {task} "
                             f"presets: {', '.join(presets.names(task))}")
        middle = ("preset", presets.get_preset(preset).get("train", {}))
    layers = [("zoo", ZOO_DEFAULTS), ("task", task_layer), middle]
    if spec is not None:
        train = dict(spec["train"])
        # A recipe that batches by sentences (or tokens) replaces the preset's batching.
        for own, other in (("batch_size", "batch_tokens"), ("batch_tokens", "batch_size")):
            if own in train and other not in train:
                train[other] = None
        if "vocab_size" in spec:
            train["vocab_size"] = spec["vocab_size"]
        layers.append(("recipe", {**train, "preset": spec["preset"],
                                  "overrides": spec.get("overrides", {})}))
    given = {k: v for k, v in given.items() if v is not None}
    for own, other in (("batch_size", "batch_tokens"), ("batch_tokens", "batch_size")):
        if own in given and other not in given:
            given[other] = None  # the caller's batching replaces the layers' below
    return layers + [("given", given)]


def _merge(layers) -> Tuple[dict, dict]:
    """Flattens the layers: ``(values, the layer of each value)``; overrides merge per key."""
    values, sources = {}, {}
    for name, layer in layers:
        for key, value in layer.items():
            if key == "overrides":
                value = {**values.get("overrides", {}), **(value or {})}
            values[key], sources[key] = value, name
    if values.get("batch_size") is None and values.get("batch_tokens") is None:
        values["batch_size"], sources["batch_size"] = 64, "zoo"
    return values, sources


def resolve(model_class, given: dict) -> Settings:
    """Merges and checks a run's settings, before any work.

    Args:
        model_class: The task's model class (``zoo.models.Translator``...).
        given: The caller's settings (None: not given): any :class:`Settings` field, plus
            ``recipe``, ``preset`` and ``init_from``.

    Returns:
        The :class:`Settings`.

    Raises:
        ValueError (or ``zoo.inputs.InputError``): a setting out of its range, an unknown
            preset, recipe, schedule or part to freeze, or settings that contradict.
    """
    _check_given(given)
    values, sources = _merge(_layers(model_class.task, given))
    values["overrides"] = values.get("overrides") or {}
    attention = values["overrides"].get("attention")
    if sources["coverage_epochs"] != "given" and attention is not None and \
            not _has_coverage(attention):
        values["coverage_epochs"] = 0  # the preset's coverage phase needs a coverage attention
    if "keep_best" not in given or given["keep_best"] is None:
        # Keeping the best held-out epoch would throw a coverage phase away: its epochs trade
        # likelihood for coverage, so validation NLL rises.
        values["keep_best"] = not values["coverage_epochs"]
    values["average_last"] = values.get("average_last") or 1
    for key, kind in (("epochs", int), ("vocab_size", int), ("average_last", int),
                      ("coverage_epochs", int), ("coverage_loss_weight", float)):
        values[key] = kind(values[key])
    fields = {f.name for f in dataclasses.fields(Settings)} - {"sources"}
    values = {k: v for k, v in values.items() if k in fields}
    values["freeze"] = tuple(values.get("freeze") or ())
    settings = Settings(**{**_RUN_DEFAULTS, **values, "task": model_class.task},
                        sources=sources)
    _check_merged(settings)
    return settings


_RUN_DEFAULTS = {"preset": None, "recipe": None, "init_from": None, "freeze": (), "seed": 0,
                 "mixed_precision": False, "turn_separator": None}


def _has_coverage(attention) -> bool:
    import zoo.attention

    return hasattr(zoo.attention.get(attention), "coverage_loss_weight")


def _check_given(given: dict) -> None:
    """The caller's numbers in their declared ranges; fine-tuning options that fit."""
    from zoo.inputs import NUMBER

    for name in ("epochs", "batch_size", "vocab_size", "learning_rate", "max_source_length",
                 "max_target_length", "max_steps", "patience", "average_last"):
        if given.get(name) is not None:
            NUMBER[name].check(given[name])
    if given.get("init_from") is not None:
        if given.get("recipe") is not None or given.get("preset") is not None:
            raise ValueError("init_from fine-tunes a trained model with its own architecture "
                             "and tokenizer: give no preset or recipe with it")
    elif given.get("freeze"):
        raise ValueError("freeze applies to fine-tuning: give init_from")
    check_freeze(given.get("freeze") or ())


def check_freeze(parts) -> None:
    """Every part to freeze is one of :data:`FREEZABLE`."""
    unknown = sorted(set(parts) - set(FREEZABLE))
    if unknown:
        raise ValueError(f"freeze: unknown part {unknown[0]!r}; parts: {', '.join(FREEZABLE)}")


def _check_merged(s: Settings) -> None:
    """What only the merged settings can show."""
    lr = s.learning_rate
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and 0 < lr <= 1):
        raise ValueError(f"learning_rate must be a number in (0, 1], got {lr!r}")
    if s.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got "
                         f"{s.schedule!r}")
    if s.schedule == "linear" and s.max_steps and s.warmup_steps and \
            int(s.max_steps) <= int(s.warmup_steps):
        raise ValueError(f"schedule 'linear': max_steps ({s.max_steps}) must be larger than "
                         f"warmup_steps ({s.warmup_steps})")
    if not 0 <= s.coverage_epochs <= s.epochs:
        raise ValueError(f"coverage_epochs must be in [0, epochs={s.epochs}], got "
                         f"{s.coverage_epochs}")
