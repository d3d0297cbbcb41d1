"""The app factory: the served models, the lifespan that loads them, the error handlers,
and three routers: zoo's API, TensorFlow Serving's REST API and the operations endpoints."""

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import Dict, List, Literal, Optional

from zoo.inputs import EXPORT_OPTIONS, InputError
from zoo.serving.batching import MicroBatcher, QueueFullError
from zoo.serving.metrics import Metrics, MetricsMiddleware
from zoo.serving.requests import HTTPError, Limits, read_json

log = logging.getLogger("zoo.serving")

# What a warm-up decodes once per strategy, so the first request does not pay for graph
# building and allocation.
WARMUP_TEXT = "Hello."
DECODING_FIELDS = ("max_length",) + EXPORT_OPTIONS
GENERATE_FIELDS = ("texts", "strategy", "return_attention", *DECODING_FIELDS)
# TensorFlow Serving signature names -> strategies.
SIGNATURES = {"serving_default": "greedy", "generate": "greedy", "generate_beam": "beam"}
PREDICT_OUTPUTS = ("text", "scores", "source_ids_dropped")


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
        # (The handler checked the texts and options: decoding_key, check_request_texts.)
        out = self.runner.run_checked(texts, strategy, dict(options), return_attention)
        keys = [k for k in ("text", "scores", "source_ids_dropped", "attention",
                            "source_tokens", "output_tokens") if k in out]
        return [{k: out[k][i] for k in keys} for i in range(len(texts))]


class Served:
    """What the routers share: the models, the limits, the metrics, the schemas."""

    def __init__(self, models: Dict[str, ServedModel], limits: Limits, metrics: Metrics):
        self.models, self.limits, self.metrics = models, limits, metrics
        self.schemas = _schemas()
        ErrorResponse = self.schemas[3]
        self.errors = {code: {"model": ErrorResponse} for code in (400, 404, 413, 503, 504)}

    def model(self, name: str, ready: bool = True) -> ServedModel:
        """The served model ``name`` (404 if none; 503 while loading or if it failed)."""
        if name not in self.models:
            raise HTTPError(404, f"model {name!r} is not served here (models: "
                                 f"{', '.join(self.models)})", field="model")
        m = self.models[name]
        if ready and m.state == "LOADING":
            raise HTTPError(503, f"model {name!r} is still loading", headers={"Retry-After": "1"})
        if ready and m.state == "FAILED":
            raise HTTPError(503, f"model {name!r} failed to load: {m.error}")
        return m

    async def receive(self, request) -> dict:
        """The body as JSON; a client that sends it too slowly must not hold a connection."""
        try:
            return await asyncio.wait_for(read_json(request, self.limits.max_body_bytes),
                                          self.limits.request_timeout)
        except asyncio.TimeoutError:
            raise HTTPError(408, f"the request body did not arrive within "
                                 f"{self.limits.request_timeout:g} s") from None

    async def decode(self, m: ServedModel, key, texts) -> List[dict]:
        """One request's texts through the model's batcher."""
        self.metrics.queue.labels(m.name).set(m.batcher.depth)
        try:
            return await asyncio.wait_for(m.batcher.submit(key, texts),
                                          self.limits.request_timeout)
        except QueueFullError as err:
            raise HTTPError(503, f"model {m.name!r} is busy: {err}; retry shortly",
                            headers={"Retry-After": "1"}) from None
        except asyncio.TimeoutError:
            raise HTTPError(504, f"the request took longer than "
                                 f"{self.limits.request_timeout:g} s (the server's "
                                 f"--request-timeout)") from None
        except InputError as err:
            raise HTTPError(400, str(err), field=err.field) from None


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
    from fastapi import FastAPI

    import zoo
    from zoo.serving import routers
    from zoo.serving.runtimes import read_manifest

    limits = limits or Limits()
    models = {name: ServedModel(name, path, read_manifest(path), limits,
                                (runtime_options or {}).get(name))
              for name, path in models.items()}
    served = Served(models, limits, Metrics(models))
    app = FastAPI(title="zoo serve", version=zoo.__version__, lifespan=_lifespan(served),
                  description="Exported zoo sequence-to-sequence models over HTTP: zoo's own "
                              ":generate and TensorFlow Serving's REST API.")
    app.state.models, app.state.limits, app.state.metrics = models, limits, served.metrics
    _add_error_handlers(app)
    for router in (routers.zoo_api(served), routers.tf_serving(served),
                   routers.operations(served)):
        app.include_router(router)
    app.add_middleware(MetricsMiddleware, metrics=served.metrics)
    return app


def _lifespan(served: Served):
    """Starts each model's batcher and loads the models in the background; on shutdown,
    finishes the batches in flight."""

    @asynccontextmanager
    async def lifespan(app):
        for m in served.models.values():
            m.batcher = MicroBatcher(
                m.run, max_batch_size=served.limits.max_batch_size,
                batch_timeout=served.limits.batch_timeout, max_queue=served.limits.max_queue,
                on_batch=lambda n, name=m.name: served.metrics.observe_batch(name, n))
            m.batcher.start()
        loader = asyncio.get_running_loop().create_task(_load_all(app, served))
        yield
        loader.cancel()
        for m in served.models.values():
            await m.batcher.stop()

    return lifespan


async def _load_all(app, served: Served) -> None:
    for m in served.models.values():
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


def _error(status, message, field=None, headers=None):
    from fastapi.responses import JSONResponse

    body = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


def _add_error_handlers(app) -> None:
    """Every error answers ``{"error", "field"}`` JSON; a bug answers 500 and is logged."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(HTTPError)
    async def _http_error(request, err: HTTPError):
        return _error(err.status, err.message, err.field, err.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(request, err):
        message = {404: f"no such endpoint: {request.method} {request.url.path}",
                   405: f"method {request.method} is not allowed on {request.url.path}"}
        return _error(err.status_code, message.get(err.status_code, str(err.detail)),
                      headers=getattr(err, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, err):
        first = err.errors()[0] if err.errors() else {}
        return _error(400, f"{'.'.join(map(str, first.get('loc', ())))}: "
                           f"{first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def _internal(request, err):  # a bug, never the caller's input: say so, keep going
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(err).__name__}); see the server log")
