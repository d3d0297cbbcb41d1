"""Translator -> ONNX (tf2onnx), run by onnxruntime: encoder, one-step decoder, whole loops.

Three graphs plus the tokenizer, in one directory:

* ``encoder.onnx``: ``source_ids (batch, S) int32`` -> the initial decoder state (named
  tensors, as in the manifest).
* ``decoder_step.onnx``: ``token_ids (batch,)`` + state -> ``logits``, ``attention`` + next state.
* ``greedy.onnx`` and ``beam.onnx``: ``source_ids`` -> ``tokens (batch, max_length)``,
  ``lengths``, ``scores``, ``attention`` - the whole decoding loop inside the graph.
* ``tokenizer.model``: the SentencePiece model; ``zoo.serving`` tokenizes host-side with the
  ``sentencepiece`` package and gets exactly the ids tensorflow-text gives (same file).

Batch and source length are dynamic. Tokenization stays out of the graphs: tf-text ops do not
convert to ONNX. The loops write their outputs with mask blends into preallocated tensors (the
decoding engine is written that way), which tf2onnx converts to ONNX ``Loop`` correctly.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from zoo.export._state import StateLayout

OPSET = 17


def _convert(fn, signature, path, opset):
    import tf2onnx

    model_proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
    with open(path, "wb") as f:
        f.write(model_proto.SerializeToString())
    return [o.name for o in model_proto.graph.output]


def export_onnx(model, path: str, max_length: Optional[int] = None, beam_size: int = 4,
                length_penalty: float = 0.6, opset: int = OPSET) -> dict:
    """Writes the ONNX graphs of a translator and its tokenizer.

    Args:
        model: A ``zoo.models.Translator`` with tokenizers.
        path: Output directory (``manifest.json`` is written inside).
        max_length: Maximum generated tokens (default: the model's ``max_target_length``).
        beam_size: Beam size of ``beam.onnx``.
        length_penalty: GNMT length penalty of ``beam.onnx``.
        opset: ONNX opset.

    Returns:
        The manifest dict.
    """
    import tensorflow as tf

    from zoo import decoding
    from zoo.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

    if model.source_tokenizer is None:
        raise ValueError("export_onnx needs a translator with tokenizers")
    if model.target_tokenizer.model != model.source_tokenizer.model:
        raise ValueError("export_onnx supports a joint (shared) source/target tokenizer")
    max_length = int(max_length or model.max_target_length)
    if not model.built:
        model.build()
    layout = StateLayout(model, max_length)
    names = layout.names

    src_spec = tf.TensorSpec([None, None], tf.int32, name="source_ids")

    def encoder(source_ids):
        state = model.initial_state(model.encode(source_ids), max_length)
        return {n: tf.identity(v, name=n) for n, v in layout.flat(state).items()}

    def decoder_step(token_ids, *state):
        logits, new_state, weights = model.decode_step(token_ids,
                                                       layout.nest(dict(zip(names, state))))
        out = {"logits": tf.identity(logits, name="logits"),
               "attention": tf.identity(weights, name="attention")}
        out.update({n: tf.identity(v, name=n)
                    for n, v in layout.flat(new_state, prefix="next__").items()})
        return out

    def loop(strategy):
        def run(source_ids):
            memory = model.encode(source_ids)
            state = model.initial_state(memory, max_length)
            res = strategy(model.decode_step, state, tf.shape(source_ids)[0],
                           tf.shape(source_ids)[1], max_length, bos_id=BOS_ID, eos_id=EOS_ID,
                           pad_id=PAD_ID, memory_mask=memory["mask"])
            return {"tokens": tf.identity(res.tokens[:, 0], name="tokens"),
                    "lengths": tf.identity(res.lengths[:, 0], name="lengths"),
                    "scores": tf.identity(res.scores[:, 0], name="scores"),
                    "attention": tf.identity(res.attention[:, 0], name="attention")}
        return run

    os.makedirs(path, exist_ok=True)
    graphs = {}
    graphs["encoder"] = _convert(tf.function(encoder), [src_spec],
                                 os.path.join(path, "encoder.onnx"), opset)
    graphs["decoder_step"] = _convert(
        tf.function(decoder_step),
        [tf.TensorSpec([None], tf.int32, name="token_ids")]
        + [layout.specs[n] for n in names],
        os.path.join(path, "decoder_step.onnx"), opset)
    graphs["greedy"] = _convert(tf.function(loop(decoding.Greedy())), [src_spec],
                                os.path.join(path, "greedy.onnx"), opset)
    graphs["beam"] = _convert(
        tf.function(loop(decoding.BeamSearch(beam_size=beam_size,
                                             length_penalty=length_penalty))),
        [src_spec], os.path.join(path, "beam.onnx"), opset)
    model.source_tokenizer.save(os.path.join(path, "tokenizer.model"))
    manifest = {
        "format": "onnx", "opset": opset, "model": type(model).__name__,
        "preset": model.preset, "zoo_version": __import__("zoo").__version__,
        "tensorflow": tf.__version__, "max_length": max_length, "beam_size": beam_size,
        "length_penalty": length_penalty, "quantization": None,
        "files": {"encoder": "encoder.onnx", "decoder_step": "decoder_step.onnx",
                  "greedy": "greedy.onnx", "beam": "beam.onnx",
                  "tokenizer": "tokenizer.model"},
        "state": layout.manifest(),
        "outputs": graphs,
        "vocab": {"size": model.source_tokenizer.vocab_size,
                  "special_ids": {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID}}}
    with open(os.path.join(path, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest
