"""`deepae serve`: saved deepae models over HTTP with the Open Inference Protocol (v2), the
protocol of KServe, Triton and Seldon, on FastAPI and uvicorn.

`load_servables` loads and warms the models, `create_app` makes the ASGI application (what
tests drive in process), `run` serves it with uvicorn until SIGTERM or Ctrl-C, finishing the
requests in flight. FastAPI, uvicorn and prometheus-client come with ``pip install
"deepae[serve]"``; nothing here imports them until it needs them.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

from deepae.serve.models import Servable, servable
from deepae.serve.protocol import InferenceError

__all__ = ["create_app", "load_servables", "model_names", "run", "Servable", "servable",
           "InferenceError", "NAME_PATTERN"]

# a model's name is a path segment of the URL: letters, digits, '.', '_' and '-'
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def create_app(servables, **options):
    """The FastAPI application; see `deepae.serve.app.create_app`."""
    from deepae.serve.app import create_app as _create

    return _create(servables, **options)


def model_names(paths, names=None) -> list[str]:
    """One name per model file: `names` in order where given, else the file's stem."""
    names = list(names or [])
    if len(names) > len(paths):
        raise ValueError(f"Expected at most one name per model ({len(paths)}); received "
                         f"{len(names)} names {names}.")
    out = names + [Path(p).stem for p in paths[len(names):]]
    for n in out:
        if not NAME_PATTERN.fullmatch(n):
            raise ValueError(f"Expected a model name of letters, digits, '.', '_' and '-' "
                             f"(a URL path segment); received {n!r}: give one with --name.")
    dup = sorted({n for n in out if out.count(n) > 1})
    if dup:
        raise ValueError(f"Two models would be served as {dup}: give each its own name with "
                         "--name.")
    return out


def warm(model: Servable) -> None:
    """Run the model once on a made-up row, so that the first request does not pay for
    tracing its functions."""
    model.run(model.example(), model.options({}, None))


def load_servables(paths, names=None) -> list[Servable]:
    """Load each model file (`deepae.load`), wrap it (`servable`) and warm it.

    Parameters
    ----------
    paths : list of path-like
        Saved deepae models.
    names : list of str, optional
        Their names in the URL, in order (`model_names`); default: the files' stems.

    Returns
    -------
    list of Servable

    Raises
    ------
    OSError, ValueError, TypeError
        Naming the file: one that cannot be read or loaded, a kind that is not served, a
        warm-up call that fails.
    """
    import deepae

    out = []
    for path, name in zip(paths, model_names(paths, names), strict=True):
        try:
            estimator = deepae.load(path)
            model = servable(name, estimator)
        except (OSError, ValueError, TypeError) as e:
            raise type(e)(f"cannot serve {str(path)!r}: {' '.join(str(e).split())}") from e
        try:
            warm(model)
        except (ValueError, TypeError) as e:
            raise ValueError(f"cannot serve {str(path)!r}: its warm-up call failed: "
                             f"{' '.join(str(e).split())}") from e
        out.append(model)
    return out


def run(servables, *, host: str = "127.0.0.1", port: int = 8080, batch_wait_ms: float = 2.0,
        max_batch_rows: int = 4096, max_request_bytes: int | None = None,
        max_json_bytes: int | None = None, read_timeout_s: float | None = None,
        max_concurrency: int = 256, shutdown_timeout: float = 30.0, log_level: str = "info",
        access_log: bool = False) -> None:
    """Serve `servables` until SIGTERM or SIGINT; uvicorn then stops accepting connections
    and finishes the requests in flight (waiting at most `shutdown_timeout` seconds) before
    returning.

    Parameters
    ----------
    servables : list of Servable
        From `load_servables`.
    host, port : str and int
        Where to listen; 127.0.0.1 (this machine only) unless told otherwise.
    batch_wait_ms : float
        How long a request waits for others to share its model call.
    max_batch_rows : int
        Rows at most in one merged model call.
    max_request_bytes : int, optional
        The largest request body (default 64 MiB); larger ones are answered 413.
    max_json_bytes : int, optional
        The largest JSON body, and JSON part of a binary-extension body (default 8 MiB:
        JSON takes ~20 times its size in memory); larger ones are answered 413.
    read_timeout_s : float, optional
        Seconds a request body may take to arrive (default 30); then 408.
    max_concurrency : int
        Connections and requests at most at once (uvicorn's ``limit_concurrency``); past
        it, new ones are answered 503.
    shutdown_timeout : float
        Seconds to finish the requests in flight after SIGTERM.
    log_level : str
        uvicorn's log level.
    access_log : bool
        Log every request.
    """
    try:
        import uvicorn
    except ImportError as e:
        raise ImportError('deepae serve needs FastAPI and uvicorn: pip install '
                          '"deepae[serve]"') from e
    from deepae.serve.app import MAX_JSON_BYTES, MAX_REQUEST_BYTES, READ_TIMEOUT_S

    app = create_app(servables, batch_wait_ms=batch_wait_ms, max_batch_rows=max_batch_rows,
                     max_request_bytes=max_request_bytes or MAX_REQUEST_BYTES,
                     max_json_bytes=max_json_bytes or MAX_JSON_BYTES,
                     read_timeout_s=read_timeout_s or READ_TIMEOUT_S)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            access_log=access_log, timeout_graceful_shutdown=shutdown_timeout,
                            limit_concurrency=max_concurrency, server_header=False)
    # uvicorn handles SIGTERM itself (stop accepting, finish the requests in flight), then
    # raises the signal again for the handler it found; this one makes that a clean exit
    # (status 0), which is what a process manager expects of a graceful stop
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        uvicorn.Server(config).run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped(signum, frame) -> None:
    """SIGTERM after uvicorn's graceful shutdown: nothing left to do."""
