"""The tasks, declared once: name, model class, CLI command and verb, metric, default decoding.

Pure Python (no TensorFlow), so the CLI can read it before it imports any model code. The
model classes (``Seq2Seq.task``), the presets' task grouping, the CLI's commands and the
decoding that ``generate_text`` and ``zoo translate``/``zoo summarize`` use by default all
come from here.

Example:
    >>> get("summarization").decoding["beam_size"]
    4
    >>> by_class("Translator").verb
    'translate'
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Mapping, Optional


@dataclasses.dataclass(frozen=True)
class Task:
    """One task.

    Args:
        name: The task's name (``"translation"``): what presets and saved models record.
        model_class: The registered class name of its model (``"Translator"``).
        command: Its ``zoo train`` command (``"translator"``), or None.
        verb: Its text command and method (``"translate"``), or None.
        metric: ``"bleu"`` or ``"rouge"``.
        unit: What one input is called in messages (``"sentence"``).
        decoding: Default decoding: ``strategy`` and its options.
        training: Training defaults over zoo's (``zoo.recipes.settings``): the default
            ``preset`` and lengths; a preset, recipe or caller overrides them.
    """

    name: str
    model_class: str
    command: Optional[str] = None
    verb: Optional[str] = None
    metric: str = "bleu"
    unit: str = "text"
    decoding: Mapping[str, object] = dataclasses.field(
        default_factory=lambda: {"strategy": "greedy"})
    training: Mapping[str, object] = dataclasses.field(default_factory=dict)

    def decoding_options(self, max_length=None, **given) -> Dict[str, object]:
        """The task's default decoding with the options ``given`` (None: not given) over it.

        A strategy given without its options takes none of the default strategy's. A default
        ``min_length`` yields to a shorter ``max_length`` (which is not returned).
        """
        from zoo.inputs import strategy_name

        given = {k: v for k, v in given.items() if v is not None}
        if isinstance(given.get("strategy"), str):
            given["strategy"] = strategy_name(given["strategy"])
        base = dict(self.decoding)
        if "strategy" in given and given["strategy"] != base.get("strategy"):
            base = {"strategy": given["strategy"]}
            # Trigram blocking suits every strategy of a task that asks for it.
            if "no_repeat_ngram_size" in self.decoding:
                base["no_repeat_ngram_size"] = self.decoding["no_repeat_ngram_size"]
        options = {**base, **given}
        if "min_length" not in given and "min_length" in options and \
                isinstance(max_length, int):
            options["min_length"] = min(options["min_length"], max_length)
        return options


TASKS: Dict[str, Task] = {}


def register(task: Task) -> Task:
    """Adds a task (a new task's module calls this once)."""
    if task.name in TASKS and TASKS[task.name] != task:
        raise ValueError(f"task {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def get(name: str) -> Task:
    """A task by name, or a ValueError naming the known ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def by_class(class_name: str) -> Optional[Task]:
    """The task whose model class is ``class_name``, or None."""
    return next((t for t in TASKS.values() if t.model_class == class_name), None)


def by_command(command: str) -> Task:
    """The task of a ``zoo train`` command (``"translator"``)."""
    return next(t for t in TASKS.values() if t.command == command)


TRANSLATION = register(Task("translation", "Translator", command="translator",
                            verb="translate", metric="bleu", unit="sentence",
                            decoding={"strategy": "greedy"},
                            training={"preset": "rnn_tiny"}))
SUMMARIZATION = register(Task("summarization", "Summarizer", command="summarizer",
                              verb="summarize", metric="rouge", unit="dialogue",
                              # Chosen on DialogSum dev with the dialogsum_summarizer
                              # checkpoint (docs/RESULTS.md): longer summaries score higher.
                              decoding={"strategy": "beam", "beam_size": 4,
                                        "length_penalty": 2.0, "min_length": 10,
                                        "no_repeat_ngram_size": 3},
                              # The SAMSum baselines' source limit.
                              training={"preset": "pointer_generator_small",
                                        "max_source_length": 400, "max_target_length": 100}))
