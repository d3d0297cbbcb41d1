"""The code's shape (issue 34): no function outside tests/ and bench/ over 80 lines."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT = 80


def _functions():
    for top in ("zoo", "export", "serving"):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(folder, f)
                    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                            yield (os.path.relpath(path, ROOT), node.name,
                                   node.end_lineno - node.lineno + 1)


def test_no_function_is_over_80_lines():
    long = [f"{path}:{name} ({n} lines)" for path, name, n in _functions() if n > LIMIT]
    assert long == []


def test_the_scan_sees_the_code():
    assert sum(1 for _ in _functions()) > 300
