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
