"""zoo.serving: run exported zoo models without importing model code (or TensorFlow).

Installed as ``zoo.serving``. ``HostTokenizer`` tokenizes with the ``sentencepiece`` package;
``OnnxTranslator`` runs an ONNX export on onnxruntime. The HTTP server is the next issue.
"""

from zoo.serving.tokenizer import HostTokenizer


def __getattr__(name):
    if name == "OnnxTranslator":  # onnxruntime is an optional extra
        from zoo.serving.onnx_runtime import OnnxTranslator

        return OnnxTranslator
    raise AttributeError(f"module 'zoo.serving' has no attribute {name!r}")


__all__ = ["HostTokenizer", "OnnxTranslator"]
