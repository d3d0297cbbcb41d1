"""zoo.export: trained zoo models to deployable artifacts, each checked against Keras.

Installed as ``zoo.export`` (the repository keeps it at the top level, beside ``zoo/``). It
depends on the models' public endpoints only (``encode``, ``prepare_memory``,
``initial_state``, ``decode_step`` and ``decode``, the decoding graph). One core
(``zoo.export.core.ExportCore``) holds the checks, the flat state/memory layout, the decoding
graphs and the manifest schema; each format writes its files:

* ``export_savedmodel`` - TensorFlow SavedModel, strings in and out.
* ``zoo.export.onnx.export_onnx`` - ONNX graphs (encoder, step, greedy and beam loops).
* ``zoo.export.litert.export_litert`` - LiteRT, fixed shapes, builtin ops, float32/16/int8.
* ``zoo.export.ctranslate2.export_ctranslate2`` - CTranslate2 (Transformer translators),
  float32 and int8.

``EXPORTERS`` maps format names to them; ``export(model, path, format)`` dispatches;
``verify`` measures parity with Keras through the runner that serves the export
(``zoo.serving.load``). The manifest is described in docs/export.md.
"""

import importlib

from zoo.export.verify import verify

#: Format name -> "module:function" (the modules import their optional extras on use).
EXPORTERS = {"savedmodel": "zoo.export.savedmodel:export_savedmodel",
             "onnx": "zoo.export.onnx:export_onnx",
             "litert": "zoo.export.litert:export_litert",
             "ctranslate2": "zoo.export.ctranslate2:export_ctranslate2"}


def get_exporter(fmt: str):
    """The export function of a format name."""
    if fmt not in EXPORTERS:
        raise ValueError(f"unknown export format {fmt!r} (formats: {', '.join(EXPORTERS)})")
    module, fn = EXPORTERS[fmt].split(":")
    return getattr(importlib.import_module(module), fn)


def export(model, path: str, format: str = "savedmodel", **kwargs) -> dict:
    """Exports ``model`` to ``path`` in ``format``; returns the manifest."""
    return get_exporter(format)(model, path, **kwargs)


def export_savedmodel(model, path, **kwargs):
    """See :func:`zoo.export.savedmodel.export_savedmodel`."""
    return get_exporter("savedmodel")(model, path, **kwargs)


__all__ = ["EXPORTERS", "export", "export_savedmodel", "get_exporter", "verify"]
