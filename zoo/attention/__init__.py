"""The attention family: one contract (``zoo.attention.base.Attention``), many scores.

``get(name | config | instance)`` resolves any of them; ``names()`` lists them.

Example:
    >>> import numpy as np, zoo
    >>> layer = zoo.attention.get("additive", units=16)
    >>> q = np.zeros((2, 3, 8), "float32"); v = np.zeros((2, 5, 8), "float32")
    >>> layer(query=q, value=v).shape
    TensorShape([2, 3, 8])
"""

from zoo.attention.base import (REGISTRY, Attention, independent_initializer, masked_softmax,
                                register)
from zoo.attention.dot import DotAttention
from zoo.attention.scaled_dot import ScaledDotAttention
from zoo.attention.cosine import CosineAttention
from zoo.attention.general import GeneralAttention
from zoo.attention.additive import AdditiveAttention
from zoo.attention.key_value import KeyValueAttention
from zoo.attention.multi_head import MultiHeadAttention
from zoo.attention.packing import PackedRows
from zoo.attention.location import LocationAttention
from zoo.attention.coverage import CoverageAttention, coverage_loss
from zoo.attention.monotonic import MonotonicAttention
from zoo.attention.local import LocalAttention
from zoo.attention.uniform import UniformAttention


def get(identifier, **kwargs):
    """An attention layer from a name, a config dict or an instance.

    Args:
        identifier: ``"additive"`` (or an alias such as ``"bahdanau"``), a dict
            ``{"class_name": ..., "config": {...}}``, or an ``Attention`` instance.
        **kwargs: Constructor arguments (with a name only).

    Returns:
        An ``Attention`` instance.

    Raises:
        ValueError: For an unknown name; the message lists the known ones.
    """
    return REGISTRY.get(identifier, **kwargs)


def names():
    """The registered attention names."""
    return REGISTRY.names()


__all__ = [
    "Attention", "AdditiveAttention", "CosineAttention", "CoverageAttention", "DotAttention",
    "GeneralAttention", "KeyValueAttention", "LocalAttention", "LocationAttention",
    "MonotonicAttention", "MultiHeadAttention", "PackedRows", "ScaledDotAttention",
    "UniformAttention",
    "REGISTRY", "get",
    "independent_initializer", "masked_softmax", "names", "register", "coverage_loss",
]
