"""Translator -> TensorFlow SavedModel: strings in, strings out, tokenization in the graph.

Built with ``keras.export.ExportArchive`` (the Keras 3 way to write a SavedModel of a model's
own functions), tracking the model's variables and the tensorflow-text SentencePiece resources.
Endpoints (all batched, dynamic batch):

* ``translate(text)`` - greedy decoding: ``translation`` (strings), ``tokens``, ``lengths``,
  ``scores`` and ``attention`` ``(batch, max_length, S)``.
* ``translate_beam(text, length_penalty, coverage_penalty)`` - beam search with the beam size
  fixed at export and the GNMT length and coverage penalties as inputs.
* ``encode(source_ids)`` - the initial decoder state and the memory, flattened to named
  tensors: the state (``"cell__h"``, ``"layers__0__keys"``...: RNN states, or the fixed-size
  key/value cache of ``max_length`` positions for Transformers) changes every step; the
  memory (``"memory__..."``, the projected source) does not.
* ``decode_step(token_ids, state)`` - one step: takes the state and the memory (one dict,
  ``encode``'s names) and returns ``logits``, ``attention`` and the next state under the
  state's names, for callers that run their own loop.
* ``tokenize(text)`` - the source ids the model sees ``(batch, S)``.
* ``logits(source_ids, target_ids)`` - teacher-forced logits, for parity checks.

The SavedModel reloads in any process that imports ``tensorflow`` and ``tensorflow_text``
(the SentencePiece op lives there); zoo itself is not needed.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from zoo.export._state import DecoderLayout


def export_savedmodel(model, path: str, max_length: Optional[int] = None,
                      max_source_length: int = 256, beam_size: int = 4) -> dict:
    """Writes ``model`` (a ``zoo.models.Translator`` with tokenizers) as a SavedModel.

    Args:
        model: The translator (``Translator.load(dir)`` or trained in this process).
        path: Output directory (created; a ``manifest.json`` is written inside).
        max_length: Maximum generated tokens (default: the model's ``max_target_length``).
        max_source_length: Source tokens kept (eos included).
        beam_size: Beam size of ``translate_beam``.

    Returns:
        The manifest dict.

    Example:
        >>> import tempfile, zoo
        >>> from zoo.data import SentencePieceTokenizer
        >>> tok = SentencePieceTokenizer.train(["hola mundo", "hello world"] * 20, 24)
        >>> m = zoo.models.Translator.from_preset("rnn_tiny", tokenizer=tok)
        >>> manifest = export_savedmodel(m, tempfile.mkdtemp(), max_length=4)
        >>> sorted(manifest["endpoints"])
        ['decode_step', 'encode', 'logits', 'tokenize', 'translate', 'translate_beam']
    """
    import keras
    import tensorflow as tf

    from zoo import decoding
    from zoo.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

    if model.source_tokenizer is None or model.target_tokenizer is None:
        raise ValueError("export_savedmodel needs a translator with tokenizers "
                         "(Translator.load(dir), or from_preset(..., tokenizer=...))")
    if int(beam_size) < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    max_length = int(max_length or model.max_target_length)
    if not model.built:
        model.build()
    src_tok = model.source_tokenizer.tf_tokenizer
    tgt_tok = model.target_tokenizer.tf_tokenizer

    def source_ids(text):
        ids = src_tok.tokenize(text)[:, : max_source_length - 1]
        eos = tf.fill([tf.shape(text)[0], 1], EOS_ID)
        return tf.concat([ids, eos], axis=1).to_tensor(PAD_ID)

    def run(text, strategy):
        ids = source_ids(text)
        encoded = model.encode(ids)
        res = strategy(model.decode_step, model.initial_state(encoded, max_length),
                       model.prepare_memory(encoded), tf.shape(ids)[0], tf.shape(ids)[1],
                       max_length, bos_id=BOS_ID, eos_id=EOS_ID, pad_id=PAD_ID,
                       memory_mask=encoded["mask"])
        tokens = res.tokens[:, 0]
        return {"translation": model.target_tokenizer.detokenize(tokens), "tokens": tokens,
                "lengths": res.lengths[:, 0], "scores": res.scores[:, 0],
                "attention": res.attention[:, 0]}

    layout = DecoderLayout(model, max_length)

    def encode(source_ids):
        return layout.encode(source_ids)

    def decode_step(token_ids, state):
        # Signature outputs must be one flat dict (state names cannot clash with these two).
        return layout.step(token_ids, state)

    text_spec = tf.TensorSpec([None], tf.string, name="text")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(src_tok)
    archive.track(tgt_tok)
    archive.add_endpoint("translate", lambda text: run(text, decoding.Greedy()),
                         input_signature=[text_spec])
    archive.add_endpoint(
        "translate_beam",
        lambda text, length_penalty, coverage_penalty: run(text, decoding.BeamSearch(
            beam_size=beam_size, length_penalty=length_penalty,
            coverage_penalty=coverage_penalty)),
        input_signature=[text_spec, tf.TensorSpec([], tf.float32, name="length_penalty"),
                         tf.TensorSpec([], tf.float32, name="coverage_penalty")])
    archive.add_endpoint("tokenize", source_ids, input_signature=[text_spec])
    archive.add_endpoint("encode", encode, input_signature=[
        tf.TensorSpec([None, None], tf.int32, name="source_ids")])
    archive.add_endpoint("decode_step", decode_step, input_signature=[
        tf.TensorSpec([None], tf.int32, name="token_ids"), layout.specs])
    archive.add_endpoint(
        "logits", lambda source_ids, target_ids: model(
            {"source": source_ids, "target": target_ids}, training=False),
        input_signature=[tf.TensorSpec([None, None], tf.int32, name="source_ids"),
                         tf.TensorSpec([None, None], tf.int32, name="target_ids")])
    os.makedirs(path, exist_ok=True)
    archive.write_out(path, verbose=False)
    manifest = {
        "format": "savedmodel", "model": type(model).__name__, "preset": model.preset,
        "zoo_version": __import__("zoo").__version__, "tensorflow": tf.__version__,
        "endpoints": {
            "translate": {"inputs": {"text": "string (batch,)"},
                          "outputs": ["translation", "tokens", "lengths", "scores",
                                      "attention"], "decoding": "greedy"},
            "translate_beam": {"inputs": {"text": "string (batch,)",
                                          "length_penalty": "float32 scalar",
                                          "coverage_penalty": "float32 scalar"},
                               "outputs": ["translation", "tokens", "lengths", "scores",
                                           "attention"], "decoding": f"beam {beam_size}"},
            "encode": {"inputs": {"source_ids": "int32 (batch, S)"},
                       "outputs": {n: str(tuple(spec.shape)) for n, spec in layout.specs.items()}},
            "decode_step": {"inputs": {"token_ids": "int32 (batch,)",
                                       "state": "encode's outputs (state and memory)"},
                            "outputs": ["logits", "attention", "the state names"]},
            "tokenize": {"inputs": {"text": "string (batch,)"},
                         "outputs": "int32 (batch, S)"},
            "logits": {"inputs": {"source_ids": "int32 (batch, S)",
                                  "target_ids": "int32 (batch, T)"},
                       "outputs": "float32 (batch, T, vocab)"}},
        "max_length": max_length, "max_source_length": max_source_length,
        "beam_size": beam_size, "quantization": None, **layout.manifest(),
        "vocab": {"source_size": model.source_tokenizer.vocab_size,
                  "target_size": model.target_tokenizer.vocab_size,
                  "special_ids": {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID}},
        "requires": ["tensorflow", "tensorflow_text"]}
    with open(os.path.join(path, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest
