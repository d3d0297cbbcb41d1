"""zoo's replacements for tf2onnx internals during conversion (export/onnx.py)."""

import numpy as np
import pytest

tf2onnx_graph = pytest.importorskip("tf2onnx.graph")

from zoo.export.onnx import _update_proto_fresh  # noqa: E402

MB = 1 << 20


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def _graph_with_weights(megabytes):
    g = tf2onnx_graph.Graph([], opset=17)
    w = g.make_const("w", np.ones(megabytes * MB // 4, np.float32))
    node = g.make_node("Relu", [w.output[0]], name="relu")
    g.add_graph_output(node.output[0])
    return g, w


def test_fresh_protos_hold_what_tf2onnx_writes():
    theirs, _ = _graph_with_weights(1)
    ours, _ = _graph_with_weights(1)
    for node in theirs.get_nodes():
        node.update_proto()
    for node in ours.get_nodes():
        _update_proto_fresh(node)
    assert [n.op.SerializeToString() for n in ours.get_nodes()] == \
        [n.op.SerializeToString() for n in theirs.get_nodes()]


@pytest.mark.parametrize("update,grows", [(tf2onnx_graph.Node.update_proto, True),
                                          (_update_proto_fresh, False)])
def test_optimizer_passes_keep_no_copies_of_the_weights(update, grows):
    """Every tf2onnx optimizer pass rewrites each node's proto: in place, each pass kept a
    copy of the weights (a bart-base export ran out of 24 GB); a fresh proto frees it."""
    _, w = _graph_with_weights(16)
    update(w)
    before = _rss()
    for _ in range(8):
        update(w)
    growth = (_rss() - before) / MB
    assert (growth > 64) if grows else (growth < 32), growth
