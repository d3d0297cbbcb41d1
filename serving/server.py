"""``zoo serve``: an HTTP server over exported zoo models (FastAPI on uvicorn).

Loads exports with :func:`zoo.serving.load` (the runtime and the task come from each export's
manifest) and never imports zoo's model code: an ONNX or LiteRT export is served without
TensorFlow. Endpoints (``docs/serving.md`` has the full reference):

* ``POST /v1/models/{name}:generate`` - ``{"texts": [...], "strategy", "beam_size",
  "max_length", "length_penalty", "coverage_penalty", "no_repeat_ngram_size",
  "return_attention"}`` -> ``outputs``, ``scores``, ``source_ids_dropped`` (and, when asked,
  ``attention`` with ``source_tokens`` and ``output_tokens``).
* TensorFlow Serving's REST API: ``GET /v1/models/{name}`` (status), ``GET
  /v1/models/{name}/metadata`` (signature_def), ``POST /v1/models/{name}:predict`` with
  ``instances`` (row form) or ``inputs`` (columnar form) -> ``predictions`` / ``outputs``;
  errors are ``{"error": "..."}``.
* ``GET /v1/models`` (what is served), ``/healthz`` (liveness), ``/readyz`` (every model loaded
  and warmed), ``/metrics`` (Prometheus), ``/openapi.json``, and a demo page at ``/``.

Requests are micro-batched per model (:mod:`zoo.serving.batching`). Every bad request gets a
4xx JSON error that names the field; a full queue answers 503 with ``Retry-After``; a request
that outlives ``request_timeout`` answers 504. SIGTERM (and Ctrl-C) stop accepting
connections, finish the requests in flight, then exit.

The app is built in :mod:`zoo.serving.app` (factory, lifespan, errors) from the routers of
:mod:`zoo.serving.routers`; requests are checked by :mod:`zoo.serving.requests`; metrics
live in :mod:`zoo.serving.metrics`. This module runs it.

Example:
    ``zoo serve model-onnx --port 8080`` then
    ``curl -d '{"texts": ["Tengo hambre."]}' localhost:8080/v1/models/model-onnx:generate``
"""

import logging
import os
import re
from typing import Dict, List, Optional

from zoo.inputs import InputError
from zoo.serving.app import (DECODING_FIELDS, GENERATE_FIELDS, ServedModel,  # noqa: F401
                             _schemas, create_app)
from zoo.serving.requests import HTTPError, Limits  # noqa: F401


def require_extras() -> None:
    """Raises an ImportError that says what to install when the serve extra is missing."""
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "prometheus_client")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"zoo serve needs {', '.join(missing)}: pip install "
                          f"'zoo-seq2seq[serve]'")


def serve(models: Dict[str, str], host: str = "127.0.0.1", port: int = 8080,
          limits: Optional[Limits] = None, runtime_options: Optional[Dict[str, dict]] = None,
          access_log: bool = False, log_level: str = "info") -> int:
    """Serves ``models`` until SIGTERM or Ctrl-C; returns the process exit status.

    Args:
        models: Name -> export directory.
        host: Address to bind (default loopback only).
        port: TCP port.
        limits: Request limits and batching.
        runtime_options: Name -> runner options.
        access_log: Log every request (uvicorn's access log).
        log_level: Python logging level name.

    Returns:
        0 after a clean shutdown, 1 if a model failed to load.
    """
    require_extras()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # a SavedModel's TensorFlow start-up
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s "
                                                        "%(message)s")
    app = create_app(models, limits, runtime_options)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            access_log=access_log, lifespan="on", server_header=False)
    server = uvicorn.Server(config)
    failed = []

    def on_load_failure(m):
        failed.append(m.name)
        server.should_exit = True

    app.state.on_load_failure = on_load_failure
    server.run()
    return 1 if failed else 0


def parse_models(model_dir: Optional[str], name: Optional[str], pairs: List[str],
                 runtime: Optional[str] = None) -> Dict[str, str]:
    """``MODEL_DIR [--name]`` and ``--model NAME=DIR`` -> name -> directory, checked.

    Raises:
        InputError: A malformed pair, a repeated name, a missing directory or manifest, or an
            export whose format is not ``runtime``.
    """
    from zoo.serving.runtimes import read_manifest

    models = {}
    if model_dir:
        models[name or os.path.basename(os.path.normpath(model_dir))] = model_dir
    elif name:
        raise InputError("--name", "--name names MODEL_DIR; with --model use NAME=DIR")
    for pair in pairs:
        if "=" not in pair or not pair.split("=", 1)[0] or not pair.split("=", 1)[1]:
            raise InputError("--model", f"--model takes NAME=DIR, got {pair!r}")
        key, path = pair.split("=", 1)
        if key in models:
            raise InputError("--model", f"model name {key!r} is given twice")
        models[key] = path
    if not models:
        raise InputError("MODEL_DIR", "give an export directory (MODEL_DIR) or --model NAME=DIR")
    for key, path in models.items():
        if not re.fullmatch(r"[A-Za-z0-9._-]+", key):
            raise InputError("--model", f"model name {key!r} may hold only letters, digits, "
                                        f"'.', '_' and '-' (it is part of the URL)")
        try:
            manifest = read_manifest(path)
        except (OSError, ValueError) as err:
            raise InputError("MODEL_DIR", f"model {key!r}: {err}") from None
        if runtime and manifest["format"] != runtime:
            raise InputError("--runtime", f"{path} holds a {manifest['format']!r} export, "
                                          f"not {runtime!r} (export one with zoo export "
                                          f"--format {runtime})")
    return models
