"""Model -> TensorFlow SavedModel: strings in, strings out, tokenization in the graph.

Built with ``keras.export.ExportArchive`` (the Keras 3 way to write a SavedModel of a model's
own functions), tracking the model's variables and the tensorflow-text SentencePiece resources.
Signatures (all batched, dynamic batch; names shared with the other formats, see
docs/export.md):

* ``generate(text)`` - greedy decoding: ``text`` (strings), ``tokens``, ``lengths``,
  ``scores``, ``attention`` ``(batch, max_length, S)`` and ``source_ids_dropped`` (ids cut
  from each overlong input).
* ``generate_beam(text, length_penalty, coverage_penalty)`` - beam search with the beam size
  fixed at export and the GNMT length and coverage penalties as inputs.
* ``generate_settings(text, max_length, min_length, no_repeat_ngram_size)`` and
  ``generate_beam_settings(text, beam_size, length_penalty, coverage_penalty, max_length,
  min_length, no_repeat_ngram_size)`` - the same loops with every setting per call (int32 /
  float32 scalars; ``max_length`` at most the export's, which sizes the outputs;
  ``beam_size`` 1 to 64; ``no_repeat_ngram_size`` 0 to 16). Separate signatures, so a client
  of ``generate``/``generate_beam`` (TensorFlow Serving's REST API needs every input of a
  signature) is not asked for more.
* ``encode(source_ids)`` - the initial decoder state and the memory as named tensors.
* ``decode_step(token_ids, state)`` - one step: takes the state and the memory (one dict,
  ``encode``'s names) and returns ``logits``, ``attention`` and ``next__<state name>``.
* ``tokenize(text)`` - the source ids the model sees ``(batch, S)``.

The input contract (``zoo.inputs``) holds in the graph: an empty batch gives empty outputs; an
empty or whitespace-only text, or a negative or non-finite penalty, fails with a message that
names it. The SavedModel reloads in any process that imports ``tensorflow`` and
``tensorflow_text`` (the SentencePiece op lives there); zoo itself is not needed.
"""

from __future__ import annotations

from typing import Optional

from zoo.export.core import GENERATE_OUTPUTS, ExportCore


def export_savedmodel(model, path: str, max_length: Optional[int] = None,
                      max_source_length: Optional[int] = None, beam_size: int = 4,
                      length_penalty: float = 0.6, coverage_penalty: float = 0.0,
                      overwrite: bool = False,
                      min_length: int = 0, no_repeat_ngram_size: int = 0) -> dict:
    """Writes ``model`` (a ``zoo.models.Seq2Seq`` with tokenizers) as a SavedModel.

    Args:
        model: The model (``Translator.load(dir)`` or trained in this process).
        path: Output directory (written beside and renamed into place).
        max_length: Maximum generated tokens (default: the model's ``max_target_length``).
        max_source_length: Source ids kept, eos included (default: the model's).
        beam_size: Beam size of ``generate_beam``.
        length_penalty: Default length penalty (recorded in the manifest).
        coverage_penalty: Default coverage penalty (recorded in the manifest).
        min_length: Minimum generated tokens before eos (fixed at export).
        no_repeat_ngram_size: n-gram repetition blocking (fixed at export; 0: off).
        overwrite: Replace an export zoo wrote at ``path``.

    Returns:
        The manifest dict.

    Example:
        >>> import os, tempfile, zoo
        >>> from zoo.data import SentencePieceTokenizer
        >>> tok = SentencePieceTokenizer.train(["hola mundo", "hello world"] * 20, 24)
        >>> m = zoo.models.Translator.from_preset("rnn_tiny", tokenizer=tok)
        >>> manifest = export_savedmodel(m, os.path.join(tempfile.mkdtemp(), "sm"),
        ...                              max_length=4)
        >>> sorted(manifest["signatures"])  # doctest: +NORMALIZE_WHITESPACE
        ['decode_step', 'encode', 'generate', 'generate_beam', 'generate_beam_settings',
         'generate_settings', 'tokenize']
    """
    core = ExportCore(model, max_length=max_length, max_source_length=max_source_length,
                      beam_size=beam_size, length_penalty=length_penalty,
                      coverage_penalty=coverage_penalty, min_length=min_length,
                      no_repeat_ngram_size=no_repeat_ngram_size)
    return core.write(path, "savedmodel", _Endpoints(model, core).write, overwrite=overwrite)


_OUTPUTS = ["text", *GENERATE_OUTPUTS, "source_ids_dropped"]
#: The int32 settings of ``generate_settings``/``generate_beam_settings`` (the manifest's
#: ``per_request`` lists those a call may change).
SETTINGS = ("max_length", "min_length", "no_repeat_ngram_size", "beam_size")
#: The manifest's description of the signatures.
SIGNATURES = {
    "generate": {"inputs": {"text": "string (batch,)"}, "outputs": _OUTPUTS,
                 "strategy": "greedy"},
    "generate_beam": {"inputs": {"text": "string (batch,)", "length_penalty": "float32 ()",
                                 "coverage_penalty": "float32 ()"},
                      "outputs": _OUTPUTS, "strategy": "beam"},
    "generate_settings": {"inputs": {"text": "string (batch,)", "max_length": "int32 ()",
                                     "min_length": "int32 ()",
                                     "no_repeat_ngram_size": "int32 ()"},
                          "outputs": _OUTPUTS, "strategy": "greedy"},
    "generate_beam_settings": {"inputs": {"text": "string (batch,)", "beam_size": "int32 ()",
                                          "length_penalty": "float32 ()",
                                          "coverage_penalty": "float32 ()",
                                          "max_length": "int32 ()", "min_length": "int32 ()",
                                          "no_repeat_ngram_size": "int32 ()"},
                               "outputs": _OUTPUTS, "strategy": "beam"},
    "tokenize": {"inputs": {"text": "string (batch,)"}, "outputs": "int32 (batch, S)"},
    "encode": {"inputs": {"source_ids": "int32 (batch, S)"}, "outputs": "state and memory"},
    "decode_step": {"inputs": {"token_ids": "int32 (batch,)", "state": "state and memory"},
                    "outputs": ["logits", "attention", "next__<state>"]}}


def _check_text(text):
    import tensorflow as tf

    blank = tf.equal(tf.strings.length(tf.strings.strip(text)), 0)
    return tf.debugging.Assert(tf.logical_not(tf.reduce_any(blank)), [
        "text is empty or whitespace only at index", tf.where(blank)[:, 0]])


def _check_penalty(value, name):
    import tensorflow as tf

    ok = tf.logical_and(tf.math.is_finite(value), value >= 0.0)
    return tf.debugging.Assert(ok, [f"{name} must be finite and >= 0, got", value])


def _check_int(value, name, low, high):
    import tensorflow as tf

    ok = tf.logical_and(value >= low, value <= high)
    return tf.debugging.Assert(ok, [f"{name} must be in [{low}, {high}] (here), got", value])


class _Endpoints:
    """The SavedModel's functions: strings in, strings out, around the export core."""

    def __init__(self, model, core):
        self.model, self.core = model, core
        self.src_tok = model.source_tokenizer.tf_tokenizer
        self.tgt_tok = model.target_tokenizer.tf_tokenizer

    def tokenize(self, text):
        """Strings -> ``(ids + eos, padded; ids dropped per text)`` under the source limit."""
        import tensorflow as tf

        from zoo.data.tokenizer import EOS_ID, PAD_ID

        limit = self.core.max_source_length
        ids = self.src_tok.tokenize(text)
        dropped = tf.maximum(ids.row_lengths() + 1 - limit, 0)
        ids = ids[:, : limit - 1]
        eos = tf.fill([tf.shape(text)[0], 1], EOS_ID)
        return tf.concat([ids, eos], axis=1).to_tensor(PAD_ID), tf.cast(dropped, tf.int32)

    def run(self, text, generate, checks=()):
        """Checked strings through ``generate``; a batch of 0 gives outputs of 0 rows."""
        import tensorflow as tf

        with tf.control_dependencies([_check_text(text), *checks]):
            text = tf.identity(text)

        def decode():
            ids, dropped = self.tokenize(text)
            out = generate(ids)
            return {"text": self.model.target_tokenizer.detokenize(out["tokens"]),
                    **out, "source_ids_dropped": dropped}

        n = self.core.max_length
        empty = {"text": tf.zeros([0], tf.string), "tokens": tf.zeros([0, n], tf.int32),
                 "lengths": tf.zeros([0], tf.int32), "scores": tf.zeros([0], tf.float32),
                 "attention": tf.zeros([0, n, 0], tf.float32),
                 "source_ids_dropped": tf.zeros([0], tf.int32)}
        return tf.cond(tf.shape(text)[0] > 0, decode, lambda: empty)

    def generate_beam(self, text, length_penalty, coverage_penalty):
        checks = (_check_penalty(length_penalty, "length_penalty"),
                  _check_penalty(coverage_penalty, "coverage_penalty"))
        return self.run(text, lambda ids: self.core.beam(ids, length_penalty,
                                                         coverage_penalty), checks)

    def _settings_checks(self, max_length, min_length, no_repeat_ngram_size):
        from zoo.decoding.search import MAX_NGRAM_SIZE

        # An export made without n-gram blocking has no mask in its graph: it takes 0 only.
        top = MAX_NGRAM_SIZE if "no_repeat_ngram_size" in self.core.per_request() else 0
        return (_check_int(max_length, "max_length", 1, self.core.max_length),
                _check_int(min_length, "min_length", 0, max_length),
                _check_int(no_repeat_ngram_size, "no_repeat_ngram_size", 0, top))

    def generate_settings(self, text, max_length, min_length, no_repeat_ngram_size):
        return self.run(text, lambda ids: self.core.greedy(ids, max_length, min_length,
                                                           no_repeat_ngram_size),
                        self._settings_checks(max_length, min_length, no_repeat_ngram_size))

    def generate_beam_settings(self, text, beam_size, length_penalty, coverage_penalty,
                               max_length, min_length, no_repeat_ngram_size):
        from zoo.inputs import MAX_BEAM_SIZE

        checks = (_check_int(beam_size, "beam_size", 1, MAX_BEAM_SIZE),
                  _check_penalty(length_penalty, "length_penalty"),
                  _check_penalty(coverage_penalty, "coverage_penalty"),
                  *self._settings_checks(max_length, min_length, no_repeat_ngram_size))
        return self.run(text, lambda ids: self.core.beam(
            ids, length_penalty, coverage_penalty, max_length, min_length, beam_size,
            no_repeat_ngram_size), checks)

    def write(self, tmp) -> dict:
        """Writes the archive into ``tmp``: the manifest's part."""
        import keras
        import tensorflow as tf

        text_spec = tf.TensorSpec([None], tf.string, name="text")
        penalties = [tf.TensorSpec([], tf.float32, name=n)
                     for n in ("length_penalty", "coverage_penalty")]
        archive = keras.export.ExportArchive()
        for tracked in (self.model, self.src_tok, self.tgt_tok):
            archive.track(tracked)
        archive.add_endpoint("generate", lambda text: self.run(text, self.core.greedy),
                             input_signature=[text_spec])
        archive.add_endpoint("generate_beam", self.generate_beam,
                             input_signature=[text_spec, *penalties])
        ints = {n: tf.TensorSpec([], tf.int32, name=n) for n in SETTINGS}
        settings = [ints[n] for n in ("max_length", "min_length", "no_repeat_ngram_size")]
        archive.add_endpoint("generate_settings", self.generate_settings,
                             input_signature=[text_spec, *settings])
        archive.add_endpoint("generate_beam_settings", self.generate_beam_settings,
                             input_signature=[text_spec, ints["beam_size"], *penalties,
                                              *settings])
        archive.add_endpoint("tokenize", lambda text: self.tokenize(text)[0],
                             input_signature=[text_spec])
        archive.add_endpoint("encode", self.core.encode,
                             input_signature=[self.core.source_spec()])
        archive.add_endpoint("decode_step", self.core.step, input_signature=[
            tf.TensorSpec([None], tf.int32, name="token_ids"), self.core.specs])
        archive.write_out(tmp, verbose=False)
        return {"files": {"savedmodel": "."}, "strategies": ["greedy", "beam"],
                "quantization": ["float32"], "requires": ["tensorflow", "tensorflow_text"],
                "signatures": SIGNATURES, "per_request": list(self.core.per_request())}
