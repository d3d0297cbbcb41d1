"""zoo.export: trained zoo models to deployable artifacts, each checked against Keras.

Installed as ``zoo.export`` (the repository keeps it at the top level, beside ``zoo/``). It
depends on the models' public endpoints (``encode``, ``decode_step``, ``generate``) only.

Done: TensorFlow SavedModel (strings in, strings out; ``export_savedmodel``) and its parity
check (``verify_savedmodel``). ONNX and LiteRT exporters are the rest of the export issue.
"""

from zoo.export.savedmodel import export_savedmodel
from zoo.export.verify import verify_savedmodel

__all__ = ["export_savedmodel", "verify_savedmodel"]
