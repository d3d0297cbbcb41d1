"""int8 ONNX exports (onnxruntime's dynamic quantization, the decoding loops included): the
manifest records it, every graph holds int8 products, and a fresh process without
TensorFlow gives the same tokens as the int8 runner here."""

import json
import subprocess
import sys

import pytest

from zoo.export import export
from zoo.serving import load

TEXTS = ["Tengo hambre.", "¿Dónde está la estación de tren?", "Hola."]
_RUN = """
import json, sys
sys.modules["tensorflow"] = None
from zoo.serving import load
r = load(sys.argv[1])
print(json.dumps([r.generate_text(json.loads(sys.argv[2])),
                  r.generate_text(json.loads(sys.argv[2]), "beam")]))
"""


@pytest.mark.slow  # CI time on 2 cores (docs/RESULTS.md, Test suite)
def test_int8_onnx_export_loads_without_tensorflow_and_matches(tiny_exports, tmp_path):
    model, root = tiny_exports
    manifest = export(model, str(tmp_path / "int8"), "onnx", beam_size=2,
                      quantization="int8")
    assert manifest["quantization"] == ["int8"]
    for name in ("encoder.onnx", "decoder_step.onnx", "greedy.onnx", "beam.onnx"):
        top, loops = _int8_ops(str(tmp_path / "int8" / name))
        # int8 products at the top level or in the loop bodies (sizes: bench, not a test:
        # this model is too small for its per-channel scales to pay).
        assert top or loops, name
    assert _int8_ops(str(tmp_path / "int8" / "greedy.onnx"))[1]  # inside the decoding loop
    here = load(str(tmp_path / "int8"))
    want = [here.generate_text(TEXTS), here.generate_text(TEXTS, "beam")]
    run = subprocess.run([sys.executable, "-c", _RUN, str(tmp_path / "int8"),
                          json.dumps(TEXTS)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == want


def _int8_ops(path):
    """``(top-level, inside subgraphs)`` counts of int8 product nodes of an ONNX file."""
    import onnx

    int8 = {"MatMulInteger", "DynamicQuantizeMatMul", "ConvInteger", "QLinearMatMul"}

    def count(graph, depth):
        top = sub = 0
        for node in graph.node:
            if node.op_type in int8:
                top, sub = (top + 1, sub) if depth == 0 else (top, sub + 1)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    t, s_ = count(attr.g, depth + 1)
                    sub += t + s_
        return top, sub

    return count(onnx.load(path).graph, 0)
