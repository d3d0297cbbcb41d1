"""Prebuilt models: ``Translator`` (RNN + attention, Transformer) and its presets.

Example:
    >>> import zoo.models
    >>> "transformer_small" in zoo.models.presets.names()
    True
"""

from zoo.models import presets
from zoo.models.translator import Translator

__all__ = ["Translator", "presets"]
