"""What every exporter shares: the checks, the flat state/memory layout, the decoding graphs
and the manifest. The exporters (``savedmodel``, ``onnx``, ``litert``) only choose signatures
and write their format.

The decoding graph itself is the model's: ``model.decode(source_ids, strategy, max_length)``
(encode -> memory and state -> strategy), the same call ``model.generate`` makes.

The manifest schema (``manifest.json`` in every export; declared in
:mod:`zoo.serving.manifest`, docs/export.md describes each field):
``format_version``, ``format``, ``task``, ``model``, ``preset``, ``zoo_version``,
``tensorflow``, ``tokenizers`` (files), ``vocab``, ``shapes`` (``batch_size``,
``source_length``: null where dynamic; ``max_source_length``, ``max_length``), ``state`` and
``memory`` (name, shape, dtype), ``decoding`` (strategies and their defaults),
``quantization``, ``files``, ``signatures``, ``parity``.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Optional

from zoo.inputs import EXPORT_OPTIONS

#: Prefix of the memory tensors' names: keeps them apart from the state's in one flat dict.
MEMORY_PREFIX = "memory__"
#: Prefix of the next state's names in ``decode_step``'s outputs.
NEXT_PREFIX = "next__"
#: The outputs of every ``generate_*`` signature.
GENERATE_OUTPUTS = ("tokens", "lengths", "scores", "attention")
#: The decoding settings a loop graph may take per call (``ExportCore.per_request``).
PER_REQUEST = ("max_length", "min_length", "no_repeat_ngram_size", "beam_size")


class _Nest:
    """Names, specs and flatten/unflatten of one nest of tensors."""

    def __init__(self, symbolic, prefix):
        import keras
        import tensorflow as tf

        self.structure = symbolic
        paths = keras.tree.flatten_with_path(symbolic)
        self.names = [prefix + "__".join(str(k) for k in path) for path, _ in paths]
        self.specs = {n: tf.TensorSpec(leaf.shape, leaf.dtype, name=n)
                      for n, (_, leaf) in zip(self.names, paths)}

    def flat(self, nest, prefix: str = "") -> dict:
        import keras

        return {prefix + n: v for n, v in zip(self.names, keras.tree.flatten(nest))}

    def nest(self, flat: dict):
        import keras

        return keras.tree.pack_sequence_as(self.structure, [flat[n] for n in self.names])

    def manifest(self) -> list:
        return [{"name": n, "shape": self.specs[n].shape.as_list(),
                 "dtype": self.specs[n].dtype.name} for n in self.names]


class ExportCore:
    """One model prepared for export.

    Args:
        model: A ``zoo.models.Seq2Seq`` with tokenizers (``Model.load(dir)`` or trained here).
        max_length: Maximum generated tokens (default: the model's ``max_target_length``).
        max_source_length: Source ids kept per text, eos included (default: the model's).
        beam_size: Beam size of the beam signature.
        length_penalty: Default GNMT length penalty (the beam signature takes it as input).
        coverage_penalty: Default GNMT coverage penalty, likewise.
        batch_size: A fixed batch (LiteRT), or None for a dynamic one.
        source_length: A fixed source length (LiteRT), or None for a dynamic one.
        min_length: Tokens before eos may be generated, every strategy (the default of the
            graphs that take it per call).
        no_repeat_ngram_size: n-gram repetition blocking of every exported strategy; 0: off
            (likewise the default where a call may give it).
    """

    def __init__(self, model, max_length: Optional[int] = None,
                 max_source_length: Optional[int] = None, beam_size: int = 4,
                 length_penalty: float = 0.6, coverage_penalty: float = 0.0,
                 batch_size: Optional[int] = None, source_length: Optional[int] = None,
                 min_length: int = 0, no_repeat_ngram_size: int = 0):
        import tensorflow as tf

        from zoo.inputs import check_decoding, check_positive_int
        from zoo.models import Seq2Seq

        if not isinstance(model, Seq2Seq):
            raise TypeError(f"export needs a zoo.models.Seq2Seq model, got "
                            f"{type(model).__name__}")
        if model.source_tokenizer is None or model.target_tokenizer is None:
            raise ValueError(f"export needs a {type(model).__name__} with tokenizers "
                             f"({type(model).__name__}.load(dir), or from_preset(..., "
                             f"tokenizer=...))")
        opts = check_decoding("beam", {"beam_size": beam_size, "length_penalty": length_penalty,
                                       "coverage_penalty": coverage_penalty,
                                       "min_length": min_length,
                                       "no_repeat_ngram_size": no_repeat_ngram_size})
        self.model = model
        from zoo.inputs import NUMBER, OPTION

        self.max_length = OPTION["max_length"].check(max_length or model.max_target_length)
        self.max_source_length = NUMBER["max_source_length"].check(
            source_length or max_source_length or model.max_source_length)
        if self.max_source_length < 2:
            raise ValueError("max_source_length must leave room for one id and eos (>= 2)")
        self.beam_size = opts["beam_size"]
        self.min_length, self.no_repeat_ngram_size = opts["min_length"], \
            opts["no_repeat_ngram_size"]
        if self.min_length > self.max_length:
            raise ValueError(f"min_length ({self.min_length}) must be <= max_length "
                             f"({self.max_length})")
        self.length_penalty, self.coverage_penalty = opts["length_penalty"], \
            opts["coverage_penalty"]
        self.batch_size = None if batch_size is None else check_positive_int("batch_size",
                                                                             batch_size)
        self.source_length = None if source_length is None else self.max_source_length
        if not model.built:
            model.build()

        # The shapes of the state and the memory, read off a trace (None where dynamic).
        def shapes(ids):
            encoded = model.encode(ids)
            return model.initial_state(encoded, self.max_length), model.prepare_memory(encoded)

        traced = tf.function(shapes, autograph=False).get_concrete_function(
            tf.TensorSpec([self.batch_size, self.source_length], tf.int32))
        state, memory = traced.structured_outputs
        self.state, self.memory = _Nest(state, ""), _Nest(memory, MEMORY_PREFIX)

    # ------------------------------------------------------------------ graphs
    @property
    def specs(self) -> dict:
        """Input specs of ``decode_step``: the state's then the memory's."""
        return {**self.state.specs, **self.memory.specs}

    def source_spec(self):
        import tensorflow as tf

        return tf.TensorSpec([self.batch_size, self.source_length], tf.int32, name="source_ids")

    def encode(self, source_ids) -> dict:
        """Source ids -> the flat initial state and memory, one dict."""
        model = self.model
        encoded = model.encode(source_ids)
        return {**self.state.flat(model.initial_state(encoded, self.max_length)),
                **self.memory.flat(model.prepare_memory(encoded))}

    def step(self, token_ids, flat: dict) -> dict:
        """One ``decode_step`` on flat inputs -> ``logits``, ``attention`` and the next state
        (named ``next__<state name>``)."""
        logits, state, weights = self.model.decode_step(token_ids, self.state.nest(flat),
                                                        self.memory.nest(flat))
        return {"logits": logits, "attention": weights,
                **self.state.flat(state, prefix=NEXT_PREFIX)}

    def generate(self, source_ids, strategy, max_length=None, min_length=None,
                 no_repeat_ngram_size=None) -> dict:
        """The model's decoding graph -> the best hypothesis' ``tokens`` ``(batch, L)``,
        ``lengths``, ``scores`` and ``attention`` ``(batch, L, S)``. ``max_length``,
        ``min_length`` and ``no_repeat_ngram_size``, scalar int32 graph inputs when given, are
        taken per call (the n-gram size only where :meth:`per_request` has it): the buffers
        keep the export's ``max_length``."""
        if self.batch_size is not None:
            # A fixed-batch graph (LiteRT) keeps every loop tensor's shape.
            strategy = strategy.with_static_shapes()
        if max_length is not None:
            strategy = strategy.with_length_limit(max_length)
        if no_repeat_ngram_size is not None and "no_repeat_ngram_size" in self.per_request():
            strategy = strategy.with_ngram_size(no_repeat_ngram_size)
        res = self.model.decode(source_ids, strategy, self.max_length,
                                self.min_length if min_length is None else min_length)
        return dict(zip(GENERATE_OUTPUTS, (res.tokens[:, 0], res.lengths[:, 0],
                                           res.scores[:, 0], res.attention[:, 0])))

    def per_request(self) -> tuple:
        """The settings the loop graphs take per call (as scalar int32 inputs): n-gram
        blocking only in an export made with it (where it is off, its mask would cost a tenth
        of a step: docs/RESULTS.md)."""
        return tuple(n for n in PER_REQUEST if n != "no_repeat_ngram_size" or
                     self.no_repeat_ngram_size)

    def greedy(self, source_ids, max_length=None, min_length=None,
               no_repeat_ngram_size=None) -> dict:
        from zoo import decoding

        return self.generate(source_ids, decoding.Greedy(
            no_repeat_ngram_size=self.no_repeat_ngram_size), max_length, min_length,
            no_repeat_ngram_size)

    def beam(self, source_ids, length_penalty, coverage_penalty, max_length=None,
             min_length=None, beam_size=None, no_repeat_ngram_size=None) -> dict:
        """Beam search, of the export's size unless ``beam_size`` is given; the penalties
        (and ``max_length``, ``min_length``, ``beam_size``, ``no_repeat_ngram_size``) may be
        scalar tensors."""
        from zoo import decoding

        return self.generate(source_ids, decoding.BeamSearch(
            beam_size=self.beam_size if beam_size is None else beam_size,
            length_penalty=length_penalty,
            coverage_penalty=coverage_penalty, no_repeat_ngram_size=self.no_repeat_ngram_size),
            max_length, min_length, no_repeat_ngram_size)

    # ------------------------------------------------------------------ files
    def manifest(self, fmt: str, files: dict, signatures: dict, strategies, quantization,
                 **extra) -> dict:
        import tensorflow as tf

        import zoo
        from zoo.inputs import SPECIAL_IDS
        from zoo.serving import manifest as manifest_io

        model = self.model
        return {
            "format_version": manifest_io.VERSION, "format": fmt, "task": model.task,
            "model": type(model).__name__, "preset": model.preset,
            "zoo_version": zoo.__version__, "tensorflow": tf.__version__,
            "tokenizers": dict(self._tokenizer_files),
            "vocab": {"source_size": model.source_tokenizer.vocab_size,
                      "target_size": model.target_tokenizer.vocab_size,
                      "special_ids": dict(SPECIAL_IDS),
                      # Runners whose search is not zoo's force it themselves (CTranslate2).
                      "forced_first_id": model.forced_first_id},
            "shapes": {"batch_size": self.batch_size, "source_length": self.source_length,
                       "max_source_length": self.max_source_length,
                       "max_length": self.max_length},
            "state": self.state.manifest(), "memory": self.memory.manifest(),
            "decoding": {"strategies": list(strategies),
                         **{name: getattr(self, name) for name in EXPORT_OPTIONS}},
            "quantization": list(quantization), "files": files, "signatures": signatures,
            "parity": None, **extra}

    @property
    def host_packages(self) -> list:
        """What tokenizes host-side (``sentencepiece``, ``tokenizers``): an export's
        ``requires`` besides its runtime."""
        toks = (self.model.source_tokenizer, self.model.target_tokenizer)
        return sorted({t.host_package for t in toks})

    @property
    def _tokenizer_files(self):
        from zoo.data.tokenizer_files import tokenizer_files

        return tokenizer_files(self.model.source_tokenizer, self.model.target_tokenizer)

    def write(self, path: str, fmt: str, write: Callable[[str], dict],
              overwrite: bool = False) -> dict:
        """Stages an export directory and renames it into place.

        Args:
            path: The destination.
            fmt: The format name.
            write: ``write(tmp_dir)`` writes the format's files and returns the manifest's
                ``files``, ``signatures``, ``strategies``, ``quantization`` (and any extra
                keys) as a dict.
            overwrite: Replace an export (or model) that zoo wrote at ``path``.

        Returns:
            The manifest.
        """
        from zoo.data.tokenizer_files import write_tokenizers
        from zoo.files import staged_directory

        with staged_directory(path, overwrite=overwrite, what="export directory",
                              kind="export") as tmp:
            parts = write(tmp)
            write_tokenizers(self.model.source_tokenizer, self.model.target_tokenizer, tmp)
            manifest = self.manifest(fmt, **parts)
            write_manifest(tmp, manifest)
        return manifest


def write_manifest(path: str, manifest: dict) -> None:
    """Writes ``manifest.json``, checked against its declaration (:mod:`zoo.serving.manifest`)."""
    from zoo.serving import manifest as manifest_io

    manifest_io.write(path, manifest)


def split_encoded(encoded: dict, manifest: dict):
    """An export's ``encode`` outputs -> ``(state, memory)`` dicts, by the manifest's names."""
    return ({s["name"]: encoded[s["name"]] for s in manifest["state"]},
            {s["name"]: encoded[s["name"]] for s in manifest["memory"]})
