"""Runners for exported models, chosen by the export's manifest: ``load(dir)``.

Every runner has the same methods and the same input contract (``zoo.inputs``) as the Keras
model: ``generate_text(texts, strategy, **options)`` (strings in, strings out; an empty list
gives an empty list), ``generate(source_ids, strategy, **options)`` (ids in, numpy arrays
out), ``encode(source_ids)`` and ``decode_step(token_ids, inputs)`` (one step; outputs
``logits``, ``attention`` and ``next__<state name>``). None of them imports zoo's model code:

* :class:`OnnxRunner` - onnxruntime; no TensorFlow.
* :class:`LiteRTRunner` - ai-edge-litert; no TensorFlow. Pads to the export's fixed batch and
  source length, splits larger batches.
* :class:`SavedModelRunner` - TensorFlow + tensorflow_text (tokenization in the graph).

Overlong inputs are truncated to the export's ``max_source_length`` with a
``zoo.inputs.InputTruncatedWarning``. Options fixed at export (``beam_size``, ``max_length``,
``min_length`` and ``no_repeat_ngram_size``, except where the manifest's ``per_request`` lists
them: ONNX, SavedModel and CTranslate2) may be passed only with their exported value.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from zoo.inputs import InputError, check_decoding, check_texts, strategy_name, warn_truncated
from zoo.serving.tokenizer import HostTokenizer
from zoo.serving import manifest as manifest_io
from zoo.serving.manifest import ExportFileError


def read_manifest(path: str) -> dict:
    """The ``manifest.json`` of an export directory, checked (:mod:`zoo.serving.manifest`)."""
    return manifest_io.read(path)


class Runner:
    """Base of the runners: the input contract, batching and tokenization.

    Args:
        path: The export directory.
        manifest: Its manifest (read if None).
    """

    format = None

    def __init__(self, path: str, manifest: Optional[dict] = None):
        self.path = path
        self.manifest = manifest or read_manifest(path)
        if self.manifest["format"] != self.format:
            raise ExportFileError(f"{path}/manifest.json: format "
                                  f"{self.manifest['format']!r}, expected {self.format!r}")
        toks = self.manifest["tokenizers"]
        self.source_tokenizer = HostTokenizer(os.path.join(path, toks["source"]))
        self.target_tokenizer = (self.source_tokenizer if toks["target"] == toks["source"]
                                 else HostTokenizer(os.path.join(path, toks["target"])))
        self.task = self.manifest.get("task")
        self.max_source_length = int(self.manifest["shapes"]["max_source_length"])
        self.max_length = int(self.manifest["shapes"]["max_length"])
        self.state_names = [s["name"] for s in self.manifest["state"]]

    @property
    def strategies(self) -> List[str]:
        return list(self.manifest["decoding"]["strategies"])

    def check_options(self, strategy: str, options: dict) -> dict:
        """The contract's checks, then this export's: the strategy must be exported, and
        options fixed at export may only repeat their value."""
        name = strategy_name(strategy)
        if name not in self.strategies:
            raise InputError("strategy", f"strategy {name!r} is not in this {self.format} "
                                         f"export (it has: {', '.join(self.strategies)})")
        options = check_decoding(name, options)
        dec = self.manifest["decoding"]
        per_call = self._per_call(options)
        fixed = {"max_length": self.max_length, "beam_size": dec["beam_size"],
                 "min_length": dec.get("min_length", 0),
                 "no_repeat_ngram_size": dec.get("no_repeat_ngram_size", 0)}
        for key, value in fixed.items():
            if key in options and options.pop(key) != value:
                raise InputError(key, f"{key} is fixed at export to {value} in this "
                                      f"{self.format} export; re-export to change it")
        rest = sorted(set(options) - {"length_penalty", "coverage_penalty"})
        if rest:
            raise InputError(rest[0], f"{rest[0]} is not supported by the {self.format} "
                                      f"runner (it takes length_penalty and coverage_penalty)")
        if name == "beam":
            for key in ("length_penalty", "coverage_penalty"):
                options.setdefault(key, float(self.manifest["decoding"][key]))
        return {**options, **per_call}

    def _per_call(self, options: dict) -> dict:
        """Takes the settings this export's graphs accept per call (``per_request`` in the
        manifest) out of ``options``, checked against the export's bounds."""
        names = self.manifest.get("per_request") or ()
        if not names:
            return {}
        max_length = int(options.pop("max_length", self.max_length))
        if max_length > self.max_length:
            raise InputError("max_length", f"max_length {max_length} is over this export's "
                                           f"maximum of {self.max_length} (re-export with "
                                           f"a larger --max-length)")
        default = min(int(self.manifest["decoding"].get("min_length", 0)), max_length)
        min_length = int(options.pop("min_length", default))
        if min_length > max_length:
            raise InputError("min_length", f"min_length {min_length} is over max_length "
                                           f"{max_length}")
        out = {"max_length": max_length, "min_length": min_length}
        for name in ("no_repeat_ngram_size", "beam_size"):  # (check_decoding bounded them)
            if name in names:
                out[name] = int(options.pop(name, self.manifest["decoding"].get(name, 0)))
        return out

    def encode_texts(self, texts: Sequence[str]):
        """Strings -> ``(ids (batch, S) int32, ids dropped per text)``, with a warning for
        truncated texts."""
        ids, lengths = self.source_tokenizer.encode_with_lengths(texts,
                                                                 self.max_source_length)
        return ids, warn_truncated(lengths, self.max_source_length, stacklevel=4)

    def generate_text(self, texts: Sequence[str], strategy: str = "greedy",
                      **options) -> List[str]:
        """Strings in, strings out, under the input contract."""
        result = self.run_texts(texts, strategy, **options)
        warn_truncated([self.max_source_length + d for d in result["source_ids_dropped"]],
                       self.max_source_length, stacklevel=3)
        return result["text"]

    def run_texts(self, texts: Sequence[str], strategy: str = "greedy", *,
                  return_attention: bool = False, **options) -> dict:
        """Strings in, everything the export computes out (no truncation warning: the
        caller reports ``source_ids_dropped``; the server puts it in its answer).

        Args:
            texts: A list of non-empty strings (the input contract).
            strategy: An exported strategy.
            return_attention: Also return, per text, the attention weights trimmed to the
                output and source tokens, and those tokens as pieces.
            **options: Decoding options (``zoo.inputs``; those fixed at export may only
                repeat their value).

        Returns:
            ``text`` (list of str), ``scores`` (list of float), ``source_ids_dropped`` (list
            of int); with ``return_attention`` also ``attention`` (per text, a list of
            ``output_tokens`` rows of ``source_tokens`` weights), ``source_tokens`` and
            ``output_tokens`` (per text, lists of SentencePiece pieces, eos included).
        """
        texts = check_texts(texts)
        options = self.check_options(strategy, options)
        return self.run_checked(texts, strategy_name(strategy), options, return_attention)

    def run_checked(self, texts, strategy: str, options: dict,
                    return_attention: bool = False) -> dict:
        """:meth:`run_texts` for inputs already checked (``check_texts``, the strategy's
        name, :meth:`check_options`): the server checks each request once, in its handler."""
        if not texts:
            empty = {"text": [], "scores": [], "source_ids_dropped": []}
            if return_attention:
                empty.update(attention=[], source_tokens=[], output_tokens=[])
            return empty
        out = self._generate_texts(texts, strategy, options)
        result = {"text": out["text"], "scores": [float(x) for x in out["scores"]],
                  "source_ids_dropped": [int(d) for d in out["source_ids_dropped"]]}
        if return_attention:
            ids = out.get("source_ids")
            if ids is None:  # tokenized inside the graph: the host ids are the same (tested)
                ids = self.source_tokenizer.encode(texts, self.max_source_length)
            result.update(self._attention(ids, out))
        return result

    def _generate_texts(self, texts, strategy, options) -> dict:
        """Checked texts -> ``text``, ``source_ids_dropped``, the ``generate`` outputs and
        (where tokenized host-side) ``source_ids``."""
        ids, lengths = self.source_tokenizer.encode_with_lengths(texts, self.max_source_length)
        out = self._generate(ids, strategy, options)
        return {**out, "text": self.target_tokenizer.decode(out["tokens"]), "source_ids": ids,
                "source_ids_dropped": [max(0, n - self.max_source_length) for n in lengths]}

    def _attention(self, ids, out) -> dict:
        """Per text: attention (output x source, trimmed) and both sides as pieces."""
        src_pieces = self.source_tokenizer.pieces
        tgt_pieces = self.target_tokenizer.pieces
        attention, sources, outputs = [], [], []
        for row, tokens, n_out, weights in zip(ids, out["tokens"], out["lengths"],
                                               out["attention"]):
            n_src = int((row != 0).sum())
            n_out = int(min(n_out, len(tokens)))
            sources.append(src_pieces(row[:n_src]))
            outputs.append(tgt_pieces(tokens[:n_out]))
            attention.append(np.asarray(weights[:n_out, :n_src], np.float64).round(5).tolist())
        return {"attention": attention, "source_tokens": sources, "output_tokens": outputs}

    def generate(self, source_ids, strategy: str = "greedy", **options) -> Dict[str, np.ndarray]:
        """Ids ``(batch, S)`` -> ``tokens``, ``lengths``, ``scores``, ``attention``."""
        options = self.check_options(strategy, options)
        source_ids = np.asarray(source_ids, np.int32)
        if source_ids.ndim != 2:
            raise InputError("source_ids", f"source_ids must be (batch, S), got shape "
                                           f"{source_ids.shape}")
        if source_ids.shape[0] == 0:
            return {"tokens": np.zeros((0, self.max_length), np.int32),
                    "lengths": np.zeros((0,), np.int32), "scores": np.zeros((0,), np.float32),
                    "attention": np.zeros((0, self.max_length, 0), np.float32)}
        return self._generate(source_ids, strategy_name(strategy), options)

    def _generate(self, ids, strategy, options) -> dict:
        raise NotImplementedError

    def encode(self, source_ids) -> dict:
        raise NotImplementedError

    def decode_step(self, token_ids, inputs: dict) -> dict:
        raise NotImplementedError


class OnnxRunner(Runner):
    """Runs an ONNX export on onnxruntime.

    Args:
        path: The export directory.
        manifest: Its manifest (read if None).
        providers: onnxruntime execution providers (default: CPU).
        intra_threads: Threads per kernel (0: onnxruntime's default, one per core). One
            thread is often faster for single sentences, whose kernels are too small to split.
    """

    format = "onnx"

    def __init__(self, path: str, manifest: Optional[dict] = None, providers=None,
                 intra_threads: int = 0):
        import onnxruntime as ort

        super().__init__(path, manifest)
        providers = providers or ["CPUExecutionProvider"]
        if isinstance(intra_threads, bool) or not isinstance(intra_threads, int) \
                or intra_threads < 0:
            raise ValueError(f"intra_threads must be an int >= 0 (0: onnxruntime's default), "
                             f"got {intra_threads!r}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_threads
        self._sessions = {}
        for key, name in self.manifest["files"].items():
            file = os.path.join(path, name)
            try:
                self._sessions[key] = ort.InferenceSession(file, options, providers=providers)
            except Exception as err:  # noqa: BLE001  (onnxruntime raises its own types)
                raise ExportFileError(f"{file}: cannot be loaded by onnxruntime "
                                      f"({str(err).splitlines()[0][:160]})") from None

    def _run(self, key, feeds):
        sess = self._sessions[key]
        return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))

    def _generate(self, ids, strategy, options):
        signature = "generate" if strategy == "greedy" else "generate_beam"
        feeds = {"source_ids": ids}
        inputs = self.manifest["signatures"][signature].get("inputs") or ()
        # Each graph's own per-call settings (older exports take none, or no beam_size).
        for name in self.manifest.get("per_request") or ():
            if name in inputs:
                feeds[name] = np.asarray(options[name], np.int32)
        if strategy == "greedy":
            return self._run(signature, feeds)
        return self._run(signature, {
            **feeds, "length_penalty": np.asarray(options["length_penalty"], np.float32),
            "coverage_penalty": np.asarray(options["coverage_penalty"], np.float32)})

    def encode(self, source_ids) -> dict:
        return self._run("encode", {"source_ids": np.asarray(source_ids, np.int32)})

    def decode_step(self, token_ids, inputs: dict) -> dict:
        return self._run("decode_step", {"token_ids": np.asarray(token_ids, np.int32),
                                         **inputs})


class LiteRTRunner(Runner):
    """Runs a LiteRT export with ai-edge-litert (greedy decoding).

    Args:
        path: The export directory.
        manifest: Its manifest (read if None).
        quantization: Which ``.tflite`` file (default: the first exported, float32 if there).
    """

    format = "litert"

    def __init__(self, path: str, manifest: Optional[dict] = None,
                 quantization: Optional[str] = None):
        from ai_edge_litert.interpreter import Interpreter

        super().__init__(path, manifest)
        shapes = self.manifest["shapes"]
        self.batch_size, self.source_length = int(shapes["batch_size"]), \
            int(shapes["source_length"])
        exported = self.manifest["quantization"]
        self.quantization = quantization or ("float32" if "float32" in exported
                                             else exported[0])
        if self.quantization not in exported:
            raise InputError("quantization", f"quantization {self.quantization!r} is not in "
                                             f"this export (it has: {', '.join(exported)})")
        file = os.path.join(path, self.manifest["files"][self.quantization])
        try:
            self.interpreter = Interpreter(model_path=file)
        except Exception as err:  # noqa: BLE001  (the interpreter raises plain errors)
            raise ExportFileError(f"{file}: cannot be loaded by LiteRT "
                                  f"({str(err).splitlines()[0][:160]})") from None
        self._runners = {k: self.interpreter.get_signature_runner(k)
                         for k in ("generate", "encode", "decode_step")}

    def _pad(self, ids):
        """(n <= batch, S <= source_length) -> (batch, source_length)."""
        out = np.zeros((self.batch_size, self.source_length), np.int32)
        n, s = ids.shape[0], min(ids.shape[1], self.source_length)
        out[:n, :s] = ids[:, :s]
        return out

    def _generate(self, ids, strategy, options):
        if ids.shape[1] > self.source_length:  # ids from generate(): cut like texts are
            lengths = (ids != 0).sum(1)
            warn_truncated(lengths.tolist(), self.source_length, field="source_ids")
            ids = ids[:, : self.source_length].copy()
            ids[lengths > self.source_length, -1] = self.manifest["vocab"]["special_ids"]["eos"]
        parts = []
        for start in range(0, ids.shape[0], self.batch_size):
            chunk = ids[start:start + self.batch_size]
            out = self._runners["generate"](source_ids=self._pad(chunk))
            parts.append({k: v[: chunk.shape[0]] for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def encode(self, source_ids) -> dict:
        ids = np.asarray(source_ids, np.int32)
        if ids.shape[0] != self.batch_size:
            raise InputError("source_ids", f"this LiteRT export encodes batches of exactly "
                                           f"{self.batch_size}, got {ids.shape[0]}")
        return self._runners["encode"](source_ids=self._pad(ids))

    def decode_step(self, token_ids, inputs: dict) -> dict:
        return self._runners["decode_step"](token_ids=np.asarray(token_ids, np.int32),
                                            **inputs)


class SavedModelRunner(Runner):
    """Runs a SavedModel export with TensorFlow (tokenization inside the graph).

    Args:
        path: The export directory.
        manifest: Its manifest (read if None).
    """

    format = "savedmodel"

    def __init__(self, path: str, manifest: Optional[dict] = None):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

        super().__init__(path, manifest)
        self._tf = tf
        try:
            self.loaded = tf.saved_model.load(path)  # kept: a temporary would be collected
        except (OSError, ValueError, tf.errors.OpError) as err:
            raise ExportFileError(f"{path}: the SavedModel cannot be loaded "
                                  f"({str(err).splitlines()[0][:160]})") from None

    def _settings(self, signature: str, per_call: dict) -> dict:
        """The int settings ``signature`` takes: this call's, else the export's fixed ones
        (an export made without n-gram blocking takes 0 only)."""
        takes = (self.manifest["signatures"].get(signature) or {}).get("inputs") or [
            k for k in per_call if k != "beam_size" or signature == "generate_beam_settings"]
        fixed = self.manifest["decoding"]
        return {k: per_call.get(k, self._tf.constant(int(fixed.get(k, 0)), self._tf.int32))
                for k in takes if k not in ("text", "length_penalty", "coverage_penalty")}

    def _generate_texts(self, texts, strategy, options) -> dict:
        # Tokenization runs inside the SavedModel (strings in, strings out), which also counts
        # the ids it cut: the host tokenizes only to name the attention's source pieces.
        tf = self._tf
        text = tf.constant(texts)
        per_call = {k: tf.constant(options[k], tf.int32)
                    for k in self.manifest.get("per_request") or () if k in options}
        if not per_call:  # exports before the settings signatures
            out = (self.loaded.generate(text) if strategy == "greedy" else
                   self.loaded.generate_beam(text, tf.constant(options["length_penalty"]),
                                             tf.constant(options["coverage_penalty"])))
        elif strategy == "greedy":
            out = self.loaded.generate_settings(
                text=text, **self._settings("generate_settings", per_call))
        else:
            out = self.loaded.generate_beam_settings(
                text=text, length_penalty=tf.constant(options["length_penalty"]),
                coverage_penalty=tf.constant(options["coverage_penalty"]),
                **self._settings("generate_beam_settings", per_call))
        out = {k: v.numpy() for k, v in out.items()}
        # A byte-level BPE can stop inside a character: U+FFFD, as `tokenizers` writes.
        out["text"] = [s.decode("utf-8", "replace") for s in out["text"]]
        return out

    def _generate(self, ids, strategy, options):
        raise InputError("source_ids", "the SavedModel runner takes text (generate_text); its "
                                       "ids endpoints are encode and decode_step")

    def encode(self, source_ids) -> dict:
        out = self.loaded.encode(self._tf.constant(np.asarray(source_ids, np.int32)))
        return {k: v.numpy() for k, v in out.items()}

    def decode_step(self, token_ids, inputs: dict) -> dict:
        tf = self._tf
        out = self.loaded.decode_step(tf.constant(np.asarray(token_ids, np.int32)),
                                      {k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in out.items()}


class CTranslate2Runner(Runner):
    """Runs a CTranslate2 export (Transformer translators) with ``ctranslate2.Translator``.

    CTranslate2 runs its own decoding loop: there is no step-by-step ``decode_step``;
    ``score(source_ids, tokens)`` gives the log-probabilities of given output tokens
    (teacher forcing), which ``zoo.export.verify`` compares with Keras.

    Args:
        path: The export directory.
        manifest: Its manifest (read if None).
        quantization: ``"float32"`` or ``"int8"`` (CTranslate2's compute type; default: the
            first exported).
        device: ``"cpu"`` or ``"cuda"``.
        inter_threads: Batches translated in parallel.
        intra_threads: Threads per batch (0: CTranslate2's default).
    """

    format = "ctranslate2"

    def __init__(self, path: str, manifest: Optional[dict] = None,
                 quantization: Optional[str] = None, device: str = "cpu",
                 inter_threads: int = 1, intra_threads: int = 0):
        import ctranslate2

        super().__init__(path, manifest)
        available = self.manifest["quantization"]
        self.quantization = quantization or available[0]
        if self.quantization not in available:
            raise InputError("quantization", f"quantization {self.quantization!r} is not in "
                                             f"this export (it has: {', '.join(available)})")
        model_dir = os.path.join(path, self.manifest["files"]["model"])
        try:
            self.translator = ctranslate2.Translator(
                model_dir, device=device, compute_type=self.quantization,
                inter_threads=inter_threads, intra_threads=intra_threads)
        except (RuntimeError, ValueError) as err:
            raise ExportFileError(f"{model_dir}: cannot be loaded by ctranslate2 "
                                  f"({str(err).splitlines()[0][:160]})") from None
        self._source_pieces = self._vocab(self.source_tokenizer)
        self._target_pieces = self._vocab(self.target_tokenizer)
        self._target_ids = {p: i for i, p in enumerate(self._target_pieces)}
        self._special = self.manifest["vocab"]["special_ids"]

    @staticmethod
    def _vocab(tokenizer):
        return tokenizer.pieces(range(tokenizer.vocab_size))

    def _pieces(self, ids):
        pad = self._special["pad"]
        return [[self._source_pieces[int(i)] for i in row if i != pad] for row in ids]

    def _generate(self, ids, strategy, options):
        # Per call where the manifest says so (``_per_call``), else the export's settings.
        setting = {**self.manifest["decoding"], "max_length": self.max_length, **options}.get
        beam = 1 if strategy == "greedy" else int(setting("beam_size"))
        max_length = int(setting("max_length"))
        first = self.manifest["vocab"].get("forced_first_id")
        prefix = None if first is None else [[self._target_pieces[first]]] * len(ids)
        results = self.translator.translate_batch(
            self._pieces(ids), beam_size=beam, max_decoding_length=max_length,
            target_prefix=prefix,
            length_penalty=float(options.get("length_penalty", 0.0)) if beam > 1 else 0.0,
            min_decoding_length=int(setting("min_length", 0)),
            no_repeat_ngram_size=int(setting("no_repeat_ngram_size", 0)),
            # As zoo's decoding: padding and bos are never generated.
            suppress_sequences=[[self._target_pieces[self._special["pad"]]],
                                [self._target_pieces[self._special["bos"]]]],
            return_scores=True, return_attention=True, return_end_token=True)
        n, src = len(results), ids.shape[1]
        tokens = np.zeros((n, self.max_length), np.int32)
        attention = np.zeros((n, self.max_length, src), np.float32)
        lengths, scores = np.zeros((n,), np.int32), np.zeros((n,), np.float32)
        for i, r in enumerate(results):
            hyp = [self._target_ids[p] for p in r.hypotheses[0]][:self.max_length]
            tokens[i, :len(hyp)] = hyp
            lengths[i], scores[i] = len(hyp), r.scores[0]
            att = np.asarray(r.attention[0], np.float32)[:len(hyp)]
            if att.size:
                attention[i, :att.shape[0], :att.shape[1]] = att
        return {"tokens": tokens, "lengths": lengths, "scores": scores, "attention": attention}

    def score(self, source_ids, tokens) -> List[np.ndarray]:
        """Log-probabilities of ``tokens`` (per row, eos included) given ``source_ids``."""
        # score_batch appends </s> itself: it gets the tokens before eos.
        skip = (self._special["pad"], self._special["eos"])
        target = [[self._target_pieces[int(i)] for i in row if int(i) not in skip]
                  for row in tokens]
        results = self.translator.score_batch(self._pieces(np.asarray(source_ids)), target)
        return [np.asarray(r.log_probs, np.float32) for r in results]

    def encode(self, source_ids) -> dict:
        raise NotImplementedError("CTranslate2 runs its own decoding loop: use score()")

    def decode_step(self, token_ids, inputs: dict) -> dict:
        raise NotImplementedError("CTranslate2 runs its own decoding loop: use score()")


RUNNERS = {"onnx": OnnxRunner, "litert": LiteRTRunner, "savedmodel": SavedModelRunner,
           "ctranslate2": CTranslate2Runner}


def load(path: str, **kwargs) -> Runner:
    """The runner for an export directory, chosen by its manifest.

    Args:
        path: A directory written by ``zoo export`` / ``zoo.export``.
        **kwargs: Runner options (``providers`` and ``intra_threads`` for ONNX,
            ``quantization`` for LiteRT).

    Returns:
        A :class:`Runner`.

    Example (needs an export):
        ``zoo.serving.load("model-onnx").generate_text(["Tengo hambre."], "beam")``
    """
    manifest = read_manifest(path)
    fmt = manifest["format"]
    if fmt not in RUNNERS:
        raise ExportFileError(f"{path}/manifest.json: unknown format {fmt!r} (known: "
                              f"{', '.join(RUNNERS)})")
    return RUNNERS[fmt](path, manifest, **kwargs)
