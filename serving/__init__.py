"""zoo.serving: an HTTP server over exported zoo artifacts.

Installed as ``zoo.serving``. It loads exported artifacts (SavedModel, ONNX, LiteRT) and never
imports zoo's model code; the server arrives with the exporters (see the project's issues).
"""
