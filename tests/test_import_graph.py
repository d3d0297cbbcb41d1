"""Dependencies flow one way: attention -> layers -> models -> recipes/export -> cli; decoding
knows only the step protocol; serving imports no model code (checked on the source, then by
serving an ONNX export with TensorFlow made unimportable)."""

import ast
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Lower levels never import higher ones (imports inside functions count too).
LEVELS = {"zoo.registry": 0, "zoo.inputs": 0, "zoo.tasks": 0, "zoo.files": 0,
          "zoo.metrics": 0, "zoo.attention": 1, "zoo.decoding": 1, "zoo.data": 1,
          "zoo.training": 2, "zoo.layers": 2, "zoo.plot": 2, "zoo.models": 3,
          "zoo.recipes": 4, "zoo.export": 4, "zoo.cli": 5}
SERVING_MAY_IMPORT = ("zoo.serving", "zoo.inputs")


def _module(path):
    name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".").replace(".__init__", "")
    return "zoo." + name if name.split(".")[0] in ("export", "serving") else name


def _graph():
    edges = {}
    for top in ("zoo", "export", "serving"):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if not f.endswith(".py"):
                    continue
                path = os.path.join(folder, f)
                found = set()
                for node in ast.walk(ast.parse(open(path).read())):
                    if isinstance(node, ast.Import):
                        found |= {a.name for a in node.names if a.name.startswith("zoo")}
                    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                            "zoo"):
                        found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
                edges[_module(path)] = found
    return edges


def _level(name):
    hits = [lv for prefix, lv in LEVELS.items() if name == prefix or
            name.startswith(prefix + ".")]
    return max(hits) if hits else None


def test_no_module_imports_upward():
    upward = [(m, i) for m, imports in _graph().items() for i in imports
              if _level(m) is not None and _level(i) is not None and _level(i) > _level(m)]
    assert upward == []


def test_cli_is_imported_by_nothing_and_serving_by_no_model_code():
    graph = _graph()
    assert [m for m, imports in graph.items()
            if any(i == "zoo.cli" or i.startswith("zoo.cli.") for i in imports)
            and m != "zoo.cli"] == []
    for m, imports in graph.items():
        if m.startswith("zoo.serving"):
            bad = [i for i in imports if i != "zoo" and not i.startswith(SERVING_MAY_IMPORT)]
            assert bad == [], m


def test_no_cycles_between_packages():
    def package(name):
        parts = name.split(".")
        return ".".join(parts[:2]) if len(parts) > 1 else name

    deps = {}
    for m, imports in _graph().items():
        deps.setdefault(package(m), set()).update(
            package(i) for i in imports if package(i) != package(m) and i != "zoo")
    seen, stack = set(), []

    def visit(node):
        assert node not in stack, f"cycle: {' -> '.join(stack + [node])}"
        if node in seen:
            return
        stack.append(node)
        for nxt in sorted(deps.get(node, ())):
            visit(nxt)
        stack.pop()
        seen.add(node)

    for node in sorted(deps):
        visit(node)


_SERVE = """
import json, sys
sys.modules["tensorflow"] = None  # import tensorflow now raises ImportError
sys.modules["keras"] = None
from zoo.serving import load
runner = load(sys.argv[1])
print(json.dumps(runner.generate_text(["Hola.", "Tengo hambre."])))
"""


def test_serving_runs_an_onnx_export_with_tensorflow_unimportable(tiny_exports):
    model, root = tiny_exports
    run = subprocess.run([sys.executable, "-c", _SERVE, str(root / "onnx")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got == model.generate_text(["Hola.", "Tengo hambre."])
