"""tf2onnx conversions zoo replaces (``custom_op_handlers`` of ``tf2onnx.convert``).

``UnsortedSegmentSum`` (the copy distribution's scatter onto the vocabulary, n-gram blocking,
whole-word copying): tf2onnx builds a ``(num_segments, largest segment)`` index grid and
gathers the data into it. A copying decoder's segments are (row, token) pairs, and a source's
padding puts hundreds of positions on one of them, so the grid held hundreds of entries for
every vocabulary item of every row: tens of MB per hypothesis, which ran a beam search of the
summarizer out of memory. ``ScatterND`` with ``reduction="add"`` (opset 16) adds each row of
the data onto zeros of the output's shape instead: memory of the output, duplicates summed.

``Erfc`` (exact GELU, TensorFlow's ``0.5 x erfc(-x / sqrt 2)``; BART's feed-forward): ONNX has
no such operator and tf2onnx no conversion; ``1 - Erf(x)`` is the same function.
"""

import numpy as np

#: The opset ``ScatterND`` takes ``reduction`` from.
MIN_OPSET = 16


def segment_sum_by_scatter(ctx, node, name, args):
    """Rewrites ``node`` (``UnsortedSegmentSum(data, segment_ids, num_segments)``) in place as
    ``ScatterND(zeros(num_segments, *data.shape[1:]), segment_ids[:, None], data, "add")``."""
    from onnx import TensorProto, helper
    from tf2onnx.graph_builder import GraphBuilder

    data, segments, num_segments = node.input
    build = GraphBuilder(ctx)
    count = ctx.make_node("Cast", [num_segments], attr={"to": TensorProto.INT64}).output[0]
    count = build.make_unsqueeze({"data": count, "axes": [0]})
    rest = build.make_slice({"data": ctx.make_node("Shape", [data]).output[0], "starts": [1],
                             "ends": [np.iinfo(np.int64).max], "axes": [0]})
    shape = ctx.make_node("Concat", [count, rest], attr={"axis": 0}).output[0]
    zero = helper.make_tensor("value", ctx.get_dtype(data), dims=[1], vals=[0])
    zeros = ctx.make_node("ConstantOfShape", [shape], attr={"value": zero}).output[0]
    index = ctx.make_node("Cast", [segments], attr={"to": TensorProto.INT64}).output[0]
    index = build.make_unsqueeze({"data": index, "axes": [-1]})
    node.type = "ScatterND"
    ctx.replace_inputs(node, [zeros, index, data])
    node.set_attr("reduction", "add")


def erfc_by_erf(ctx, node, name, args):
    """Rewrites ``node`` (``Erfc(x)``) in place as ``Sub(1, Erf(x))``."""
    from tf2onnx import utils

    x = node.input[0]
    erf = ctx.make_node("Erf", [x]).output[0]
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(x))
    one = ctx.make_const(utils.make_name("one"), np.array(1, dtype)).output[0]
    node.type = "Sub"
    ctx.replace_inputs(node, [one, erf])


#: For ``tf2onnx.convert.from_function(custom_op_handlers=...)``.
HANDLERS = {"UnsortedSegmentSum": (segment_sum_by_scatter, []), "Erfc": (erfc_by_erf, [])}
