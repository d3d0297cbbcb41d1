"""Model -> ONNX (tf2onnx), run by onnxruntime: encoder, one-step decoder, whole loops.

Four graphs plus the tokenizers, in one directory (signature names as in docs/export.md):

* ``encoder.onnx``: ``source_ids (batch, S) int32`` -> the initial decoder state and the
  memory (named tensors, as in the manifest; memory names start with ``memory__``).
* ``decoder_step.onnx``: ``token_ids (batch,)`` + state + memory -> ``logits``, ``attention``
  and the next state (``next__<name>``); the memory is an input only, never copied out.
* ``greedy.onnx`` and ``beam.onnx``: ``source_ids`` -> ``tokens (batch, max_length)``,
  ``lengths``, ``scores``, ``attention`` - the whole decoding loop inside the graph.
  ``beam.onnx`` also takes ``beam_size`` (int32; the export's ``beam_size`` is the runner's
  default), ``length_penalty`` and ``coverage_penalty`` (float scalars, GNMT alpha and beta).
  Both loops also take ``max_length`` (at most the export's, which sizes their outputs) and
  ``min_length`` (int32 scalars): settings per call, no re-export.
* ``source.model`` (and ``target.model``): the SentencePiece models; ``zoo.serving``
  tokenizes host-side with the ``sentencepiece`` package and gets exactly the ids
  tensorflow-text gives (same file). A byte-level BPE (an imported BART) is
  ``source.bpe.json``, run by ``tokenizers``.

Batch and source length are dynamic. Tokenization stays out of the graphs: tf-text ops do not
convert to ONNX. The loops write their outputs with mask blends into preallocated tensors (the
decoding engine is written that way), which tf2onnx converts to ONNX ``Loop`` correctly. The
memory is not loop-carried: the loop body reads it from the enclosing graph (ONNX ``Loop``
copies its carried values every iteration, which for the memory cost more than the step).
"""

from __future__ import annotations

import contextlib
import os
from typing import Optional

from zoo.export import onnx_handlers
from zoo.export.core import ExportCore
from zoo.export.onnx_passes import optimize


OPSET = 17


@contextlib.contextmanager
def _optimizer_errors_raised():
    """tf2onnx deep-copies the whole graph before each of its optimizers so that a failing one
    can be skipped; that copying is a third of an export's time (docs/RESULTS.md). With
    ``TF2ONNX_CATCH_ERRORS`` set (tf2onnx reads any value as "raise") the optimizers run
    in place and a failure stops the export instead of passing silently."""
    key, before = "TF2ONNX_CATCH_ERRORS", os.environ.get("TF2ONNX_CATCH_ERRORS")
    os.environ[key] = "FALSE"
    try:
        yield
    finally:
        if before is None:
            del os.environ[key]
        else:
            os.environ[key] = before


def _reachable_nodes(self, outputs_name, input_checker=None, remove_unused_inputs=True):
    """tf2onnx's ``Graph.extract_sub_graph_nodes`` in one walk: the same set of nodes (those
    the outputs reach, stopping where ``input_checker`` says False), where tf2onnx walks the
    graph again from each output and recomputes each Loop's implicit inputs every time."""
    names = list(outputs_name)
    if not remove_unused_inputs:
        names += [inp.output[0] for inp in self.inputs]
    seen, stack = set(), []

    def reach(name):
        node = self.get_node_by_output(name, search_in_parent_graphs=False)
        if node and node not in seen and (input_checker is None or input_checker(node)
                                          is not False):
            seen.add(node)
            stack.append(node)

    for name in names:
        reach(name)
    while stack:
        node = stack.pop()
        for name in node.input + list(node.get_implicit_inputs()):
            reach(name)
    return list(seen)


def _update_proto_fresh(self, external_tensor_storage=None):
    """tf2onnx's ``Node.update_proto`` into a new ``NodeProto``: refilling the old one in
    place keeps every earlier copy of its attributes in the message's protobuf arena, so each
    optimizer pass grew the process by the weights' size (docs/RESULTS.md)."""
    import onnx

    old, op = self._op, onnx.NodeProto()
    for field in ("name", "op_type", "domain", "doc_string"):
        if old.HasField(field):  # proto2: an unset field stays unset
            setattr(op, field, getattr(old, field))
    op.input.extend(self.input)
    op.output.extend(self.output)
    for attr_name, sub_graph in (self.get_body_graphs() or {}).items():
        self.set_attr(attr_name, sub_graph.make_graph(
            "graph for " + self.name + " " + attr_name,
            external_tensor_storage=external_tensor_storage))
    op.attribute.extend(self.get_onnx_attrs(external_tensor_storage).values())
    self._op = op


@contextlib.contextmanager
def _patched(cls, name, replacement):
    """``cls.name`` replaced for the duration (tf2onnx's internals, see each replacement)."""
    before = getattr(cls, name)
    setattr(cls, name, replacement)
    try:
        yield
    finally:
        setattr(cls, name, before)


def _convert(fn, signature, path, opset):
    import tf2onnx
    from tf2onnx.graph import Graph, Node

    handlers = onnx_handlers.HANDLERS if opset >= onnx_handlers.MIN_OPSET else None
    # tf2onnx's internals replaced while it converts: pruning in one walk, fresh node protos.
    with _optimizer_errors_raised(), _patched(Graph, "extract_sub_graph_nodes",
                                              _reachable_nodes), \
            _patched(Node, "update_proto", _update_proto_fresh):
        model_proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature,
                                                       opset=opset, custom_op_handlers=handlers)
    _check_operators(model_proto.graph, opset, path)
    optimize(model_proto, opset)
    with open(path, "wb") as f:
        f.write(model_proto.SerializeToString())
    return [o.name for o in model_proto.graph.output]


def _check_operators(graph, opset, path):
    """Raises a ValueError naming the TensorFlow ops tf2onnx left unconverted (it only logs
    them, and writes a graph that onnxruntime refuses to load)."""
    import onnx

    unknown = set()

    def visit(g):
        for node in g.node:
            if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type):
                unknown.add(node.op_type)
            for attr in node.attribute:  # Loop and If bodies
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    visit(sub)

    visit(graph)
    if unknown:
        raise ValueError(f"{os.path.basename(path)}: no ONNX (opset {opset}) conversion for "
                         f"the TensorFlow op(s) {', '.join(sorted(unknown))}; use another "
                         f"--format (savedmodel, litert)")


#: What ``export_onnx(quantization=...)`` writes.
QUANTIZATIONS = ("float32", "int8")


def quantize_int8(path: str) -> None:
    """Replaces an ONNX file by its dynamic int8 quantization (onnxruntime's own tool):
    weights int8 per output channel, activations quantized at run time, Loop bodies too."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path + ".int8"
    quantize_dynamic(path, tmp, per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"EnableSubgraph": True})
    os.replace(tmp, path)


def export_onnx(model, path: str, max_length: Optional[int] = None,
                max_source_length: Optional[int] = None, beam_size: int = 4,
                length_penalty: float = 0.6, coverage_penalty: float = 0.0,
                opset: int = OPSET, overwrite: bool = False,
                min_length: int = 0, no_repeat_ngram_size: int = 0,
                quantization: str = "float32") -> dict:
    """Writes the ONNX graphs of a model, its tokenizers and the manifest.

    Args:
        model: A ``zoo.models.Seq2Seq`` with tokenizers.
        path: Output directory (written beside and renamed into place).
        max_length: Maximum generated tokens (default: the model's ``max_target_length``):
            the width of the outputs and the most a call may ask for.
        max_source_length: Source ids the runner keeps per text (default: the model's).
        beam_size: Beam size of ``beam.onnx``.
        length_penalty: Default GNMT length penalty for ``beam.onnx`` (in the manifest;
            the runner feeds it unless told otherwise).
        coverage_penalty: Default GNMT coverage penalty, likewise.
        opset: ONNX opset.
        min_length: Default minimum of generated tokens before eos (a call may give another).
        no_repeat_ngram_size: n-gram repetition blocking (fixed at export; 0: off).
        overwrite: Replace an export zoo wrote at ``path``.
        quantization: ``"float32"``, or ``"int8"``: onnxruntime's dynamic quantization of
            every graph (the decoding loops' bodies included), int8 weights per output
            channel, activations quantized on the fly.

    Returns:
        The manifest dict.
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got "
                         f"{quantization!r}")
    core = ExportCore(model, max_length=max_length, max_source_length=max_source_length,
                      beam_size=beam_size, length_penalty=length_penalty,
                      coverage_penalty=coverage_penalty, min_length=min_length,
                      no_repeat_ngram_size=no_repeat_ngram_size)
    return core.write(path, "onnx", lambda tmp: _write(core, tmp, opset, quantization),
                      overwrite=overwrite)


#: Signature -> ONNX file.
FILES = {"encode": "encoder.onnx", "decode_step": "decoder_step.onnx",
         "generate": "greedy.onnx", "generate_beam": "beam.onnx"}


def _loop_inputs(core) -> dict:
    """Each loop graph's inputs, in order (``beam_size``: the beam graph only)."""
    settings = [n for n in core.per_request() if n != "beam_size"]
    return {"generate": ("source_ids", *settings),
            "generate_beam": ("source_ids", "length_penalty", "coverage_penalty", *settings,
                              "beam_size")}


def _graphs(core):
    """Signature -> ``(tf.function, input signature)``; outputs named after the flat names."""
    import tensorflow as tf

    names = list(core.specs)
    specs = {"source_ids": core.source_spec(),
             **{n: tf.TensorSpec([], tf.float32, name=n)
                for n in ("length_penalty", "coverage_penalty")},
             **{n: tf.TensorSpec([], tf.int32, name=n) for n in core.per_request()}}

    def named(flat):
        # tf.identity names the ONNX outputs after the flat names.
        return {n: tf.identity(v, name=n) for n, v in flat.items()}

    inputs = _loop_inputs(core)

    def loop(signature, method):
        return (lambda *args: named(method(**dict(zip(inputs[signature], args)))),
                [specs[n] for n in inputs[signature]])

    return {
        "encode": (lambda source_ids: named(core.encode(source_ids)), [specs["source_ids"]]),
        "decode_step": (lambda token_ids, *state: named(core.step(token_ids,
                                                                  dict(zip(names, state)))),
                        [tf.TensorSpec([None], tf.int32, name="token_ids")]
                        + [core.specs[n] for n in names]),
        "generate": loop("generate", core.greedy),
        "generate_beam": loop("generate_beam", core.beam),
    }


def _write(core, tmp, opset, quantization) -> dict:
    """Converts (and quantizes) the four graphs into ``tmp``: the manifest's part."""
    import tensorflow as tf

    outputs = {}
    for signature, (fn, spec) in _graphs(core).items():
        file = os.path.join(tmp, FILES[signature])
        outputs[signature] = _convert(tf.function(fn, autograph=False), spec, file, opset)
        if quantization == "int8":
            quantize_int8(file)
    inputs = {**{k: list(v) for k, v in _loop_inputs(core).items()},
              "encode": ["source_ids"], "decode_step": ["token_ids", *core.specs]}
    return {"files": {k: FILES[k] for k in ("generate", "generate_beam", "encode",
                                            "decode_step")},
            "signatures": {k: {"inputs": inputs[k], "outputs": v} for k, v in outputs.items()},
            "strategies": ["greedy", "beam"], "quantization": [quantization],
            "per_request": list(core.per_request()), "opset": opset,
            "requires": ["onnxruntime", *core.host_packages]}
