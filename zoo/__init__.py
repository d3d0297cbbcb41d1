"""zoo: attention-based sequence-to-sequence models for Keras 3.

Subpackages load on first use (``zoo.attention``, ``zoo.plot``...), so ``import zoo`` and the
``zoo`` command start without importing TensorFlow.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("attention", "data", "decoding", "layers", "metrics", "models", "plot",
               "recipes", "registry", "training", "cli")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"zoo.{name}")
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
