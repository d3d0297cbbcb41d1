"""Model -> LiteRT (TFLite) for edge devices: fixed shapes, builtin ops only.

Built the way that works with Keras 3: the model's functions go into a SavedModel through
``keras.export.ExportArchive``, then ``TFLiteConverter.from_saved_model`` converts it
(converting concrete functions of a Keras 3 model directly keeps variable ops and gives
garbage). Only ``TFLITE_BUILTINS`` are allowed - an edge runtime has no Flex delegate - so the
signatures have a fixed batch and a fixed maximum source length (dynamic shapes would need
TensorList ops). Three signatures in one ``.tflite`` file:

* ``encode``: ``source_ids (batch, max_source_length)`` -> the decoder state and memory
  (named tensors).
* ``decode_step``: ``token_ids (batch,)`` + state + memory -> ``logits``, ``attention``, next
  state (``next__<name>``).
* ``generate``: ``source_ids`` -> ``tokens``, ``lengths``, ``scores``, ``attention`` (the
  whole greedy loop in-graph).

Variants: ``float32``, ``float16`` (weights in half precision) and ``int8`` (dynamic-range
quantized weights). The tokenizer files are written beside them; ``zoo.serving.load(dir)``
runs the export (it pads to the fixed shapes, splits larger batches and reports truncation).
"""

from __future__ import annotations

import os
import tempfile
from typing import Optional, Sequence

from zoo.export.core import GENERATE_OUTPUTS, ExportCore

QUANTIZATIONS = ("float32", "float16", "int8")


def export_litert(model, path: str, batch_size: int = 1, max_source_length: int = 32,
                  max_length: Optional[int] = None,
                  quantizations: Sequence[str] = QUANTIZATIONS, overwrite: bool = False,
                  min_length: int = 0, no_repeat_ngram_size: int = 0) -> dict:
    """Writes ``model_<quantization>.tflite`` files, the tokenizers and a manifest.

    Args:
        model: A ``zoo.models.Seq2Seq`` with tokenizers.
        path: Output directory (written beside and renamed into place).
        batch_size: The fixed batch of every signature (the runner pads and splits).
        max_source_length: Sources are padded (and truncated, with a warning from the
            runner) to this many ids, eos included.
        max_length: Maximum generated tokens (default: the model's ``max_target_length``).
        quantizations: Any of ``"float32"``, ``"float16"``, ``"int8"``.
        min_length: Minimum generated tokens before eos (fixed at export).
        no_repeat_ngram_size: n-gram repetition blocking (fixed at export; 0: off).
        overwrite: Replace an export zoo wrote at ``path``.

    Returns:
        The manifest dict.
    """
    import keras
    import tensorflow as tf

    quantizations = list(quantizations)
    bad = [q for q in quantizations if q not in QUANTIZATIONS]
    if bad or not quantizations:
        raise ValueError(f"quantizations must be among {QUANTIZATIONS}, got {quantizations}")
    core = ExportCore(model, max_length=max_length, batch_size=batch_size,
                      source_length=max_source_length, min_length=min_length,
                      no_repeat_ngram_size=no_repeat_ngram_size)
    b = core.batch_size
    src_spec = core.source_spec()

    def write(tmp):
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint("encode", core.encode, input_signature=[src_spec])
        archive.add_endpoint("decode_step", core.step, input_signature=[
            tf.TensorSpec([b], tf.int32, name="token_ids"), core.specs])
        archive.add_endpoint("generate", core.greedy, input_signature=[src_spec])
        files = {}
        with tempfile.TemporaryDirectory() as saved:
            archive.write_out(saved, verbose=False)
            for q in quantizations:
                conv = tf.lite.TFLiteConverter.from_saved_model(
                    saved, signature_keys=["encode", "decode_step", "generate"])
                conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
                if q == "float16":
                    conv.optimizations = [tf.lite.Optimize.DEFAULT]
                    conv.target_spec.supported_types = [tf.float16]
                elif q == "int8":
                    conv.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range weights
                name = f"model_{q}.tflite"
                with open(os.path.join(tmp, name), "wb") as f:
                    f.write(conv.convert())
                files[q] = name
        return {"files": files, "quantization": quantizations, "strategies": ["greedy"],
                "ops": "TFLITE_BUILTINS only", "requires": ["ai-edge-litert", *core.host_packages],
                "signatures": {
                    "generate": {"inputs": ["source_ids"], "outputs": list(GENERATE_OUTPUTS),
                                 "strategy": "greedy"},
                    "encode": {"inputs": ["source_ids"], "outputs": "state and memory"},
                    "decode_step": {"inputs": ["token_ids", "state and memory"],
                                    "outputs": ["logits", "attention", "next__<state>"]}}}

    return core.write(path, "litert", write, overwrite=overwrite)
