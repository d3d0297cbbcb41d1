"""The export manifest, declared once (zoo.serving.manifest): what the exporters write is
what the runners check, by the same code; docs/export.md describes every field."""

import json
import os

import pytest

from zoo.serving import manifest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOOD = {"format_version": 1, "format": "onnx", "tokenizers": {"source": "source.model"},
        "shapes": {"max_length": 8}, "state": [], "memory": [], "decoding": {},
        "files": {}, "parity": None}


def test_write_then_read_gives_it_back(tmp_path):
    manifest.write(str(tmp_path), GOOD)
    assert manifest.read(str(tmp_path)) == GOOD


@pytest.mark.parametrize("change, message", [
    ({"format_version": 2}, "format_version 1"),
    ({"shapes": [8]}, "field 'shapes' must be dict"),
    ({"opset": "17"}, "field 'opset' must be int"),
    ({"parity": 0.5}, "field 'parity' must be dict or null"),
])
def test_a_bad_field_is_named(tmp_path, change, message):
    (tmp_path / "manifest.json").write_text(json.dumps({**GOOD, **change}))
    with pytest.raises(manifest.ExportFileError, match=message):
        manifest.read(str(tmp_path))


def test_a_missing_field_is_named(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(
        {k: v for k, v in GOOD.items() if k != "files"}))
    with pytest.raises(manifest.ExportFileError, match="field 'files' is missing"):
        manifest.read(str(tmp_path))


def test_a_writer_may_not_invent_fields_a_reader_may_skip_them(tmp_path):
    with pytest.raises(manifest.ExportFileError, match="not declared"):
        manifest.write(str(tmp_path), {**GOOD, "speed": 3})
    (tmp_path / "manifest.json").write_text(json.dumps({**GOOD, "newer_field": 1}))
    assert manifest.read(str(tmp_path))["newer_field"] == 1


def test_the_exports_write_declared_fields(tiny_exports):
    _, root = tiny_exports
    for fmt in ("onnx", "savedmodel", "litert"):
        written = json.load(open(root / fmt / "manifest.json"))
        assert set(written) <= set(manifest.FIELDS), fmt
        manifest.check(written, fmt, writing=True)


def test_docs_describe_every_field():
    text = open(os.path.join(ROOT, "docs", "export.md"), encoding="utf-8").read()
    assert [f for f in manifest.FIELDS if f"`{f}`" not in text] == []
