"""The decoder's state and memory as flat, named tensors: signatures cannot take arbitrary nests."""

from __future__ import annotations

from typing import Optional

# Source length of the probe that reads the shapes when the source length is dynamic: an odd
# size, so a dimension equal to it is the source length, not a model size.
_PROBE = 13

# Prefix of the memory tensors' names: keeps them apart from the state's in one flat dict.
MEMORY_PREFIX = "memory__"


class _Nest:
    """Names, specs and flatten/unflatten of one nest of tensors."""

    def __init__(self, probe, prefix, batch_size, source_length):
        import keras
        import tensorflow as tf

        self.probe = probe
        paths = keras.tree.flatten_with_path(probe)
        self.names = [prefix + "__".join(str(k) for k in path) for path, _ in paths]

        def shape(leaf):
            rest = [None if source_length is None and d == _PROBE else d
                    for d in leaf.shape[1:]]
            return [batch_size] + rest

        self.specs = {n: tf.TensorSpec(shape(leaf), leaf.dtype, name=n)
                      for n, (_, leaf) in zip(self.names, paths)}

    def flat(self, nest, prefix: str = "") -> dict:
        """Nest -> ``{prefix + name: tensor}``."""
        import keras

        return {prefix + n: v for n, v in zip(self.names, keras.tree.flatten(nest))}

    def nest(self, flat: dict):
        """``{name: tensor}`` (extra keys ignored) -> the model's nest."""
        import keras

        return keras.tree.pack_sequence_as(self.probe, [flat[n] for n in self.names])

    def manifest(self) -> list:
        return [{"name": n, "shape": list(self.specs[n].shape), "dtype": self.specs[n].dtype.name}
                for n in self.names]


class DecoderLayout:
    """The flat layout of a translator's decoder ``state`` and ``memory``.

    Names join the nest's path with ``"__"`` (``"cell__h"``, ``"layers__0__keys"``); memory
    names start with ``"memory__"``. They are valid function-argument names and cannot clash
    with each other, with ``"logits"``/``"attention"`` or with the ``"next__"`` outputs.

    Args:
        model: A built ``zoo.models.Translator``.
        max_length: The decoding length (the Transformer cache size).
        batch_size: Fixed batch, or None for a dynamic one.
        source_length: Fixed source length, or None for a dynamic one.
    """

    def __init__(self, model, max_length: int, batch_size: Optional[int] = None,
                 source_length: Optional[int] = None):
        import tensorflow as tf

        self.model, self.max_length = model, max_length
        encoded = model.encode(tf.ones([batch_size or 1, source_length or _PROBE], tf.int32))
        self.state = _Nest(model.initial_state(encoded, max_length), "", batch_size,
                           source_length)
        self.memory = _Nest(model.prepare_memory(encoded), MEMORY_PREFIX, batch_size,
                            source_length)

    def encode(self, source_ids) -> dict:
        """Source ids -> the flat initial state and memory, one dict."""
        encoded = self.model.encode(source_ids)
        return {**self.state.flat(self.model.initial_state(encoded, self.max_length)),
                **self.memory.flat(self.model.prepare_memory(encoded))}

    def step(self, token_ids, flat: dict, next_prefix: str = "") -> dict:
        """One ``decode_step`` on flat inputs -> ``logits``, ``attention`` and the next state
        (names prefixed ``next_prefix``)."""
        logits, state, weights = self.model.decode_step(token_ids, self.state.nest(flat),
                                                        self.memory.nest(flat))
        return {"logits": logits, "attention": weights,
                **self.state.flat(state, prefix=next_prefix)}

    @property
    def specs(self) -> dict:
        """Input specs of ``step``: the state's then the memory's."""
        return {**self.state.specs, **self.memory.specs}

    def manifest(self) -> dict:
        return {"state": self.state.manifest(), "memory": self.memory.manifest()}


def split_encoded(encoded: dict, manifest: dict):
    """An export's ``encode`` outputs -> ``(state, memory)`` dicts, by the manifest's names."""
    return ({s["name"]: encoded[s["name"]] for s in manifest["state"]},
            {s["name"]: encoded[s["name"]] for s in manifest["memory"]})
