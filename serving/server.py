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

Example:
    ``zoo serve model-onnx --port 8080`` then
    ``curl -d '{"texts": ["Tengo hambre."]}' localhost:8080/v1/models/model-onnx:generate``
"""

import asyncio
import base64
import binascii
import dataclasses
import difflib
import json
import logging
import math
import os
import re
import time
from typing import Dict, List, Literal, Optional

from zoo.inputs import EXPORT_OPTIONS, InputError, check_texts, strategy_name
from zoo.serving.batching import MicroBatcher, QueueFullError

log = logging.getLogger("zoo.serving")

# What a warm-up decodes once per strategy, so the first request does not pay for graph
# building and allocation.
WARMUP_TEXT = "Hello."
DECODING_FIELDS = ("max_length",) + EXPORT_OPTIONS
GENERATE_FIELDS = ("texts", "strategy", "return_attention", *DECODING_FIELDS)
# TensorFlow Serving signature names -> strategies.
SIGNATURES = {"serving_default": "greedy", "generate": "greedy", "generate_beam": "beam"}
PREDICT_OUTPUTS = ("text", "scores", "source_ids_dropped")


@dataclasses.dataclass
class Limits:
    """What one request may ask, and how requests are batched.

    Args:
        max_batch_size: Most texts decoded in one batch.
        batch_timeout: Seconds a batch waits to fill after its oldest request arrived.
        max_queue: Requests waiting per model before 503.
        max_texts: Texts per request.
        max_chars: Characters per text.
        max_body_bytes: Bytes per request body (413 beyond).
        request_timeout: Seconds before a request answers 504.
    """

    max_batch_size: int = 32
    batch_timeout: float = 0.002
    max_queue: int = 256
    max_texts: int = 64
    max_chars: int = 10_000
    max_body_bytes: int = 1 << 20
    request_timeout: float = 30.0


class HTTPError(Exception):
    """An error answer: status, message and (where it applies) the field at fault."""

    def __init__(self, status: int, message: str, field: Optional[str] = None,
                 headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


class ServedModel:
    """One export behind a name: its runner (loaded on the batcher's thread) and batcher."""

    def __init__(self, name: str, path: str, manifest: dict, limits: Limits,
                 runtime_options: Optional[dict] = None):
        self.name, self.path, self.manifest = name, path, manifest
        self.runtime_options = runtime_options or {}
        self.state, self.error, self.runner = "LOADING", None, None
        self.limits = limits
        self.batcher: Optional[MicroBatcher] = None

    @property
    def ready(self) -> bool:
        return self.state == "AVAILABLE"

    def info(self) -> dict:
        dec = self.manifest["decoding"]
        return {"name": self.name, "task": self.manifest.get("task"),
                "runtime": self.manifest["format"], "state": self.state,
                "strategies": dec["strategies"], "beam_size": dec["beam_size"],
                "max_length": self.manifest["shapes"]["max_length"],
                "max_source_length": self.manifest["shapes"]["max_source_length"],
                "no_repeat_ngram_size": dec.get("no_repeat_ngram_size", 0),
                "error": self.error}

    def load(self) -> None:
        """Builds the runner and decodes once per strategy (on the batcher's thread)."""
        from zoo.serving.runtimes import load

        runner = load(self.path, **self.runtime_options)
        for strategy in runner.strategies:
            runner.run_texts([WARMUP_TEXT], strategy)
        self.runner = runner

    def run(self, key, texts: List[str]) -> List[dict]:
        """The batcher's call: one decoding of ``texts``, split into one dict per text."""
        strategy, options, return_attention = key
        out = self.runner.run_texts(texts, strategy, return_attention=return_attention,
                                    **dict(options))
        keys = [k for k in ("text", "scores", "source_ids_dropped", "attention",
                            "source_tokens", "output_tokens") if k in out]
        return [{k: out[k][i] for k in keys} for i in range(len(texts))]


# ----------------------------------------------------------------------------- requests
async def read_json(request, limit: int):
    """The request body as JSON, with 413 / 400 errors that say what is wrong and where."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPError(400, f"Content-Length {declared!r} is not a number")
        if int(declared) > limit:
            raise HTTPError(413, f"request body is {int(declared):,} bytes; the limit is "
                                 f"{limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"request body exceeds the limit of {limit:,} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise HTTPError(400, "request body is empty; send a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise HTTPError(400, f"request body is not valid UTF-8 (byte {err.start})") from None
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise HTTPError(400, f"malformed JSON at line {err.lineno} column {err.colno}: "
                             f"{err.msg}") from None
    except ValueError as err:
        raise HTTPError(400, str(err)) from None
    except RecursionError:
        raise HTTPError(400, "JSON nested too deeply") from None
    if not isinstance(body, dict):
        raise HTTPError(400, f"request body must be a JSON object, got {_json_type(body)}")
    return body


def _reject_constant(name):
    raise ValueError(f"malformed JSON: {name} is not a JSON number")


def _json_type(value) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value),
                                                                      type(value).__name__)


def check_fields(body: dict, known, where: str = "request") -> None:
    for key in body:
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            name = str(key) if where == "request" else f"{where}.{key}"
            raise HTTPError(400, f"unknown field {key!r} in {where if where != 'request' else 'the request'}"
                                 f"{hint} (fields: {', '.join(known)})", field=name)


def check_request_texts(texts, limits: Limits, field: str = "texts") -> List[str]:
    """The input contract's checks plus the server's limits, naming the item."""
    if texts is None:
        raise HTTPError(400, f"field {field!r} is missing (a list of strings)", field=field)
    try:
        texts = check_texts(texts, field)
    except InputError as err:
        raise HTTPError(400, str(err), field=err.field) from None
    if not texts:
        raise HTTPError(400, f"{field} is empty; send at least one text", field=field)
    if len(texts) > limits.max_texts:
        raise HTTPError(400, f"{field} has {len(texts)} items; the limit is "
                             f"{limits.max_texts} per request", field=field)
    for i, t in enumerate(texts):
        if len(t) > limits.max_chars:
            raise HTTPError(400, f"{field}[{i}] has {len(t):,} characters; the limit is "
                                 f"{limits.max_chars:,}", field=f"{field}[{i}]")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as err:
            raise HTTPError(400, f"{field}[{i}] is not valid Unicode (a lone surrogate at "
                                 f"character {err.start})", field=f"{field}[{i}]") from None
    return texts


def decoding_key(served: ServedModel, strategy, options: dict, return_attention=False):
    """Checked options -> the batch key ``(strategy, options, return_attention)``."""
    if strategy is None:  # beam when a beam option asks for it
        beam = options.get("beam_size")
        wide = isinstance(beam, (int, float)) and not isinstance(beam, bool) and beam != 1
        strategy = "beam" if wide or "length_penalty" in options or \
            "coverage_penalty" in options else "greedy"
    if not isinstance(return_attention, bool):
        raise HTTPError(400, f"return_attention must be true or false, got "
                             f"{json.dumps(return_attention)[:40]}", field="return_attention")
    try:
        name = strategy_name(strategy)
        if name == "greedy" and options.get("beam_size") == 1:
            options = {k: v for k, v in options.items() if k != "beam_size"}
        options = served.runner.check_options(name, dict(options))
    except InputError as err:
        raise HTTPError(400, str(err), field=err.field) from None
    return name, tuple(sorted(options.items())), return_attention


# ----------------------------------------------------------------------------- metrics
_MODEL_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/[^/:]+)?(/metadata|:generate|"
                         r":predict)?/?$")
_PLAIN = {"/": "demo", "/healthz": "healthz", "/readyz": "readyz", "/metrics": "metrics",
          "/openapi.json": "openapi", "/docs": "docs", "/v1/models": "models"}


class Metrics:
    """Prometheus metrics of one app (its own registry, so two apps never collide)."""

    def __init__(self, models: Dict[str, ServedModel]):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.models = models
        self.registry = CollectorRegistry()
        self.requests = Counter("zoo_requests_total", "HTTP requests by model, endpoint and "
                                "status", ["model", "endpoint", "status"],
                                registry=self.registry)
        self.errors = Counter("zoo_request_errors_total", "HTTP answers with status >= 400",
                              ["model", "endpoint", "status"], registry=self.registry)
        self.latency = Histogram("zoo_request_duration_seconds", "Request latency",
                                 ["model", "endpoint"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.batch = Histogram("zoo_batch_size", "Texts per decoded batch", ["model"],
                               registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.texts = Counter("zoo_texts_total", "Texts decoded", ["model"],
                             registry=self.registry)
        self.queue = Gauge("zoo_queue_depth", "Requests waiting for a batch", ["model"],
                           registry=self.registry)

    def labels(self, path: str):
        """(model, endpoint) of a path; unknown model names share one label value."""
        if path in _PLAIN:
            return "", _PLAIN[path]
        match = _MODEL_PATH.match(path)
        if not match:
            return "", "other"
        name, tail = match.groups()
        endpoint = {None: "status", "/metadata": "metadata", ":generate": "generate",
                    ":predict": "predict"}[tail]
        return (name if name in self.models else "(unknown)"), endpoint

    def observe_batch(self, name: str, size: int) -> None:
        self.batch.labels(name).observe(size)
        self.texts.labels(name).inc(size)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        for name, served in self.models.items():
            self.queue.labels(name).set(served.batcher.depth if served.batcher else 0)
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every answer (errors included) and times it; pure ASGI."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            model, endpoint = self.metrics.labels(scope.get("path", ""))
            code = str(status[0])
            self.metrics.requests.labels(model, endpoint, code).inc()
            if status[0] >= 400:
                self.metrics.errors.labels(model, endpoint, code).inc()
            self.metrics.latency.labels(model, endpoint).observe(time.perf_counter() - start)


# ----------------------------------------------------------------------------- the app
def _schemas():
    from pydantic import BaseModel, ConfigDict, Field, create_model

    from zoo.inputs import OPTION

    def decoding_field(name):
        # The type, range and meaning of zoo.inputs.OPTIONS, the one declaration.
        o = OPTION[name]
        bounds = {"gt" if o.low_open else "ge": o.low, "le": o.high}
        return (Optional[o.kind], Field(None, description=f"{o.help}; {o.range_text}",
                                        **{k: v for k, v in bounds.items() if v is not None}))

    GenerateRequest = create_model(
        "GenerateRequest", __config__=ConfigDict(extra="forbid"),
        texts=(List[str], Field(min_length=1, description="Inputs (sources or dialogues)")),
        strategy=(Optional[Literal["greedy", "beam"]], Field(
            None, description="Default: beam if beam_size > 1 or a penalty is given, else "
                              "greedy")),
        return_attention=(bool, False),
        **{name: decoding_field(name) for name in DECODING_FIELDS})

    class Attention(BaseModel):
        source_tokens: List[str]
        output_tokens: List[str]
        weights: List[List[float]] = Field(description="(output_tokens, source_tokens)")

    class GenerateResponse(BaseModel):
        model: str
        outputs: List[str]
        scores: List[float]
        source_ids_dropped: List[int] = Field(description="Ids cut from overlong inputs")
        attention: Optional[List[Attention]] = None

    class PredictRequest(BaseModel):
        signature_name: Optional[str] = Field(
            None, description="serving_default, generate or generate_beam")
        instances: Optional[list] = Field(None, description="Row form: strings, "
                                          "{\"b64\": ...} or {\"text\": ...}")
        inputs: Optional[object] = Field(None, description="Columnar form: a list of strings "
                                         "or {\"text\": [...]}")

    class ErrorResponse(BaseModel):
        error: str
        field: Optional[str] = None

    return GenerateRequest, GenerateResponse, PredictRequest, ErrorResponse


def _demo_page() -> str:
    from importlib import resources

    return resources.files("zoo.serving").joinpath("demo.html").read_text(encoding="utf-8")


def create_app(models: Dict[str, str], limits: Optional[Limits] = None,
               runtime_options: Optional[Dict[str, dict]] = None):
    """The ASGI app serving ``models`` (name -> export directory).

    Manifests are read now (a directory that is not an export fails here); runners load in
    the background once the app starts, so ``/healthz`` answers at once and ``/readyz`` turns
    200 when every model has loaded and decoded a warm-up text.

    Args:
        models: Name -> export directory.
        limits: Request limits and batching (default :class:`Limits`).
        runtime_options: Name -> runner options (``quantization`` for LiteRT, ``providers``
            for ONNX).

    Returns:
        A FastAPI app; ``app.state.models`` holds the :class:`ServedModel` objects.
    """
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    import zoo
    from zoo.serving.runtimes import read_manifest

    limits = limits or Limits()
    served = {name: ServedModel(name, path, read_manifest(path), limits,
                                (runtime_options or {}).get(name))
              for name, path in models.items()}
    metrics = Metrics(served)
    GenerateRequest, GenerateResponse, PredictRequest, ErrorResponse = _schemas()

    async def load_all(app):
        for m in served.values():
            try:
                await m.batcher.call(m.load)
                m.state = "AVAILABLE"
                log.info("model %r ready (%s, %s)", m.name, m.manifest["format"], m.path)
            except Exception as err:  # noqa: BLE001  (reported, and the server stops)
                m.state, m.error = "FAILED", f"{type(err).__name__}: {err}"
                log.error("cannot load model %r from %s: %s", m.name, m.path, m.error)
                on_failure = getattr(app.state, "on_load_failure", None)
                if on_failure:
                    on_failure(m)

    @asynccontextmanager
    async def lifespan(app):
        for m in served.values():
            m.batcher = MicroBatcher(
                m.run, max_batch_size=limits.max_batch_size, batch_timeout=limits.batch_timeout,
                max_queue=limits.max_queue,
                on_batch=lambda n, name=m.name: metrics.observe_batch(name, n))
            m.batcher.start()
        loader = asyncio.get_running_loop().create_task(load_all(app))
        yield
        loader.cancel()
        for m in served.values():
            await m.batcher.stop()

    app = FastAPI(title="zoo serve", version=zoo.__version__, lifespan=lifespan,
                  description="Exported zoo sequence-to-sequence models over HTTP: zoo's own "
                              ":generate and TensorFlow Serving's REST API.")
    app.state.models, app.state.limits, app.state.metrics = served, limits, metrics
    errors = {400: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
              413: {"model": ErrorResponse}, 503: {"model": ErrorResponse},
              504: {"model": ErrorResponse}}

    def error(status, message, field=None, headers=None):
        body = {"error": message}
        if field is not None:
            body["field"] = field
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(HTTPError)
    async def _http_error(request, err: HTTPError):
        return error(err.status, err.message, err.field, err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(request, err):
        message = {404: f"no such endpoint: {request.method} {request.url.path}",
                   405: f"method {request.method} is not allowed on {request.url.path}"}
        return error(err.status_code, message.get(err.status_code, str(err.detail)),
                     headers=getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, err):
        first = err.errors()[0] if err.errors() else {}
        return error(400, f"{'.'.join(map(str, first.get('loc', ())))}: "
                          f"{first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def _internal(request, err):  # a bug, never the caller's input: say so, keep going
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error(500, f"internal error ({type(err).__name__}); see the server log")

    def model(name: str, ready: bool = True) -> ServedModel:
        if name not in served:
            raise HTTPError(404, f"model {name!r} is not served here (models: "
                                 f"{', '.join(served)})", field="model")
        m = served[name]
        if ready and m.state == "LOADING":
            raise HTTPError(503, f"model {name!r} is still loading", headers={"Retry-After": "1"})
        if ready and m.state == "FAILED":
            raise HTTPError(503, f"model {name!r} failed to load: {m.error}")
        return m

    async def receive(request) -> dict:
        # A client that sends its body too slowly must not hold a connection for ever.
        try:
            return await asyncio.wait_for(read_json(request, limits.max_body_bytes),
                                          limits.request_timeout)
        except asyncio.TimeoutError:
            raise HTTPError(408, f"the request body did not arrive within "
                                 f"{limits.request_timeout:g} s") from None

    async def decode(m: ServedModel, key, texts) -> List[dict]:
        metrics.queue.labels(m.name).set(m.batcher.depth)
        try:
            return await asyncio.wait_for(m.batcher.submit(key, texts), limits.request_timeout)
        except QueueFullError as err:
            raise HTTPError(503, f"model {m.name!r} is busy: {err}; retry shortly",
                            headers={"Retry-After": "1"}) from None
        except asyncio.TimeoutError:
            raise HTTPError(504, f"the request took longer than {limits.request_timeout:g} s "
                                 f"(the server's --request-timeout)") from None
        except InputError as err:
            raise HTTPError(400, str(err), field=err.field) from None

    # ---------------------------------------------------------------- zoo's API
    @app.post("/v1/models/{name}:generate", response_model=GenerateResponse,
              response_model_exclude_none=True,
              responses=errors, summary="Generate (translate or summarize) texts",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": GenerateRequest.model_json_schema()}}}})
    async def generate(name: str, request: Request):
        body = await receive(request)
        m = model(name)
        check_fields(body, GENERATE_FIELDS)
        texts = check_request_texts(body.get("texts"), limits)
        options = {k: body[k] for k in DECODING_FIELDS if body.get(k) is not None}
        key = decoding_key(m, body.get("strategy"), options, body.get("return_attention", False))
        results = await decode(m, key, texts)
        answer = {"model": name, "outputs": [r["text"] for r in results],
                  "scores": [_finite(r["scores"]) for r in results],
                  "source_ids_dropped": [int(r["source_ids_dropped"]) for r in results]}
        if key[2]:
            answer["attention"] = [{"source_tokens": r["source_tokens"],
                                    "output_tokens": r["output_tokens"],
                                    "weights": r["attention"]} for r in results]
        return answer

    @app.get("/v1/models", summary="The served models")
    async def list_models():
        return {"models": [m.info() for m in served.values()]}

    # ---------------------------------------------------------------- TF Serving's API
    def status(name: str):
        m = model(name, ready=False)
        state = {"LOADING": "LOADING", "AVAILABLE": "AVAILABLE", "FAILED": "END"}[m.state]
        code = "OK" if m.state != "FAILED" else "UNKNOWN"
        return {"model_version_status": [{"version": "1", "state": state, "status": {
            "error_code": code, "error_message": m.error or ""}}]}

    @app.get("/v1/models/{name}", summary="Model status (TensorFlow Serving)",
             responses=errors)
    async def model_status(name: str):
        return status(name)

    @app.get("/v1/models/{name}/versions/{version}", include_in_schema=False)
    async def model_version_status(name: str, version: str):
        _version(version)
        return status(name)

    def signature_defs(m: ServedModel) -> dict:
        def tensor(name, dtype, dims):
            return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(d), "name": ""}
                                                             for d in dims],
                                                     "unknown_rank": False}, "name": name}

        outputs = {"text": tensor("text", "DT_STRING", [-1]),
                   "scores": tensor("scores", "DT_FLOAT", [-1]),
                   "source_ids_dropped": tensor("source_ids_dropped", "DT_INT32", [-1])}
        defs = {}
        for sig, strategy in SIGNATURES.items():
            if strategy not in m.manifest["decoding"]["strategies"]:
                continue
            inputs = {"text": tensor("text", "DT_STRING", [-1])}
            if strategy == "beam":
                inputs.update({k: tensor(k, "DT_FLOAT", [])
                               for k in ("length_penalty", "coverage_penalty")})
            defs[sig] = {"inputs": inputs, "outputs": outputs,
                         "method_name": "tensorflow/serving/predict"}
        return defs

    @app.get("/v1/models/{name}/metadata", summary="Signatures (TensorFlow Serving)",
             responses=errors)
    async def metadata(name: str):
        m = model(name, ready=False)
        return {"model_spec": {"name": name, "signature_name": "", "version": "1"},
                "metadata": {"signature_def": {
                    "signature_def": signature_defs(m),
                    "@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap"}}}

    @app.post("/v1/models/{name}:predict", summary="Predict (TensorFlow Serving REST)",
              responses=errors, openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": PredictRequest.model_json_schema()}}}})
    async def predict(name: str, request: Request):
        return await _predict(name, request)

    @app.post("/v1/models/{name}/versions/{version}:predict", include_in_schema=False)
    async def predict_version(name: str, version: str, request: Request):
        _version(version)
        return await _predict(name, request)

    async def _predict(name, request):
        body = await receive(request)
        m = model(name)
        check_fields(body, ("signature_name", "instances", "inputs"))
        sig = body.get("signature_name") or "serving_default"
        defs = signature_defs(m)
        if not isinstance(sig, str) or sig not in defs:
            raise HTTPError(400, f"signature_name {sig!r} is not in this model (signatures: "
                                 f"{', '.join(defs)})", field="signature_name")
        strategy = SIGNATURES[sig]
        if ("instances" in body) == ("inputs" in body):
            raise HTTPError(400, "send exactly one of 'instances' (row form) and 'inputs' "
                                 "(columnar form)", field="instances")
        allowed = ("text", "length_penalty", "coverage_penalty") if strategy == "beam" \
            else ("text",)
        if "instances" in body:
            texts, options = _rows(body["instances"], allowed)
        else:
            texts, options = _columns(body["inputs"], allowed)
        texts = check_request_texts(texts, limits,
                                    "instances" if "instances" in body else "inputs")
        key = decoding_key(m, strategy, options)
        results = await decode(m, key, texts)
        columns = {"text": [r["text"] for r in results],
                   "scores": [_finite(r["scores"]) for r in results],
                   "source_ids_dropped": [int(r["source_ids_dropped"]) for r in results]}
        if "instances" in body:
            return {"predictions": [dict(zip(PREDICT_OUTPUTS, row))
                                    for row in zip(*(columns[k] for k in PREDICT_OUTPUTS))]}
        return {"outputs": columns}

    # ---------------------------------------------------------------- operations
    @app.get("/healthz", summary="Liveness")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: every model loaded and warmed",
             responses={503: {"model": ErrorResponse}})
    async def readyz():
        states = {m.name: m.state for m in served.values()}
        if all(m.ready for m in served.values()):
            return {"ready": True, "models": states}
        waiting = [n for n, s in states.items() if s != "AVAILABLE"]
        return JSONResponse({"error": f"not ready: {', '.join(waiting)}", "ready": False,
                             "models": states}, status_code=503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus():
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def demo():
        return HTMLResponse(_demo_page())

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _version(version: str) -> None:
    if version != "1":
        raise HTTPError(404, f"version {version!r} is not served (zoo serves version 1)",
                        field="version")


def _finite(x) -> Optional[float]:
    x = float(x)
    return x if math.isfinite(x) else None


def _text_value(value, field: str) -> str:
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            raw = base64.b64decode(value["b64"], validate=True)
            return raw.decode("utf-8")
        except (binascii.Error, TypeError, ValueError):
            raise HTTPError(400, f"{field}.b64 is not base64 of UTF-8 text",
                            field=f"{field}.b64") from None
    return value


def _rows(instances, allowed):
    """TF Serving's row form -> texts and (shared) decoding options."""
    if not isinstance(instances, list):
        raise HTTPError(400, f"instances must be an array, got {_json_type(instances)}",
                        field="instances")
    texts, options = [], {}
    for i, row in enumerate(instances):
        field = f"instances[{i}]"
        if isinstance(row, dict) and set(row) != {"b64"}:
            check_fields(row, allowed, field)
            if "text" not in row:
                raise HTTPError(400, f"{field} has no 'text'", field=f"{field}.text")
            for k in allowed[1:]:
                if k in row:
                    if k in options and options[k] != row[k]:
                        raise HTTPError(400, f"{field}.{k} differs from an earlier instance; "
                                             f"it must be the same for the whole request",
                                        field=f"{field}.{k}")
                    options[k] = row[k]
            texts.append(_text_value(row["text"], f"{field}.text"))
        else:
            texts.append(_text_value(row, field))
    return texts, options


def _columns(inputs, allowed):
    """TF Serving's columnar form -> texts and decoding options."""
    if isinstance(inputs, list):
        return [_text_value(v, f"inputs[{i}]") for i, v in enumerate(inputs)], {}
    if not isinstance(inputs, dict):
        raise HTTPError(400, f"inputs must be an array of strings or an object, got "
                             f"{_json_type(inputs)}", field="inputs")
    check_fields(inputs, allowed, "inputs")
    if "text" not in inputs:
        raise HTTPError(400, "inputs has no 'text'", field="inputs.text")
    texts = inputs["text"]
    if isinstance(texts, list):
        texts = [_text_value(v, f"inputs.text[{i}]") for i, v in enumerate(texts)]
    return texts, {k: inputs[k] for k in allowed[1:] if k in inputs}


# ----------------------------------------------------------------------------- running
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
