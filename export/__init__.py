"""zoo.export: trained zoo models to deployable artifacts, each checked against Keras.

Installed as ``zoo.export`` (the repository keeps it at the top level, beside ``zoo/``). It
depends on the models' public endpoints (``encode``, ``decode_step``, ``generate``) only.

Done: TensorFlow SavedModel (strings in, strings out; ``export_savedmodel``) with its parity
check (``verify_savedmodel``), and ONNX (``zoo.export.onnx.export_onnx``: encoder, one-step
decoder, greedy and beam loops; run by ``zoo.serving.OnnxTranslator``) and LiteRT
(``zoo.export.litert.export_litert``: fixed shapes, builtin ops only, float32/float16/int8).
"""

from zoo.export.savedmodel import export_savedmodel
from zoo.export.verify import verify, verify_savedmodel

__all__ = ["export_savedmodel", "verify", "verify_savedmodel"]
