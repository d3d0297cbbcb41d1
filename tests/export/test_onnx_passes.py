"""The ONNX graph passes applied after tf2onnx, on small hand-built graphs run by onnxruntime."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from zoo.export.onnx_passes import (collapse_shape_chains, drop_identity_ops, drop_index_wraps,
                              fold_double_negations, fold_loop_constants,
                              fold_scales_into_weights, fold_selects, fuse_layer_norms,
                              hoist_invariant_nodes, hoist_loop_invariants, merge_duplicates)


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


def _wrapped_gather_model(zero=0, op="Gather"):
    """Keras's take as tf2onnx writes it: Gather(x, Where(Less(i, 0), i + n, i)), with the
    index cast on its way in as tf2onnx does; ``zero`` is the constant of the test."""
    i64, f = TensorProto.INT64, TensorProto.FLOAT
    nodes = [helper.make_node("Cast", ["i"], ["i64"], to=i64),
             helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "axis0"], ["n"]),
             helper.make_node("Less", ["i64", "zero"], ["negative"]),
             helper.make_node("Add", ["i", "n"], ["wrapped"]),
             helper.make_node("Where", ["negative", "wrapped", "i"], ["index"]),
             helper.make_node(op, ["x", "index"], ["out"], axis=0)]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", f, [3, 2]),
         helper.make_tensor_value_info("i", i64, [4] if op == "Gather" else [4, 2])],
        [helper.make_tensor_value_info("out", f, [4, 2])],
        initializer=[helper.make_tensor("zero", i64, [], [zero]),
                     helper.make_tensor("axis0", i64, [], [0]),
                     helper.make_tensor("unused", f, [1], [1.0])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("op", ["Gather", "GatherElements"])
def test_dropping_index_wraps_keeps_negative_indices_right(op):
    x = np.array([[0.0, 1.0], [10.0, 11.0], [20.0, 21.0]], np.float32)
    i = (np.array([2, -1, 0, -3]) if op == "Gather"
         else np.array([[2, 1], [-1, 0], [0, -2], [-3, 2]]))
    # By hand: row -1 is row 2, row -3 is row 0 (column-wise for GatherElements).
    expected = (x[[2, 2, 0, 0]] if op == "Gather"
                else np.array([[20.0, 11.0], [20.0, 1.0], [0.0, 11.0], [0.0, 21.0]]))
    model = _wrapped_gather_model(op=op)
    np.testing.assert_array_equal(_run(model, {"x": x, "i": i})[0], expected)
    assert drop_index_wraps(model.graph) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == [op]  # the wrap's kernels were pruned
    assert [t.name for t in model.graph.initializer] == []  # and the constants nobody reads
    np.testing.assert_array_equal(_run(model, {"x": x, "i": i})[0], expected)


def test_a_where_that_is_not_a_wrap_is_left_alone():
    model = _wrapped_gather_model(zero=1)  # where(i < 1, ...) is not the negative wrap
    assert drop_index_wraps(model.graph) == 0
    assert len(model.graph.node) == 7


def _layer_norm_model(mean_op="ReduceMean", axis=-1):
    """Keras's layer normalisation as tf2onnx writes it: ``s = gamma / sqrt(var + eps)``,
    ``y = x * s + (beta - mean * s)``, over the last axis of a (2, 3, 4) input."""
    f = TensorProto.FLOAT

    def mean(inp, out):
        if mean_op == "GlobalAveragePool":
            return helper.make_node(mean_op, [inp], [out])
        return helper.make_node(mean_op, [inp], [out], axes=[axis], keepdims=1)
    nodes = [mean("x", "m"),
             helper.make_node("Sub", ["x", "m"], ["d"]),
             helper.make_node("Mul", ["d", "d"], ["d2"]),
             mean("d2", "var"),
             helper.make_node("Add", ["var", "eps"], ["ve"]),
             helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Reciprocal", ["sd"], ["inv"]),
             helper.make_node("Mul", ["inv", "gamma"], ["s"]),
             helper.make_node("Mul", ["x", "s"], ["xs"]),
             helper.make_node("Neg", ["m"], ["negm"]),
             helper.make_node("Mul", ["negm", "s"], ["ms"]),
             helper.make_node("Add", ["ms", "beta"], ["shift"]),
             helper.make_node("Add", ["xs", "shift"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", f, [2, 3, 4])],
        [helper.make_tensor_value_info("y", f, [2, 3, 4])],
        initializer=[helper.make_tensor("eps", f, [], [1e-3]),
                     helper.make_tensor("gamma", f, [1, 1, 4], [1.0, 2.0, 0.5, -1.0]),
                     helper.make_tensor("beta", f, [1, 1, 4], [0.0, 1.0, -1.0, 3.0])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("mean_op", ["ReduceMean", "GlobalAveragePool"])
def test_fusing_layer_norms_gives_one_kernel_and_the_same_values(mean_op):
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4) ** 1.5
    # By hand: (x - mean) / sqrt(var + eps) * gamma + beta over the last axis.
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    expected = (x - m) / np.sqrt(v + 1e-3) * [1.0, 2.0, 0.5, -1.0] + [0.0, 1.0, -1.0, 3.0]
    model = _layer_norm_model(mean_op)
    np.testing.assert_allclose(_run(model, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)
    assert fuse_layer_norms(model.graph) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["LayerNormalization"]
    np.testing.assert_allclose(_run(model, {"x": x})[0], expected, rtol=1e-5, atol=1e-5)


def test_a_mean_over_another_axis_is_not_fused():
    model = _layer_norm_model(axis=1)  # normalises over the middle axis: not a LayerNorm
    assert fuse_layer_norms(model.graph) == 0
    assert len(model.graph.node) == 13


def test_folding_loop_constants_computes_a_weights_reshape_once():
    """A body that reshapes an outer-scope weight every iteration (what tf2onnx leaves once
    the weights are hoisted): acc_{i+1} = acc_i @ reshape(w_flat, (2, 2)), 3 iterations."""
    f = TensorProto.FLOAT
    body = helper.make_graph(
        [helper.make_node("Reshape", ["w_flat", "shape"], ["w"]),
         helper.make_node("Cast", ["w"], ["w32"], to=f),
         helper.make_node("MatMul", ["acc_in", "w32"], ["acc_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", f, [1, 2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", f, [1, 2])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "acc0"], ["acc"], body=body)], "g",
        [helper.make_tensor_value_info("acc0", f, [1, 2])],
        [helper.make_tensor_value_info("acc", f, [1, 2])],
        initializer=[helper.make_tensor("trips", TensorProto.INT64, [], [3]),
                     helper.make_tensor("cond", TensorProto.BOOL, [], [True]),
                     helper.make_tensor("w_flat", f, [4], [0.0, 1.0, 1.0, 0.0]),
                     helper.make_tensor("shape", TensorProto.INT64, [2], [2, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    feeds = {"acc0": np.array([[1.0, 2.0]], np.float32)}
    # By hand: the weight swaps the two entries; three swaps: [2, 1].
    np.testing.assert_array_equal(_run(model, feeds)[0], [[2.0, 1.0]])
    assert fold_loop_constants(model.graph) == 2  # the reshape, then the cast of its result
    onnx.checker.check_model(model)
    inner = model.graph.node[0].attribute[0].g
    assert [n.op_type for n in inner.node] == ["MatMul", "Identity"]
    assert [t.name for t in model.graph.initializer] == ["trips", "cond"]  # w_flat unread now
    np.testing.assert_array_equal(_run(model, feeds)[0], [[2.0, 1.0]])


def _model(nodes, inputs, outputs, initializer=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializer))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _i64(name, values):
    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


def test_collapsing_shape_chains_gives_one_reshape_per_chain():
    """What Keras's Dense on a (batch, 1, dim) step looks like in ONNX: Unsqueeze -> Reshape
    to 2-D -> MatMul -> Reshape back -> Squeeze; and a Reshape whose shape copies an input
    dimension (a 0 entry), which must stay as it is."""
    f = TensorProto.FLOAT
    nodes = [helper.make_node("Unsqueeze", ["x", "ax1"], ["x3"]),  # (2, 1, 3)
             helper.make_node("Reshape", ["x3", "flat"], ["x2"]),  # (2, 3)
             helper.make_node("MatMul", ["x2", "w"], ["y2"]),  # (2, 4)
             helper.make_node("Reshape", ["y2", "back"], ["y3"]),  # (2, 1, 4)
             helper.make_node("Squeeze", ["y3", "ax1"], ["y"]),  # (2, 4)
             helper.make_node("Unsqueeze", ["y", "ax1"], ["z3"]),
             helper.make_node("Reshape", ["z3", "copy"], ["z"])]  # (0, -1): left alone
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    model = _model(nodes, [helper.make_tensor_value_info("x", f, [2, 3])],
                   [helper.make_tensor_value_info("y", f, [2, 4]),
                    helper.make_tensor_value_info("z", f, [2, 4])],
                   [_i64("ax1", [1]), _i64("flat", [-1, 3]), _i64("back", [-1, 1, 4]),
                    _i64("copy", [0, -1]), helper.make_tensor("w", f, [3, 4], w.ravel())])
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]], np.float32)
    expected = x @ w  # by hand: the chain only reshapes around one product
    assert collapse_shape_chains(model.graph) == 2  # the first Unsqueeze, the last Reshape
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Reshape", "MatMul", "Reshape",
                                                     "Unsqueeze", "Reshape"]
    y, z = _run(model, {"x": x})
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    np.testing.assert_allclose(z, expected, rtol=1e-6)


def test_a_squeeze_of_an_axis_that_is_not_one_is_not_collapsed():
    f = TensorProto.FLOAT
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["x3"]),
             helper.make_node("Squeeze", ["x3", "ax"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", f, [6])],
                   [helper.make_tensor_value_info("y", f, None)],
                   [_i64("shape", [2, 3, 1]), _i64("ax", [0])])  # axis 0 has size 2
    assert collapse_shape_chains(model.graph) == 0
    assert [n.op_type for n in model.graph.node] == ["Reshape", "Squeeze"]


def test_merging_duplicates_keeps_one_of_each_and_the_same_values():
    """The same mask broadcast and cast computed once per layer, with the axes constant
    repeated under another name (as tf2onnx writes it); a random op is never merged."""
    f, b = TensorProto.FLOAT, TensorProto.BOOL
    nodes = [helper.make_node("Unsqueeze", ["m", "axes_a"], ["m1"]),
             helper.make_node("Cast", ["m1"], ["c1"], to=f),
             helper.make_node("Unsqueeze", ["m", "axes_b"], ["m2"]),  # same value, new name
             helper.make_node("Cast", ["m2"], ["c2"], to=f),
             helper.make_node("Mul", ["x", "c1"], ["y1"]),
             helper.make_node("Mul", ["x", "c2"], ["y2"]),
             helper.make_node("Add", ["y1", "y2"], ["y"]),
             helper.make_node("RandomUniformLike", ["x"], ["r1"], seed=1.0),
             helper.make_node("RandomUniformLike", ["x"], ["r2"], seed=1.0),
             helper.make_node("Sub", ["r1", "r2"], ["r"])]
    model = _model(nodes, [helper.make_tensor_value_info("m", b, [2]),
                           helper.make_tensor_value_info("x", f, [3, 2])],
                   [helper.make_tensor_value_info("y", f, [3, 2]),
                    helper.make_tensor_value_info("c2", f, [1, 2]),  # a merged node's output
                    helper.make_tensor_value_info("r", f, [3, 2])],
                   [_i64("axes_a", [0]), _i64("axes_b", [0])])
    feeds = {"m": np.array([True, False]), "x": np.arange(6, dtype=np.float32).reshape(3, 2)}
    assert merge_duplicates(model.graph) == 3  # the second Unsqueeze, Cast and Mul
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Unsqueeze") == 1 and ops.count("Cast") == 1 and ops.count("Mul") == 1
    assert ops.count("RandomUniformLike") == 2
    y, c2, _ = _run(model, feeds)
    np.testing.assert_array_equal(y, feeds["x"] * [2.0, 0.0])  # by hand: x * mask, twice
    np.testing.assert_array_equal(c2, [[1.0, 0.0]])


def test_unsqueezes_of_unsqueezes_become_one():
    f = TensorProto.FLOAT
    nodes = [helper.make_node("Unsqueeze", ["x", "a"], ["x1"]),  # (2, 3) -> (2, 1, 3)
             helper.make_node("Unsqueeze", ["x1", "b"], ["y"])]  # -> (1, 2, 1, 3, 1)
    model = _model(nodes, [helper.make_tensor_value_info("x", f, [2, 3])],
                   [helper.make_tensor_value_info("y", f, None)],
                   [_i64("a", [1]), _i64("b", [0, 4])])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert collapse_shape_chains(model.graph) == 1
    assert [n.op_type for n in model.graph.node] == ["Unsqueeze"]
    (y,) = _run(model, {"x": x})
    np.testing.assert_array_equal(y, x[None, :, None, :, None])  # by hand


def test_folding_a_scale_into_the_projection_weights():
    """q = reshape(x @ W + b) * c, as attention scales its queries: the scale moves into W
    and b; a scale whose product is read elsewhere too stays."""
    f = TensorProto.FLOAT
    w = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["p"]),
             helper.make_node("Add", ["p", "b"], ["pb"]),
             helper.make_node("Reshape", ["pb", "shape"], ["heads"]),
             helper.make_node("Mul", ["heads", "c"], ["q"]),
             helper.make_node("MatMul", ["x", "w"], ["p2"]),
             helper.make_node("Mul", ["p2", "c"], ["q2"]),
             helper.make_node("Add", ["q2", "p2"], ["r"])]  # p2 read twice: not folded
    model = _model(nodes, [helper.make_tensor_value_info("x", f, [1, 2])],
                   [helper.make_tensor_value_info("q", f, [1, 2, 1]),
                    helper.make_tensor_value_info("r", f, [1, 2])],
                   [helper.make_tensor("w", f, [2, 2], w.ravel()),
                    helper.make_tensor("b", f, [2], [1.0, -1.0]),
                    helper.make_tensor("c", f, [], [0.25]), _i64("shape", [1, 2, 1])])
    x = np.array([[2.0, 4.0]], np.float32)
    # By hand: x @ w = [4, 8]; + b = [5, 7]; * 0.25 = [1.25, 1.75].
    assert fold_scales_into_weights(model.graph) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node].count("Mul") == 1
    q, r = _run(model, {"x": x})
    np.testing.assert_allclose(q.reshape(-1), [1.25, 1.75], rtol=1e-6)
    np.testing.assert_allclose(r, [[5.0, 10.0]], rtol=1e-6)  # [4, 8] * 1.25


def test_folding_double_negations_keeps_the_value():
    b = TensorProto.BOOL
    nodes = [helper.make_node("Not", ["x"], ["n1"]),
             helper.make_node("Not", ["n1"], ["n2"]),  # == x
             helper.make_node("And", ["n2", "y"], ["out"]),
             helper.make_node("Not", ["y"], ["single"])]  # one negation: kept
    model = _model(nodes, [helper.make_tensor_value_info("x", b, [4]),
                           helper.make_tensor_value_info("y", b, [4])],
                   [helper.make_tensor_value_info("out", b, [4]),
                    helper.make_tensor_value_info("single", b, [4])])
    x = np.array([True, True, False, False])
    y = np.array([True, False, True, False])
    assert fold_double_negations(model.graph) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["And", "Not"]
    out, single = _run(model, {"x": x, "y": y})
    np.testing.assert_array_equal(out, [True, False, False, False])  # x and y, by hand
    np.testing.assert_array_equal(single, [False, True, False, True])


def _invariant_loop_model():
    """acc_{i+1} = acc_i + Cast(Unsqueeze(m)) * s for 3 iterations: the Unsqueeze and the
    Cast read only the outer mask m (and a body constant), the Mul reads a carried value."""
    f, b = TensorProto.FLOAT, TensorProto.BOOL
    body = helper.make_graph(
        [helper.make_node("Unsqueeze", ["m", "axes"], ["m2"]),  # (1, 3)
         helper.make_node("Cast", ["m2"], ["mf"], to=f),
         helper.make_node("Mul", ["mf", "s_in"], ["step"]),
         helper.make_node("Add", ["acc_in", "step"], ["acc_out"]),
         helper.make_node("Mul", ["s_in", "two"], ["s_out"]),
         helper.make_node("RandomUniformLike", ["acc_in"], ["noise"]),  # random: stays
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", b, []),
         helper.make_tensor_value_info("acc_in", f, [1, 3]),
         helper.make_tensor_value_info("s_in", f, [])],
        [helper.make_tensor_value_info("cond_out", b, []),
         helper.make_tensor_value_info("acc_out", f, [1, 3]),
         helper.make_tensor_value_info("s_out", f, []),
         helper.make_tensor_value_info("noise", f, [1, 3])],
        initializer=[_i64("axes", [0]), helper.make_tensor("two", f, [], [2.0])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trips", "cond", "acc0", "s0"], ["acc", "s", "noises"],
                          body=body)],
        "g",
        [helper.make_tensor_value_info("m", b, [3]),
         helper.make_tensor_value_info("acc0", f, [1, 3]),
         helper.make_tensor_value_info("s0", f, [])],
        [helper.make_tensor_value_info("acc", f, [1, 3])],
        initializer=[helper.make_tensor("trips", TensorProto.INT64, [], [3]),
                     helper.make_tensor("cond", b, [], [True])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_hoisting_invariant_nodes_moves_them_in_front_of_the_loop():
    feeds = {"m": np.array([True, False, True]), "acc0": np.zeros((1, 3), np.float32),
             "s0": np.array(1.0, np.float32)}
    # By hand: s = 1, 2, 4 over the iterations; acc = (1 + 2 + 4) * mask = [7, 0, 7].
    expected = np.array([[7.0, 0.0, 7.0]], np.float32)
    model = _invariant_loop_model()
    np.testing.assert_array_equal(_run(model, feeds)[0], expected)
    assert hoist_invariant_nodes(model.graph) == 2
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Unsqueeze", "Cast", "Loop"]
    body = model.graph.node[2].attribute[0].g
    assert [n.op_type for n in body.node] == ["Mul", "Add", "Mul", "RandomUniformLike",
                                              "Identity"]
    assert [t.name for t in body.initializer] == ["two"]  # "axes" moved out with its reader
    np.testing.assert_array_equal(_run(model, feeds)[0], expected)
    assert hoist_invariant_nodes(model.graph) == 0


def test_a_cast_whose_input_the_body_also_reads_stays_in_the_body(capfd):
    """onnxruntime warns at every session start when a loop body reads both an outer value
    and an outer Cast of it (its optimizer checks whether it can fold the Cast away and
    cannot rename inside the subgraph): such a Cast is left in the body."""
    model = _invariant_loop_model()
    body = model.graph.node[0].attribute[0].g
    body.node.insert(3, helper.make_node("Where", ["m2", "step", "zero"], ["masked"]))
    body.node[4].input[1] = "masked"  # acc_out = acc_in + where(m2, step, 0)
    body.initializer.append(helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]))
    feeds = {"m": np.array([True, False, True]), "acc0": np.zeros((1, 3), np.float32),
             "s0": np.array(1.0, np.float32)}
    expected = np.array([[7.0, 0.0, 7.0]], np.float32)  # as before: the select changes nothing
    assert hoist_invariant_nodes(model.graph) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Unsqueeze", "Loop"]
    assert model.graph.node[1].attribute[0].g.node[0].op_type == "Cast"
    capfd.readouterr()
    np.testing.assert_array_equal(_run(model, feeds)[0], expected)
    assert "onnxruntime" not in capfd.readouterr().err


def test_dropping_identity_ops_removes_only_what_returns_its_input():
    f, b = TensorProto.FLOAT, TensorProto.BOOL
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["r1"]),  # (n, 3) -> [-1, 3]: same
             helper.make_node("Reshape", ["r1", "other"], ["r2"]),  # -> [3, -1]: kept
             helper.make_node("TopK", ["x", "one"], ["v", "ix"], axis=1),  # (n, 1)
             helper.make_node("Slice", ["v", "s0", "s1", "ax1"], ["col"]),  # all of axis 1
             helper.make_node("Slice", ["x", "s0", "s1", "ax1"], ["first"]),  # 1 of 3: kept
             helper.make_node("Cast", ["col"], ["colf"], to=f),  # float -> float
             helper.make_node("Cast", ["m"], ["mf"], to=f),  # bool -> float: kept
             helper.make_node("Add", ["colf", "mf"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", f, ["n", 3]),
                           helper.make_tensor_value_info("m", b, ["n", 1])],
                   [helper.make_tensor_value_info("r2", f, [3, "k"]),
                    helper.make_tensor_value_info("first", f, ["n", 1]),
                    helper.make_tensor_value_info("y", f, ["n", 1])],
                   [_i64("flat", [-1, 3]), _i64("other", [3, -1]), _i64("one", [1]),
                    _i64("s0", [0]), _i64("s1", [1]), _i64("ax1", [1])])
    x = np.array([[1.0, 5.0, 2.0], [4.0, -1.0, 0.0]], np.float32)
    m = np.array([[True], [False]])
    assert drop_identity_ops(model) == 3
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Reshape", "TopK", "Slice", "Cast", "Add"]
    r2, first, y = _run(model, {"x": x, "m": m})
    np.testing.assert_array_equal(r2, x.reshape(3, -1))
    np.testing.assert_array_equal(first, [[1.0], [4.0]])
    np.testing.assert_array_equal(y, [[6.0], [4.0]])  # row maxima 5 and 4, plus the mask


def test_dropping_identity_ops_leaves_a_slice_it_cannot_check():
    """A whole-axis slice with its axes left out goes; one on an axis the tensor does not
    have stays, without an error (onnxruntime would refuse it, not the pass)."""
    f = TensorProto.FLOAT
    nodes = [helper.make_node("Slice", ["x", "s0", "big"], ["a"]),  # default axes (0,): all
             helper.make_node("Add", ["a", "x"], ["y"]),
             helper.make_node("Slice", ["x", "s0", "big", "ax5"], ["b"]),  # no axis 5
             helper.make_node("Neg", ["b"], ["z"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", f, [2, 3])],
                   [helper.make_tensor_value_info("y", f, [2, 3]),
                    helper.make_tensor_value_info("z", f, None)],
                   [_i64("s0", [0]), _i64("big", [9]), _i64("ax5", [5])])
    assert drop_identity_ops(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Add", "Slice", "Neg"]
    assert list(model.graph.node[0].input) == ["x", "x"]
