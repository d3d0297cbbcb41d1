"""The export manifest (``manifest.json``), declared once: its fields, their types and meaning.
``zoo.export`` writes it through :func:`write` and ``zoo.serving`` reads it through
:func:`read`, so what one writes the other checks the same way (docs/export.md describes each
field).

Example:
    >>> sorted(REQUIRED)[:3]
    ['decoding', 'files', 'format']
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, Tuple

VERSION = 1


class ExportFileError(ValueError):
    """An export directory's file is missing, unreadable or not what zoo wrote."""


@dataclasses.dataclass(frozen=True)
class Field:
    """One manifest field: its JSON types, whether every export has it, what it means."""

    name: str
    types: Tuple[type, ...]
    required: bool
    meaning: str


_NULL = type(None)
FIELDS: Dict[str, Field] = {f.name: f for f in (
    Field("format_version", (int,), True, "version of this schema; runners refuse others"),
    Field("format", (str,), True, "savedmodel, onnx, litert or ctranslate2: picks the runner"),
    Field("task", (str,), False, "the model's task (translation, summarization, ...)"),
    Field("model", (str,), False, "the model class"),
    Field("preset", (str, _NULL), False, "the preset it was built from"),
    Field("zoo_version", (str,), False, "the zoo that wrote it"),
    Field("tensorflow", (str,), False, "the TensorFlow that wrote it"),
    Field("tokenizers", (dict,), True, "source and target tokenizer files (SentencePiece or byte-level BPE)"),
    Field("vocab", (dict,), False, "source_size, target_size, special_ids"),
    Field("shapes", (dict,), True, "batch_size, source_length (null: dynamic), "
                                   "max_source_length, max_length"),
    Field("state", (list,), True, "the decoder state: name, shape, dtype"),
    Field("memory", (list,), True, "the constant per-source tensors: name, shape, dtype"),
    Field("decoding", (dict,), True, "strategies and the decoding settings of the export"),
    Field("quantization", (list,), False, "the weight variants written"),
    Field("files", (dict,), True, "the format's files"),
    Field("signatures", (dict,), False, "each signature's inputs and outputs"),
    Field("parity", (dict, _NULL), False, "null, or the verify report"),
    Field("per_request", (list,), False, "decoding settings the graphs take per call "
                                         "(ONNX, SavedModel, CTranslate2)"),
    Field("opset", (int,), False, "ONNX: the opset"),
    Field("ops", (str,), False, "LiteRT: the op set"),
    Field("requires", (list,), False, "the runtime packages"),
    Field("ctranslate2", (str,), False, "CTranslate2: the version that converted it"),
    Field("length_normalization", (str,), False, "CTranslate2: how it normalises scores"),
)}
REQUIRED = tuple(name for name, f in FIELDS.items() if f.required)


def check(manifest, where: str, writing: bool = False) -> dict:
    """The manifest, or an :class:`ExportFileError` naming ``where`` and the field. A
    manifest being written must hold declared fields only; one read may hold more (a newer
    zoo's)."""
    if not isinstance(manifest, dict) or manifest.get("format_version") != VERSION:
        raise ExportFileError(f"{where}: not a zoo export manifest of format_version "
                              f"{VERSION} (re-export the model with this zoo)")
    for name in REQUIRED:
        if name not in manifest:
            raise ExportFileError(f"{where}: field {name!r} is missing")
    for name, value in manifest.items():
        field = FIELDS.get(name)
        if field is None:
            if writing:
                raise ExportFileError(f"{where}: field {name!r} is not declared in "
                                      f"zoo.serving.manifest.FIELDS")
            continue
        if not isinstance(value, field.types) or isinstance(value, bool):
            kinds = " or ".join("null" if t is _NULL else t.__name__ for t in field.types)
            raise ExportFileError(f"{where}: field {name!r} must be {kinds}, got "
                                  f"{type(value).__name__}")
    return manifest


def write(directory: str, manifest: dict) -> None:
    """Checks ``manifest`` and writes ``directory/manifest.json`` through a temporary file and
    a rename."""
    final = os.path.join(directory, "manifest.json")
    check(manifest, final, writing=True)
    with open(final + ".tmp", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
    os.replace(final + ".tmp", final)


def read(directory: str) -> dict:
    """The checked ``manifest.json`` of an export directory."""
    path = os.path.join(directory, "manifest.json")
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such export directory")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{directory} is not a zoo export (no manifest.json; write one "
                                f"with zoo export)")
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except json.JSONDecodeError as e:
        raise ExportFileError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    except UnicodeDecodeError:
        raise ExportFileError(f"{path}: not UTF-8 text") from None
    return check(manifest, path)
