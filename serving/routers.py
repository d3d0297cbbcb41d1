"""The server's endpoints in three routers over a :class:`zoo.serving.app.Served`: zoo's
``:generate`` API, TensorFlow Serving's REST API, and the operations endpoints (health,
readiness, metrics, the demo page)."""

from typing import List

from zoo.serving.app import (DECODING_FIELDS, GENERATE_FIELDS, PREDICT_OUTPUTS, SIGNATURES,
                             Served, ServedModel)
from zoo.serving.requests import (HTTPError, _columns, _finite, _rows, _version, check_fields,
                                  check_request_texts, decoding_key)


def _body_schema(model) -> dict:
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


def zoo_api(served: Served):
    """``POST /v1/models/{name}:generate`` and ``GET /v1/models``."""
    from fastapi import APIRouter, Request

    GenerateRequest, GenerateResponse = served.schemas[:2]
    router = APIRouter()

    @router.post("/v1/models/{name}:generate", response_model=GenerateResponse,
                 response_model_exclude_none=True, responses=served.errors,
                 summary="Generate (translate or summarize) texts",
                 openapi_extra=_body_schema(GenerateRequest))
    async def generate(name: str, request: Request):
        body = await served.receive(request)
        m = served.model(name)
        check_fields(body, GENERATE_FIELDS)
        texts = check_request_texts(body.get("texts"), served.limits)
        options = {k: body[k] for k in DECODING_FIELDS if body.get(k) is not None}
        key = decoding_key(m, body.get("strategy"), options, body.get("return_attention", False))
        results = await served.decode(m, key, texts)
        answer = {"model": name, "outputs": [r["text"] for r in results],
                  "scores": [_finite(r["scores"]) for r in results],
                  "source_ids_dropped": [int(r["source_ids_dropped"]) for r in results]}
        if key[2]:
            answer["attention"] = [{"source_tokens": r["source_tokens"],
                                    "output_tokens": r["output_tokens"],
                                    "weights": r["attention"]} for r in results]
        return answer

    @router.get("/v1/models", summary="The served models")
    async def list_models():
        return {"models": [m.info() for m in served.models.values()]}

    return router


def _status(served: Served, name: str) -> dict:
    m = served.model(name, ready=False)
    state = {"LOADING": "LOADING", "AVAILABLE": "AVAILABLE", "FAILED": "END"}[m.state]
    code = "OK" if m.state != "FAILED" else "UNKNOWN"
    return {"model_version_status": [{"version": "1", "state": state, "status": {
        "error_code": code, "error_message": m.error or ""}}]}


def _tensor(name, dtype, dims) -> dict:
    return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(d), "name": ""}
                                                     for d in dims], "unknown_rank": False},
            "name": name}


def signature_defs(m: ServedModel) -> dict:
    """The TensorFlow Serving signatures an export offers (one per strategy it has)."""
    outputs = {"text": _tensor("text", "DT_STRING", [-1]),
               "scores": _tensor("scores", "DT_FLOAT", [-1]),
               "source_ids_dropped": _tensor("source_ids_dropped", "DT_INT32", [-1])}
    defs = {}
    for sig, strategy in SIGNATURES.items():
        if strategy not in m.manifest["decoding"]["strategies"]:
            continue
        inputs = {"text": _tensor("text", "DT_STRING", [-1])}
        if strategy == "beam":
            inputs.update({k: _tensor(k, "DT_FLOAT", [])
                           for k in ("length_penalty", "coverage_penalty")})
        defs[sig] = {"inputs": inputs, "outputs": outputs,
                     "method_name": "tensorflow/serving/predict"}
    return defs


def tf_serving(served: Served):
    """TensorFlow Serving's REST API: status, metadata and ``:predict``."""
    from fastapi import APIRouter, Request

    PredictRequest = served.schemas[2]
    router = APIRouter()

    @router.get("/v1/models/{name}", summary="Model status (TensorFlow Serving)",
                responses=served.errors)
    async def model_status(name: str):
        return _status(served, name)

    @router.get("/v1/models/{name}/versions/{version}", include_in_schema=False)
    async def model_version_status(name: str, version: str):
        _version(version)
        return _status(served, name)

    @router.get("/v1/models/{name}/metadata", summary="Signatures (TensorFlow Serving)",
                responses=served.errors)
    async def metadata(name: str):
        m = served.model(name, ready=False)
        return {"model_spec": {"name": name, "signature_name": "", "version": "1"},
                "metadata": {"signature_def": {
                    "signature_def": signature_defs(m),
                    "@type": "type.googleapis.com/tensorflow.serving.SignatureDefMap"}}}

    @router.post("/v1/models/{name}:predict", summary="Predict (TensorFlow Serving REST)",
                 responses=served.errors, openapi_extra=_body_schema(PredictRequest))
    async def predict(name: str, request: Request):
        return await _predict(served, name, request)

    @router.post("/v1/models/{name}/versions/{version}:predict", include_in_schema=False)
    async def predict_version(name: str, version: str, request: Request):
        _version(version)
        return await _predict(served, name, request)

    return router


async def _predict(served: Served, name: str, request):
    body = await served.receive(request)
    m = served.model(name)
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
    rows = "instances" in body
    texts, options = _rows(body["instances"], allowed) if rows else \
        _columns(body["inputs"], allowed)
    texts = check_request_texts(texts, served.limits, "instances" if rows else "inputs")
    results: List[dict] = await served.decode(m, decoding_key(m, strategy, options), texts)
    columns = {"text": [r["text"] for r in results],
               "scores": [_finite(r["scores"]) for r in results],
               "source_ids_dropped": [int(r["source_ids_dropped"]) for r in results]}
    if rows:
        return {"predictions": [dict(zip(PREDICT_OUTPUTS, row))
                                for row in zip(*(columns[k] for k in PREDICT_OUTPUTS))]}
    return {"outputs": columns}


def operations(served: Served):
    """``/healthz``, ``/readyz``, ``/metrics`` and the demo page at ``/``."""
    from fastapi import APIRouter
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    ErrorResponse = served.schemas[3]
    router = APIRouter()

    @router.get("/healthz", summary="Liveness")
    async def healthz():
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness: every model loaded and warmed",
                responses={503: {"model": ErrorResponse}})
    async def readyz():
        states = {m.name: m.state for m in served.models.values()}
        if all(m.ready for m in served.models.values()):
            return {"ready": True, "models": states}
        waiting = [n for n, s in states.items() if s != "AVAILABLE"]
        return JSONResponse({"error": f"not ready: {', '.join(waiting)}", "ready": False,
                             "models": states}, status_code=503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus():
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(served.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def demo():
        return HTMLResponse(_demo_page())

    return router


def _demo_page() -> str:
    from importlib import resources

    return resources.files("zoo.serving").joinpath("demo.html").read_text(encoding="utf-8")
