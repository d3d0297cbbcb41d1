"""The ONNX graph passes applied after tf2onnx, on small hand-built graphs run by onnxruntime."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from zoo.export.onnx import fold_selects, hoist_loop_invariants


def _run(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _loop_model():
    """acc_{i+1} = acc_i @ w + b for 3 iterations; w and b are carried through unchanged,
    the way tf2onnx carries a while loop's captured weights."""
    f = TensorProto.FLOAT
    body = helper.make_graph(
        [helper.make_node("MatMul", ["acc_in", "w_in"], ["prod"]),
         helper.make_node("Add", ["prod", "b_in"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", f, [1, 2]),
         helper.make_tensor_value_info("w_in", f, [2, 2]),
         helper.make_tensor_value_info("b_in", f, [1, 2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", f, [1, 2]),
         helper.make_tensor_value_info("w_in", f, [2, 2]),  # passed through
         helper.make_tensor_value_info("b_in", f, [1, 2])])  # passed through
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "acc0", "w", "b"],
                          ["acc", "w_final", "b_final"], body=body),
         helper.make_node("Add", ["acc", "b_final"], ["out"])],  # reads a final invariant
        "g",
        [helper.make_tensor_value_info("acc0", f, [1, 2]),
         helper.make_tensor_value_info("w", f, [2, 2]),
         helper.make_tensor_value_info("b", f, [1, 2])],
        [helper.make_tensor_value_info("out", f, [1, 2])],
        initializer=[helper.make_tensor("trips", TensorProto.INT64, [], [3]),
                     helper.make_tensor("cond", TensorProto.BOOL, [], [True])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_hoisting_loop_invariants_keeps_the_result_and_drops_the_carries():
    acc0 = np.array([[1.0, 2.0]], np.float32)
    w = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)  # swaps the two entries
    b = np.array([[10.0, 0.0]], np.float32)
    # By hand: [1, 2] -> [12, 1] -> [11, 12] -> [22, 11]; then + b = [32, 11].
    expected = np.array([[32.0, 11.0]], np.float32)
    model = _loop_model()
    feeds = {"acc0": acc0, "w": w, "b": b}
    np.testing.assert_array_equal(_run(model, feeds)[0], expected)
    assert hoist_loop_invariants(model.graph) == 2
    onnx.checker.check_model(model)
    loop = model.graph.node[0]
    assert list(loop.input) == ["trips", "cond", "acc0"]
    assert list(loop.output) == ["acc"]
    body = loop.attribute[0].g
    assert [i.name for i in body.input] == ["i", "cond_in", "acc_in"]
    assert list(body.node[0].input) == ["acc_in", "w"]  # an outer-scope read now
    np.testing.assert_array_equal(_run(model, feeds)[0], expected)
    assert hoist_loop_invariants(model.graph) == 0  # nothing left to hoist


def _select_model():
    """tf2onnx's arithmetic form of where(c, x, y): Cast(c) * x + y * Cast(Not(c))."""
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [helper.make_node("Cast", ["c"], ["pos"], to=f),
         helper.make_node("Not", ["c"], ["notc"]),
         helper.make_node("Cast", ["notc"], ["neg"], to=f),
         helper.make_node("Mul", ["pos", "x"], ["m1"]),
         helper.make_node("Mul", ["y", "neg"], ["m2"]),
         helper.make_node("Add", ["m1", "m2"], ["out"])],
        "g",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [3]),
         helper.make_tensor_value_info("x", f, [3]),
         helper.make_tensor_value_info("y", f, [3])],
        [helper.make_tensor_value_info("out", f, [3])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_folding_selects_gives_one_where_and_an_exact_select():
    feeds = {"c": np.array([True, False, True]),
             "x": np.array([1.0, 2.0, 3.0], np.float32),
             "y": np.array([-np.inf, 5.0, 6.0], np.float32)}
    model = _select_model()
    before = _run(model, feeds)[0]
    assert np.isnan(before[0])  # -inf * 0: the arithmetic form is not a select
    assert fold_selects(model.graph) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Where"]  # the rest was pruned
    np.testing.assert_array_equal(_run(model, feeds)[0], [1.0, 5.0, 3.0])


@pytest.mark.parametrize("shared", [True, False])
def test_folding_keeps_nodes_still_read_elsewhere(shared):
    model = _select_model()
    if shared:  # another output reads the Cast: it must survive the pruning
        model.graph.output.append(helper.make_tensor_value_info("pos", TensorProto.FLOAT, [3]))
    fold_selects(model.graph)
    ops = sorted(n.op_type for n in model.graph.node)
    assert ops == (["Cast", "Where"] if shared else ["Where"])
