"""zoo.serving: run exported zoo models without importing model code.

Installed as ``zoo.serving``. ``load(dir)`` picks the runner from the export's manifest
(``OnnxRunner``, ``LiteRTRunner`` and ``CTranslate2Runner`` need no TensorFlow; ``SavedModelRunner`` needs
TensorFlow and tensorflow_text); every runner keeps the input contract of ``zoo.inputs``.
``HostTokenizer`` tokenizes with the ``sentencepiece`` package (``tokenizers`` for a
byte-level BPE).
"""

from zoo.serving.tokenizer import HostTokenizer

_RUNTIMES = ("CTranslate2Runner", "ExportFileError", "LiteRTRunner", "OnnxRunner", "Runner",
             "SavedModelRunner", "load", "read_manifest")


def __getattr__(name):
    # The runtimes import their optional extras (onnxruntime, ai-edge-litert) on use.
    if name in _RUNTIMES:
        from zoo.serving import runtimes

        return getattr(runtimes, name)
    raise AttributeError(f"module 'zoo.serving' has no attribute {name!r}")


__all__ = ["HostTokenizer", *_RUNTIMES]
