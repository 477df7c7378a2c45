"""`deepae serve MODEL...`: serve saved models over HTTP with the Open Inference Protocol
(v2). A thin layer over `deepae.serve`: check the arguments, load and warm the models, run
the server. FastAPI and uvicorn are imported only when the command runs."""

from __future__ import annotations

import argparse
import math

from deepae.cli._options import UserError, add_common_options, not_stdio, status

__all__ = ["add_serve_parser"]


def _names(values) -> list[str]:
    """--name given once per model, or as a comma list, or both: the names in order."""
    return [n.strip() for v in values or [] for n in v.split(",") if n.strip()]


def _in_range(kind, low, high, *, above_low=False):
    """An argparse type: a finite int or float from `low` (or above it) to `high`; never
    inf or nan, which a wait or a timeout would take as 'forever'."""
    what = (f"{'an int' if kind is int else 'a finite number'} "
            f"{'above' if above_low else 'from'} {low:,} {'and up ' if above_low else ''}to "
            f"{high:,}")

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}; received {text!r}") from None
        if not (math.isfinite(value) and (value > low if above_low else value >= low)
                and value <= high):
            raise argparse.ArgumentTypeError(f"expected {what}; received {text!r}")
        return value
    return parse


def _port(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535; received {text!r}")
    return value


def cmd_serve(args):
    from deepae.serve import load_servables, model_names, run

    for path in args.models:
        not_stdio(path, "MODEL", "name a saved .deepae model file")
    try:
        names = model_names(args.models, _names(args.name))
    except ValueError as e:
        raise UserError(str(e)) from e
    models = load_servables(args.models, names)
    for m in models:
        status(f"loaded {m.name!r}: {type(m.estimator).__name__} "
               f"({', '.join(s.name for s in m.inputs[:6])}"
               f"{', ...' if len(m.inputs) > 6 else ''} -> "
               f"{', '.join(s.name for s in m.outputs)})")
    host = f"[{args.host}]" if ":" in args.host else args.host
    status(f"serving {len(models)} model(s) at http://{host}:{args.port}/v2/models/"
           f"{{{','.join(names)}}}/infer (metrics: /metrics); Ctrl-C or SIGTERM stops")
    run(models, host=args.host, port=args.port, batch_wait_ms=args.batch_wait_ms,
        max_batch_rows=args.max_batch_rows, max_request_bytes=args.max_request_bytes,
        max_json_bytes=args.max_json_bytes, read_timeout_s=args.read_timeout_s,
        max_concurrency=args.max_concurrency, shutdown_timeout=args.shutdown_timeout, log_level=args.log_level,
        access_log=args.access_log)
    status("server stopped")
    return 0


def add_serve_parser(sub):
    """Add ``serve``."""
    s = sub.add_parser(
        "serve", help="serve saved models over HTTP (Open Inference Protocol v2)",
        description="Serve saved deepae models over HTTP with the Open Inference Protocol "
        "(v2, as KServe, Triton and Seldon speak it): GET /v2/health/ready, GET "
        "/v2/models/NAME (inputs and outputs), POST /v2/models/NAME/infer, GET /metrics. "
        "Concurrent requests to a model are batched into one call. Needs pip install "
        '"deepae[serve]". See docs/serving.md.')
    s.add_argument("models", nargs="+", metavar="MODEL", help="saved .deepae model files")
    s.add_argument("--name", action="append", metavar="NAME",
                   help="the URL name of a model, in the order of MODEL (repeat it, or give "
                   "a comma list; default: each file's stem)")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 "
                   "for every interface, as in a container)")
    s.add_argument("--port", type=_port, default=8080, help="TCP port (default 8080)")
    s.add_argument("--batch-wait-ms", type=_in_range(float, 0, 1000), default=2.0,
                   help="how long a request waits for others to batch with, 0 to 1000 "
                   "(default 2)")
    s.add_argument("--max-batch-rows", type=_in_range(int, 1, 2 ** 20), default=4096,
                   help="rows at most in one batched model call (default 4096)")
    s.add_argument("--max-request-bytes", type=_in_range(int, 1, 2 ** 32),
                   default=64 * 2 ** 20, help="largest request body in the binary tensor "
                   "extension (default 64 MiB); larger ones are answered 413")
    s.add_argument("--max-json-bytes", type=_in_range(int, 1, 2 ** 32), default=8 * 2 ** 20,
                   help="largest JSON request body, and JSON part of a binary one (default "
                   "8 MiB: JSON takes ~20 times its size in memory); larger ones are answered "
                   "413")
    s.add_argument("--read-timeout-s", type=_in_range(float, 0, 3600, above_low=True),
                   default=30.0, help="seconds a request body may take to arrive (default "
                   "30); slower ones are answered 408")
    s.add_argument("--max-concurrency", type=_in_range(int, 1, 100_000), default=256,
                   help="connections and requests at most at once (default 256); past it, "
                   "new ones are answered 503")
    s.add_argument("--shutdown-timeout", type=_in_range(float, 0, 3600, above_low=True),
                   default=30.0, help="on SIGTERM, seconds to finish the requests in flight "
                   "(default 30)")
    s.add_argument("--log-level", default="info",
                   choices=("critical", "error", "warning", "info", "debug"),
                   help="server log level (default info)")
    s.add_argument("--access-log", action="store_true", help="log every request")
    add_common_options(s, output=False)
    s.set_defaults(func=cmd_serve)
