"""Model -> ONNX (tf2onnx), run by onnxruntime: encoder, one-step decoder, whole loops.

Four graphs plus the tokenizers, in one directory (signature names as in docs/export.md):

* ``encoder.onnx``: ``source_ids (batch, S) int32`` -> the initial decoder state and the
  memory (named tensors, as in the manifest; memory names start with ``memory__``).
* ``decoder_step.onnx``: ``token_ids (batch,)`` + state + memory -> ``logits``, ``attention``
  and the next state (``next__<name>``); the memory is an input only, never copied out.
* ``greedy.onnx`` and ``beam.onnx``: ``source_ids`` -> ``tokens (batch, max_length)``,
  ``lengths``, ``scores``, ``attention`` - the whole decoding loop inside the graph. The beam
  size is fixed at export; ``beam.onnx`` also takes ``length_penalty`` and
  ``coverage_penalty`` (float scalars, GNMT alpha and beta).
* ``source.model`` (and ``target.model``): the SentencePiece models; ``zoo.serving``
  tokenizes host-side with the ``sentencepiece`` package and gets exactly the ids
  tensorflow-text gives (same file).

Batch and source length are dynamic. Tokenization stays out of the graphs: tf-text ops do not
convert to ONNX. The loops write their outputs with mask blends into preallocated tensors (the
decoding engine is written that way), which tf2onnx converts to ONNX ``Loop`` correctly. The
memory is not loop-carried: the loop body reads it from the enclosing graph (ONNX ``Loop``
copies its carried values every iteration, which for the memory cost more than the step).
"""

from __future__ import annotations

import os
from typing import Optional

from zoo.export.core import ExportCore

OPSET = 17


def _subgraphs(node):
    import onnx

    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        for g in attr.graphs:
            yield g


def _rename_uses(graph, old, new):
    """Every read of ``old`` in ``graph`` and its subgraphs (outer-scope reads) -> ``new``."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for g in _subgraphs(node):
            _rename_uses(g, old, new)
    for out in graph.output:
        if out.name == old:
            # A graph output must be produced in this graph: keep it as a copy.
            import onnx

            graph.node.append(onnx.helper.make_node("Identity", [new], [old]))
            break


def hoist_loop_invariants(graph) -> int:
    """Turns the loop-carried values that a ``Loop`` body passes through unchanged into
    outer-scope reads, in ``graph`` and all its subgraphs. Returns how many were hoisted.

    tf2onnx makes everything a TensorFlow ``while`` captures loop-carried - the weights and
    the encoder memory included - and onnxruntime copies loop-carried values at every
    iteration: for a decoder with a large output projection that copy cost more than the step
    itself. An ONNX ``Loop`` body may read values of the enclosing graph directly.
    """
    hoisted = 0
    for node in graph.node:
        for g in _subgraphs(node):
            hoisted += hoist_loop_invariants(g)
        if node.op_type != "Loop":
            continue
        body = next(a.g for a in node.attribute if a.name == "body")
        carried = len(node.input) - 2
        # Body inputs: (iteration, cond, v_1..v_N); outputs: (cond, v_1..v_N, scans...).
        invariant = [k for k in range(carried)
                     if node.input[2 + k] and body.output[1 + k].name == body.input[2 + k].name]
        if not invariant:
            continue
        renames = [(body.input[2 + k].name, node.input[2 + k], node.output[k])
                   for k in invariant]
        for k in sorted(invariant, reverse=True):
            del node.input[2 + k]
            del body.input[2 + k]
            del body.output[1 + k]
            del node.output[k]
        for inner, outer, final in renames:
            _rename_uses(body, inner, outer)
            # The loop's final value of an invariant is its initial value.
            _rename_uses(graph, final, outer)
        hoisted += len(invariant)
    return hoisted


def _reads(graph) -> set:
    """Names read by ``graph``'s nodes and outputs, and by its subgraphs (outer scope)."""
    names = {o.name for o in graph.output}
    for node in graph.node:
        names.update(node.input)
        for g in _subgraphs(node):
            names |= _reads(g)
    return names


def _prune(graph) -> int:
    """Removes nodes whose outputs nobody reads, in ``graph`` and its subgraphs."""
    removed = 0
    for node in graph.node:
        for g in _subgraphs(node):
            removed += _prune(g)
    while True:
        reads = _reads(graph)
        dead = [i for i, n in enumerate(graph.node) if not any(o in reads for o in n.output)]
        if not dead:
            return removed
        for i in reversed(dead):
            del graph.node[i]
        removed += len(dead)


def fold_selects(graph) -> int:
    """Rewrites tf2onnx's arithmetic select back into one ``Where``, in ``graph`` and its
    subgraphs. Returns how many were folded.

    tf2onnx writes ``tf.where(c, x, y)`` as ``Cast(c) * x + y * Cast(Not(c))``: six kernels
    instead of one (for a decoder step at batch 1 the step's cost is mostly per-kernel
    overhead), and not even equal to the select when ``x`` or ``y`` is infinite.
    """
    import onnx

    folded = 0
    for node in graph.node:
        for g in _subgraphs(node):
            folded += fold_selects(g)
    producer = {o: n for n in graph.node for o in n.output}

    def made_by(name, op):
        n = producer.get(name)
        return n if n is not None and n.op_type == op else None

    for add in graph.node:
        if add.op_type != "Add" or len(add.input) != 2:
            continue
        m1, m2 = made_by(add.input[0], "Mul"), made_by(add.input[1], "Mul")
        if m1 is None or m2 is None:
            continue
        pos = made_by(m1.input[0], "Cast")
        neg = made_by(m2.input[1], "Cast")
        neg_not = made_by(neg.input[0], "Not") if neg is not None else None
        if pos is None or neg_not is None or neg_not.input[0] != pos.input[0]:
            continue
        # In place, so the node order stays topological; the casts and muls are pruned below.
        add.CopyFrom(onnx.helper.make_node("Where", [pos.input[0], m1.input[1], m2.input[0]],
                                           list(add.output), name=add.name))
        folded += 1
    if folded:
        _prune(graph)
    return folded


def _convert(fn, signature, path, opset):
    import tf2onnx

    model_proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
    hoist_loop_invariants(model_proto.graph)
    fold_selects(model_proto.graph)
    with open(path, "wb") as f:
        f.write(model_proto.SerializeToString())
    return [o.name for o in model_proto.graph.output]


def export_onnx(model, path: str, max_length: Optional[int] = None,
                max_source_length: Optional[int] = None, beam_size: int = 4,
                length_penalty: float = 0.6, coverage_penalty: float = 0.0,
                opset: int = OPSET, overwrite: bool = False,
                min_length: int = 0, no_repeat_ngram_size: int = 0) -> dict:
    """Writes the ONNX graphs of a model, its tokenizers and the manifest.

    Args:
        model: A ``zoo.models.Seq2Seq`` with tokenizers.
        path: Output directory (written beside and renamed into place).
        max_length: Maximum generated tokens (default: the model's ``max_target_length``).
        max_source_length: Source ids the runner keeps per text (default: the model's).
        beam_size: Beam size of ``beam.onnx``.
        length_penalty: Default GNMT length penalty for ``beam.onnx`` (in the manifest;
            the runner feeds it unless told otherwise).
        coverage_penalty: Default GNMT coverage penalty, likewise.
        opset: ONNX opset.
        min_length: Minimum generated tokens before eos (fixed at export).
        no_repeat_ngram_size: n-gram repetition blocking (fixed at export; 0: off).
        overwrite: Replace an export zoo wrote at ``path``.

    Returns:
        The manifest dict.
    """
    import tensorflow as tf

    core = ExportCore(model, max_length=max_length, max_source_length=max_source_length,
                      beam_size=beam_size, length_penalty=length_penalty,
                      coverage_penalty=coverage_penalty, min_length=min_length,
                      no_repeat_ngram_size=no_repeat_ngram_size)
    names = list(core.specs)
    src_spec = core.source_spec()

    def named(flat):
        # tf.identity names the ONNX outputs after the flat names.
        return {n: tf.identity(v, name=n) for n, v in flat.items()}

    def encoder(source_ids):
        return named(core.encode(source_ids))

    def decoder_step(token_ids, *inputs):
        return named(core.step(token_ids, dict(zip(names, inputs))))

    def greedy(source_ids):
        return named(core.greedy(source_ids))

    def beam(source_ids, length_penalty, coverage_penalty):
        return named(core.beam(source_ids, length_penalty, coverage_penalty))

    def write(tmp):
        graphs = {}
        graphs["encode"] = _convert(tf.function(encoder), [src_spec],
                                    os.path.join(tmp, "encoder.onnx"), opset)
        graphs["decode_step"] = _convert(
            tf.function(decoder_step),
            [tf.TensorSpec([None], tf.int32, name="token_ids")]
            + [core.specs[n] for n in names],
            os.path.join(tmp, "decoder_step.onnx"), opset)
        graphs["generate"] = _convert(tf.function(greedy), [src_spec],
                                      os.path.join(tmp, "greedy.onnx"), opset)
        graphs["generate_beam"] = _convert(
            tf.function(beam),
            [src_spec, tf.TensorSpec([], tf.float32, name="length_penalty"),
             tf.TensorSpec([], tf.float32, name="coverage_penalty")],
            os.path.join(tmp, "beam.onnx"), opset)
        inputs = {"generate": ["source_ids"],
                  "generate_beam": ["source_ids", "length_penalty", "coverage_penalty"],
                  "encode": ["source_ids"], "decode_step": ["token_ids", *names]}
        return {"files": {"generate": "greedy.onnx", "generate_beam": "beam.onnx",
                          "encode": "encoder.onnx", "decode_step": "decoder_step.onnx"},
                "signatures": {k: {"inputs": inputs[k], "outputs": v}
                               for k, v in graphs.items()},
                "strategies": ["greedy", "beam"], "quantization": ["float32"],
                "opset": opset, "requires": ["onnxruntime", "sentencepiece"]}

    return core.write(path, "onnx", write, overwrite=overwrite)
