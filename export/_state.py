"""The decoder state as flat, named tensors: exported signatures cannot take arbitrary nests."""

from __future__ import annotations

from typing import Optional

# Source length of the probe that reads the state's shapes when the source length is dynamic:
# an odd size, so a state dimension equal to it is the source length, not a model size.
_PROBE = 13


class StateLayout:
    """Names, specs and flatten/unflatten of a translator's decoder state.

    Names join the nest's path with ``"__"`` (``"cell__h"``, ``"layers__0__keys"``): valid
    function-argument names, and they cannot clash with ``"logits"`` or ``"attention"``.

    Args:
        model: A built ``zoo.models.Translator``.
        max_length: The decoding length (the Transformer cache size).
        batch_size: Fixed batch, or None for a dynamic one.
        source_length: Fixed source length, or None for a dynamic one.
    """

    def __init__(self, model, max_length: int, batch_size: Optional[int] = None,
                 source_length: Optional[int] = None):
        import keras
        import tensorflow as tf

        probe_len = source_length or _PROBE
        self.probe = model.initial_state(
            model.encode(tf.ones([batch_size or 1, probe_len], tf.int32)), max_length)
        paths = keras.tree.flatten_with_path(self.probe)
        self.names = ["__".join(str(k) for k in path) for path, _ in paths]

        def shape(leaf):
            rest = [None if source_length is None and d == _PROBE else d
                    for d in leaf.shape[1:]]
            return [batch_size] + rest

        self.specs = {n: tf.TensorSpec(shape(leaf), leaf.dtype, name=n)
                      for n, (_, leaf) in zip(self.names, paths)}

    def flat(self, state, prefix: str = "") -> dict:
        """Nest -> ``{prefix + name: tensor}``."""
        import keras

        return {prefix + n: v for n, v in zip(self.names, keras.tree.flatten(state))}

    def nest(self, flat_state: dict):
        """``{name: tensor}`` -> the model's nest."""
        import keras

        return keras.tree.pack_sequence_as(self.probe, [flat_state[n] for n in self.names])

    def manifest(self) -> list:
        return [{"name": n, "shape": list(self.specs[n].shape), "dtype": self.specs[n].dtype.name}
                for n in self.names]
