"""Translator -> LiteRT (TFLite) for edge devices: fixed shapes, builtin ops only.

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
* ``greedy``: ``source_ids`` -> ``tokens``, ``lengths``, ``scores`` (the whole loop in-graph).

Variants: ``float32``, ``float16`` (weights in half precision) and ``int8`` (dynamic-range
quantized weights). The tokenizer file is written beside them.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Optional, Sequence

from zoo.export._state import DecoderLayout

QUANTIZATIONS = ("float32", "float16", "int8")


def export_litert(model, path: str, batch_size: int = 1, max_source_length: int = 32,
                  max_length: Optional[int] = None,
                  quantizations: Sequence[str] = QUANTIZATIONS) -> dict:
    """Writes ``model_<quantization>.tflite`` files, the tokenizer and a manifest.

    Args:
        model: A ``zoo.models.Translator`` with tokenizers.
        path: Output directory.
        batch_size: The fixed batch of every signature.
        max_source_length: Sources are padded (and truncated) to this many ids, eos included.
        max_length: Maximum generated tokens (default: the model's ``max_target_length``).
        quantizations: Any of ``"float32"``, ``"float16"``, ``"int8"``.

    Returns:
        The manifest dict.
    """
    import keras
    import tensorflow as tf

    from zoo import decoding
    from zoo.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

    bad = [q for q in quantizations if q not in QUANTIZATIONS]
    if bad or not quantizations:
        raise ValueError(f"quantizations must be among {QUANTIZATIONS}, got {list(quantizations)}")
    if model.source_tokenizer is None:
        raise ValueError("export_litert needs a translator with tokenizers")
    max_length = int(max_length or model.max_target_length)
    b, s = int(batch_size), int(max_source_length)
    if not model.built:
        model.build()
    layout = DecoderLayout(model, max_length, batch_size=b, source_length=s)
    src_spec = tf.TensorSpec([b, s], tf.int32, name="source_ids")

    def encode(source_ids):
        return layout.encode(source_ids)

    def decode_step(token_ids, state):
        return layout.step(token_ids, state, next_prefix="next__")

    def greedy(source_ids):
        encoded = model.encode(source_ids)
        res = decoding.Greedy()(model.decode_step, model.initial_state(encoded, max_length),
                                model.prepare_memory(encoded), b, s, max_length,
                                bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID)
        return {"tokens": res.tokens[:, 0], "lengths": res.lengths[:, 0],
                "scores": res.scores[:, 0]}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("encode", encode, input_signature=[src_spec])
    archive.add_endpoint("decode_step", decode_step, input_signature=[
        tf.TensorSpec([b], tf.int32, name="token_ids"), layout.specs])
    archive.add_endpoint("greedy", greedy, input_signature=[src_spec])
    os.makedirs(path, exist_ok=True)
    files = {}
    with tempfile.TemporaryDirectory() as tmp:
        archive.write_out(tmp, verbose=False)
        for q in quantizations:
            conv = tf.lite.TFLiteConverter.from_saved_model(
                tmp, signature_keys=["encode", "decode_step", "greedy"])
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            if q == "float16":
                conv.optimizations = [tf.lite.Optimize.DEFAULT]
                conv.target_spec.supported_types = [tf.float16]
            elif q == "int8":
                conv.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic-range weights
            name = f"model_{q}.tflite"
            with open(os.path.join(path, name), "wb") as f:
                f.write(conv.convert())
            files[q] = name
    model.source_tokenizer.save(os.path.join(path, "tokenizer.model"))
    manifest = {
        "format": "litert", "model": type(model).__name__, "preset": model.preset,
        "zoo_version": __import__("zoo").__version__, "tensorflow": tf.__version__,
        "batch_size": b, "max_source_length": s, "max_length": max_length,
        "signatures": ["encode", "decode_step", "greedy"], "ops": "TFLITE_BUILTINS only",
        "files": {**files, "tokenizer": "tokenizer.model"},
        "quantizations": list(quantizations),
        **layout.manifest(),
        "vocab": {"size": model.source_tokenizer.vocab_size,
                  "special_ids": {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID}}}
    with open(os.path.join(path, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest
