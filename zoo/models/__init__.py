"""Prebuilt models on one task-agnostic base: ``Seq2Seq`` and its tasks (``Translator``,
``Summarizer``).

``REGISTRY`` holds the task classes, ``presets`` their presets (data), ``load(dir)`` reads any
saved model. What a new task writes: docs/tasks.md.

Example:
    >>> import zoo.models
    >>> "transformer_small" in zoo.models.presets.names("translation")
    True
"""

from zoo.models import presets
from zoo.models.base import REGISTRY, ModelFileError, Seq2Seq, load, register
from zoo.models.summarizer import Summarizer
from zoo.models.translator import Translator

__all__ = ["ModelFileError", "REGISTRY", "Seq2Seq", "Summarizer", "Translator", "load",
           "presets", "register"]
