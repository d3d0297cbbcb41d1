"""Prebuilt models on one task-agnostic base: ``Seq2Seq`` and its tasks (``Translator``,
``Summarizer``).

``REGISTRY`` holds the task classes, ``presets`` their presets (data), ``load(dir)`` reads any
saved model, ``import_keras_hub`` takes over a KerasHub T5 (docs/importing.md). What a new
task writes: docs/tasks.md.

Example:
    >>> import zoo.models
    >>> "transformer_small" in zoo.models.presets.names("translation")
    True
"""

from zoo.models import presets
from zoo.models.base import REGISTRY, ModelFileError, Seq2Seq, load, register
from zoo.models.importers import import_keras_hub
from zoo.models.summarizer import Summarizer
from zoo.models.translator import Translator

__all__ = ["ModelFileError", "REGISTRY", "Seq2Seq", "Summarizer", "Translator",
           "import_keras_hub", "load", "presets", "register"]
