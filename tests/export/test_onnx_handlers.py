"""zoo's tf2onnx conversions (zoo.export.onnx_handlers): the segment sum as ScatterND-add,
numbers read by hand, duplicates and a crowded segment included; no index grid."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.export import onnx_handlers


def _convert(fn, signature, handlers):
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=17,
                                             custom_op_handlers=handlers)
    return proto


def _run(proto, feeds):
    import onnxruntime as ort

    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


@tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32),
                              tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)])
def _segment_sum(data, ids, n):
    return tf.math.unsorted_segment_sum(data, ids, n)


@pytest.mark.parametrize("handlers", [onnx_handlers.HANDLERS, None])
def test_segment_sum_adds_duplicates_and_leaves_empty_segments_zero(handlers):
    data = np.array([[1, 10], [2, 20], [4, 40], [8, 80], [16, 160]], "float32")
    ids = np.array([3, 0, 3, 3, 1], "int32")  # segment 3 three times, 2 and 4 empty
    proto = _convert(_segment_sum, _segment_sum.input_signature, handlers)
    out = _run(proto, {i.name: v for i, v in zip(proto.graph.input, (data, ids,
                                                                     np.array(5, "int32")))})
    # By hand: 0 <- row 1; 1 <- row 4; 3 <- rows 0, 2, 3 (1 + 4 + 8, 10 + 40 + 80).
    np.testing.assert_array_equal(out, [[2, 20], [16, 160], [0, 0], [13, 130], [0, 0]])
    ops = {n.op_type for n in proto.graph.node}
    if handlers:  # zoo's: one scatter onto zeros, no grid of the largest segment's size
        assert "ScatterND" in ops and "Unique" not in ops
        scatter = next(n for n in proto.graph.node if n.op_type == "ScatterND")
        assert [a.s for a in scatter.attribute if a.name == "reduction"] == [b"add"]
    else:  # tf2onnx's own: sorts, counts and gathers into the grid
        assert "Unique" in ops


@tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
def _gelu(x):
    return tf.nn.gelu(x, approximate=False)  # TensorFlow writes it with Erfc


def test_exact_gelu_converts_through_erf_and_matches_tensorflow():
    x = np.array([-30.0, -3.0, -0.5, 0.0, 0.5, 3.0], "float32")
    proto = _convert(_gelu, _gelu.input_signature, onnx_handlers.HANDLERS)
    ops = {n.op_type for n in proto.graph.node}
    assert "Erf" in ops and "Erfc" not in ops
    out = _run(proto, {proto.graph.input[0].name: x})
    # By hand: gelu(0) = 0, gelu(x) - gelu(-x) = x, gelu(-30) ~ 0.
    assert out[3] == 0.0 and abs(out[0]) < 1e-6
    np.testing.assert_allclose(out[4] - out[2], 0.5, atol=1e-6)
    np.testing.assert_allclose(out, _gelu(x).numpy(), atol=1e-6, rtol=0)


def test_an_unconverted_op_stops_the_export_by_name():
    from zoo.export.onnx import _check_operators

    proto = _convert(_gelu, _gelu.input_signature, None)  # tf2onnx leaves Erfc as is
    with pytest.raises(ValueError, match=r"greedy.onnx: no ONNX \(opset 17\) conversion for "
                                         r"the TensorFlow op\(s\) Erfc"):
        _check_operators(proto.graph, 17, "/x/greedy.onnx")
    _check_operators(_convert(_gelu, _gelu.input_signature, onnx_handlers.HANDLERS).graph,
                     17, "/x/greedy.onnx")


def test_one_walk_pruning_keeps_the_nodes_tf2onnx_keeps(monkeypatch):
    """zoo.export.onnx replaces tf2onnx's per-output walks by one walk: on a Loop graph with
    several outputs and dead nodes (inside and outside the body) both find the same nodes,
    every time tf2onnx's optimizers ask."""
    import tf2onnx
    from tf2onnx.graph import Graph

    from zoo.export import onnx as onnx_export

    tf2onnx_walks, compared = Graph.extract_sub_graph_nodes, []

    def both(self, outputs, input_checker=None, remove_unused_inputs=True):
        want = tf2onnx_walks(self, outputs, input_checker, remove_unused_inputs)
        got = onnx_export._reachable_nodes(self, outputs, input_checker, remove_unused_inputs)
        compared.append((len(want), set(got) == set(want) and len(got) == len(want)))
        return want

    def body(i, a, b):
        dead = a * 7.0  # noqa: F841 (unused inside the body)
        return i + 1, a * 2.0 + b, b - 1.0

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def loop(x):
        _, a, b = tf.while_loop(lambda i, a, b: i < 3, body, [tf.constant(0), x, x + 1.0])
        dead = tf.reduce_sum(a) * 5.0  # noqa: F841
        return {"a": tf.identity(a, name="a"), "ab": tf.identity(a + b, name="ab")}

    monkeypatch.setattr(Graph, "extract_sub_graph_nodes", both)
    tf2onnx.convert.from_function(loop, input_signature=loop.input_signature, opset=17)
    assert len(compared) > 10 and all(same for _, same in compared), compared
    assert max(n for n, _ in compared) > 5
