"""zoo.export: trained zoo models to SavedModel, ONNX and LiteRT, each checked against Keras.

Installed as ``zoo.export`` (the repository keeps it at the top level, beside ``zoo/``). It
depends on the models' public endpoints (``encode``, ``decode_step``, ``generate``) only; the
exporters arrive with the translator (see the project's issues).
"""
