"""The server's Prometheus metrics: per model and endpoint requests, errors and latency;
batch sizes, texts and queue depth."""

import re
import time
from typing import Dict


_MODEL_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/[^/:]+)?(/metadata|:generate|"
                         r":predict)?/?$")
_PLAIN = {"/": "demo", "/healthz": "healthz", "/readyz": "readyz", "/metrics": "metrics",
          "/openapi.json": "openapi", "/docs": "docs", "/v1/models": "models"}


class Metrics:
    """Prometheus metrics of one app (its own registry, so two apps never collide)."""

    def __init__(self, models: Dict[str, object]):
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
