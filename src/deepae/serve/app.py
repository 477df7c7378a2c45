"""The FastAPI application of `deepae serve`: the Open Inference Protocol (v2) endpoints,
the request-size limits and body-read timeout, the error answers and the Prometheus
metrics."""

# (no `from __future__ import annotations`: FastAPI reads the routes' annotations, and
# `Request` is imported inside the function that defines them)
import asyncio
import json
import logging
import math
import time

from deepae.serve.batching import Batcher
from deepae.serve.protocol import HEADER, InferenceError, encode_response, parse_request

__all__ = ["create_app", "Metrics", "MAX_REQUEST_BYTES", "MAX_JSON_BYTES", "READ_TIMEOUT_S"]

logger = logging.getLogger("deepae.serve")

MAX_REQUEST_BYTES = 64 * 2 ** 20
# JSON numbers take ~20 times their text in memory (Python floats in lists, then arrays):
# a JSON body (or the JSON part of a binary one) has a smaller limit of its own
MAX_JSON_BYTES = 8 * 2 ** 20
# the longest a request body may take to arrive (a client that stops sending holds a
# connection and its buffers until then)
READ_TIMEOUT_S = 30.0
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0,
                   5.0, 10.0, 30.0)
ROW_BUCKETS = tuple(2 ** i for i in range(17))


class Metrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("deepae_requests", "Inference requests by model and HTTP "
                                "status code ('unknown': a model not served)",
                                ["model", "code"], registry=self.registry)
        self.latency = Histogram("deepae_request_duration_seconds", "Inference request time, "
                                 "from the first byte read to the response built",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_rows = Histogram("deepae_batch_rows", "Rows per model call (batched "
                                    "requests together)", ["model"], buckets=ROW_BUCKETS,
                                    registry=self.registry)
        self.batch_requests = Histogram("deepae_batch_requests", "Requests per model call",
                                        ["model"], buckets=ROW_BUCKETS[:11],
                                        registry=self.registry)

    def observer(self, model: str):
        def observe(rows: int, requests: int) -> None:
            self.batch_rows.labels(model).observe(rows)
            self.batch_requests.labels(model).observe(requests)
        return observe

    def text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


def _error(status: int, message: str):
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:2000] or type(e).__name__


def _too_large(size: str, limit: int, binary: bool) -> InferenceError:
    if binary:
        return InferenceError(f"Request body{size} is over the limit of {limit} bytes "
                              "(--max-request-bytes).", status=413)
    return InferenceError(f"JSON request body{size} is over the limit of {limit} bytes for "
                          "JSON (--max-json-bytes); send large tensors with the binary tensor "
                          "data extension (the Inference-Header-Content-Length header and "
                          "`binary_data_size`), up to --max-request-bytes.", status=413)


async def read_body(request, limit: int, *, binary: bool = True,
                    timeout_s: float = READ_TIMEOUT_S) -> bytes:
    """The request body, refused (413) past `limit` bytes: by its Content-Length before
    reading, and again while reading (a chunked body declares none); and refused (408) if
    it has not all arrived within `timeout_s` seconds. `binary`: whether the request uses
    the binary tensor extension (the 413's message says which limit it met)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise InferenceError(f"Expected Content-Length as a number of bytes; received "
                                 f"{declared[:40]!r}.") from None
        if n > limit:
            raise _too_large(f" of {n} bytes", limit, binary)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large("", limit, binary)
                chunks.append(chunk)
    except TimeoutError:
        raise InferenceError(f"The request body did not arrive within {timeout_s:g} s "
                             f"(--read-timeout-s); {size} bytes came.", status=408) from None
    return b"".join(chunks)


class Server:
    """The state behind the routes: the models, their batchers, the metrics, the limits."""

    def __init__(self, servables, *, batch_wait_ms: float, max_batch_rows: int,
                 max_request_bytes: int, max_json_bytes: int, read_timeout_s: float):
        self.models = {s.name: s for s in servables}
        self.metrics = Metrics()
        self.batchers = {s.name: Batcher(s, wait_s=batch_wait_ms / 1000.0,
                                         max_rows=max_batch_rows,
                                         observe=self.metrics.observer(s.name))
                         for s in servables}
        self.max_request_bytes = max_request_bytes
        self.max_json_bytes = min(max_json_bytes, max_request_bytes)
        self.read_timeout_s = read_timeout_s
        self.ready = True

    def model(self, name: str, version: str | None = None):
        if name not in self.models:
            raise InferenceError(f"Unknown model {name[:100]!r}; served: "
                                 f"{sorted(self.models)[:20]}.", status=404)
        if version not in (None, "", "1"):
            raise InferenceError(f"Model {name!r} has version '1' only; received version "
                                 f"{version[:20]!r}.", status=404)
        return self.models[name]

    async def infer(self, name: str, request, version: str | None = None):
        """One inference request, answered: outputs, or a 4xx naming the field, or a
        generic 500 (the traceback goes to the server's log only)."""
        from starlette.requests import ClientDisconnect

        start = time.perf_counter()
        label = name if name in self.models else "unknown"
        try:
            response = await self._infer(name, request, version)
        except ClientDisconnect:  # the client left while sending: nobody reads the answer
            response = _error(400, "The client disconnected before the body was complete.")
        except InferenceError as e:
            response = _error(e.status, _one_line(e))
            if e.status in (408, 413):  # the client may still be sending: not this connection
                response.headers["connection"] = "close"
        except (ValueError, TypeError) as e:  # the estimator's checks of the values
            response = _error(400, f"Model {name!r} refused the input: {_one_line(e)}")
        except Exception:  # noqa: BLE001 - logged here, never shown to the client
            logger.exception("inference on model %r failed", name)
            response = _error(500, "Internal error while running the model; the server's "
                                   "log has the details.")
        self.metrics.requests.labels(label, str(response.status_code)).inc()
        self.metrics.latency.labels(label).observe(time.perf_counter() - start)
        return response

    async def _infer(self, name: str, request, version):
        from fastapi.responses import Response

        model = self.model(name, version)
        header = request.headers.get(HEADER)
        if header is None:
            body = await read_body(request, self.max_json_bytes, binary=False,
                                   timeout_s=self.read_timeout_s)
        else:
            if header.strip().isdigit() and int(header) > self.max_json_bytes:
                raise InferenceError(
                    f"The JSON part of the request ({int(header)} bytes, "
                    f"Inference-Header-Content-Length) is over the limit of "
                    f"{self.max_json_bytes} bytes for JSON (--max-json-bytes); send large "
                    "tensors as binary data (`binary_data_size`).", status=413)
            body = await read_body(request, self.max_request_bytes,
                                   timeout_s=self.read_timeout_s)
        req = parse_request(body, header)
        arrays, rows, options = model.prepare(req.inputs, req.parameters, req.outputs)
        available = model.output_names(options)
        asked = list(req.outputs) if req.outputs is not None else available
        unknown = [n for n in asked if n not in available]
        if unknown:
            raise InferenceError(f"Model {name!r} has no output(s) {unknown[:10]} for this "
                                 f"request; its outputs: {available}.")
        out = await self.batchers[name].submit(arrays, rows, options)
        content, header = encode_response(name, req, {n: out[n] for n in asked})
        if header is None:
            return Response(content, media_type="application/json")
        return Response(content, media_type="application/octet-stream",
                        headers={"Inference-Header-Content-Length": str(header)})

    def close(self) -> None:
        self.ready = False
        for b in self.batchers.values():
            b.close()


def create_app(servables, *, batch_wait_ms: float = 2.0, max_batch_rows: int = 4096,
               max_request_bytes: int = MAX_REQUEST_BYTES,
               max_json_bytes: int = MAX_JSON_BYTES, read_timeout_s: float = READ_TIMEOUT_S):
    """The FastAPI application serving `servables` (`deepae.serve.models.Servable`).

    A JSON body may hold `max_json_bytes` at most (and the JSON part of a binary-extension
    body too); a binary-extension body `max_request_bytes`. A body must arrive within
    `read_timeout_s` seconds (else 408)."""
    # a wait of inf or nan would hold a lone request until max_batch_rows rows came
    if not (isinstance(batch_wait_ms, int | float) and math.isfinite(batch_wait_ms)
            and 0 <= batch_wait_ms <= 1000):
        raise ValueError(f"Expected batch_wait_ms as a finite number of milliseconds from 0 "
                         f"to 1000; received {batch_wait_ms!r}.")
    if isinstance(max_batch_rows, bool) or not isinstance(max_batch_rows, int) or \
            max_batch_rows < 1:
        raise ValueError(f"Expected max_batch_rows as an int >= 1; received "
                         f"{max_batch_rows!r}.")
    if not (isinstance(read_timeout_s, int | float) and math.isfinite(read_timeout_s)
            and read_timeout_s > 0):
        raise ValueError(f"Expected read_timeout_s as a finite number of seconds above 0; "
                         f"received {read_timeout_s!r}.")
    try:
        from fastapi import FastAPI
    except ImportError as e:
        raise ImportError('deepae serve needs FastAPI and uvicorn: pip install '
                          '"deepae[serve]"') from e
    import contextlib

    server = Server(servables, batch_wait_ms=batch_wait_ms, max_batch_rows=max_batch_rows,
                    max_request_bytes=max_request_bytes, max_json_bytes=max_json_bytes,
                    read_timeout_s=read_timeout_s)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        server.close()  # after uvicorn has finished the requests in flight

    app = FastAPI(title="deepae serve", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.server = server
    _add_error_handlers(app)
    _add_health_routes(app, server)
    _add_model_routes(app, server)
    return app


def _add_error_handlers(app) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        return _error(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        parts = [f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg', '')}"
                 for e in exc.errors()[:5]]
        return _error(400, "Invalid request: " + "; ".join(parts))

    @app.exception_handler(Exception)
    async def unexpected(request, exc):
        logger.error("unexpected error on %s %s", request.method, request.url.path,
                     exc_info=exc)
        return _error(500, "Internal error; the server's log has the details.")


def _add_health_routes(app, server: Server) -> None:
    from fastapi.responses import JSONResponse, Response

    from deepae._version import __version__

    @app.get("/v2")
    async def server_metadata():
        return {"name": "deepae", "version": __version__,
                "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        return JSONResponse({"ready": server.ready}, status_code=200 if server.ready else 503)

    @app.get("/metrics")
    async def metrics():
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(server.metrics.text(), media_type=CONTENT_TYPE_LATEST)


def _add_model_routes(app, server: Server) -> None:
    from fastapi import Request
    from fastapi.responses import Response

    def answer(name, version, what):
        try:
            model = server.model(name, version)
        except InferenceError as e:
            return _error(e.status, _one_line(e))
        return Response(json.dumps(what(model)), media_type="application/json")

    @app.get("/v2/models/{name}")
    async def metadata(name: str):
        return answer(name, None, lambda m: m.metadata())

    @app.get("/v2/models/{name}/versions/{version}")
    async def version_metadata(name: str, version: str):
        return answer(name, version, lambda m: m.metadata())

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str):
        return answer(name, None, lambda m: {"name": m.name, "ready": server.ready})

    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def version_ready(name: str, version: str):
        return answer(name, version, lambda m: {"name": m.name, "ready": server.ready})

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request):
        return await server.infer(name, request)

    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def version_infer(name: str, version: str, request: Request):
        return await server.infer(name, request, version)
