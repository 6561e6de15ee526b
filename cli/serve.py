"""`ghat serve`: run the gateway for one environment with uvicorn (uvloop + httptools).

Settings reach the worker processes as JSON in `GHAT_SERVE_SETTINGS` and the
app is built by the `server:create_app` factory, so `--workers N` works the
same as one worker. Timeouts: a client has `--header-timeout` seconds for
its request headers (`adapters/api/protocol.py`) and `--body-timeout` for its
body, else a 408; idle keep-alive connections close after `--keep-alive`
seconds; on SIGTERM uvicorn stops accepting, lets in-flight
requests finish for up to `--graceful-timeout` seconds, then the lifespan
shutdown flushes the request log. SIGHUP reloads the policy (with several
workers, uvicorn restarts them, which reloads too).

Logging is configured here, once, for every worker: `--log-level` applies to
uvicorn's own messages and to ghat's (`ghat.*`); `--access-log` writes one line
per request whatever `--log-level` is (uvicorn writes it at `info`, which the
default level used to swallow), through `AccessLogFilter`, so no key reaches
the log from the query string or the path. uvicorn's access line has no
headers, so `Authorization` and `x-api-key` never reach it either.

`--workers N` (N > 1) without `--redis-url` is refused: each process would keep
its own rate-limit windows, so every limit would admit N times its rate
without a word. `--per-process-limits` accepts that, with a warning at start.
"""

from __future__ import annotations

import argparse
import copy
import logging
import re
import sys
from typing import Any

# What the access log must never show: a ghat key (`ghat_<env>_<random>`) or a provider-style secret in the
# path, and any query value at all (`?key=…`, `?api_key=…`, `?token=…`: names stay, values go).
_KEYLIKE = re.compile(r"ghat_[A-Za-z0-9-]+_[A-Za-z0-9]{6,}|sk-[A-Za-z0-9_-]{8,}")
_QUERY_VALUE = re.compile(r"=[^&]*")


def redact_target(target: str) -> str:
    """A request target as the access log may show it: key-shaped tokens masked, query values dropped."""
    path, sep, query = target.partition("?")
    path = _KEYLIKE.sub(lambda m: m.group()[:10] + "…", path)
    return path + sep + _QUERY_VALUE.sub("=…", query) if sep else path


class AccessLogFilter(logging.Filter):
    """Rewrites uvicorn's access record (client, method, target, version, status) with `redact_target`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3:
            record.args = (args[0], args[1], redact_target(str(args[2])), *args[3:])
        return True


def log_config(level: str, access_log: bool) -> dict[str, Any]:
    """uvicorn's logging config with ghat's loggers at `level` and the access log, when on, at info, redacted."""
    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    name = level.upper()
    cfg["filters"] = {"redact_keys": {"()": "cli.serve.AccessLogFilter"}}
    cfg["handlers"]["access"]["filters"] = ["redact_keys"]
    cfg["loggers"]["uvicorn"]["level"] = name
    cfg["loggers"]["uvicorn.error"]["level"] = name
    cfg["loggers"]["uvicorn.access"]["level"] = "INFO" if access_log else "WARNING"
    cfg["loggers"]["ghat"] = {"handlers": ["default"], "level": name, "propagate": False}
    return cfg


# Big enough for a few images inline (a 900 KB PNG is 1.2 MB as base64, Claude Code sends screenshots), small
# enough that one body's scan stays short (input guards run off the event loop, P15; `max_scan` caps an app).
DEFAULT_MAX_BODY = "8MiB"
_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1 << 10, "mb": 1000**2, "mib": 1 << 20, "gb": 1000**3, "gib": 1 << 30}
_SIZE = re.compile(r"\s*(\d+)\s*([a-zA-Z]*)\s*")


def byte_size(text: str) -> int:
    """`8MiB`, `900KB`, `1048576`: a size in bytes, for flags people write by hand."""
    m = _SIZE.fullmatch(text)
    unit = _UNITS.get(m.group(2).lower()) if m else None
    if m is None or unit is None or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (write e.g. 8MiB, 900KB or a number of bytes)")
    return int(m.group(1)) * unit


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policies", required=True, help="policy directory or file")
    p.add_argument("--env", required=True, help="the environment served (other envs' keys and apps do not exist)")
    p.add_argument("--keys", help="key store file (default: DATA_DIR/keys.json)")
    p.add_argument("--data-dir", help="state directory (default: $GHAT_DATA_DIR or the user data dir)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes; more than one needs --redis-url (or --per-process-limits)")
    p.add_argument("--redis-url", help="share rate limits through Redis (default: in memory, per process)")
    p.add_argument("--per-process-limits", action="store_true",
                   help="allow --workers N without --redis-url: each process enforces every limit on its own")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--max-body", "--max-body-bytes", dest="max_body_bytes", type=byte_size, default=DEFAULT_MAX_BODY,
                   metavar="SIZE", help="largest request body, e.g. 8MiB, 900KB or bytes (else 413)")
    p.add_argument("--max-header-bytes", type=int, default=32_768,
                   help="largest request line plus headers, in bytes (else 431 and close)")
    p.add_argument("--keep-alive", type=int, default=5, help="idle keep-alive timeout, whole seconds")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a client has to send its request headers (else 408 and close)")
    p.add_argument("--body-timeout", type=float, default=30.0,
                   help="seconds a client has to send its request body once the headers are in (else 408)")
    p.add_argument("--graceful-timeout", type=int, default=30, help="whole seconds in-flight requests get on SIGTERM")
    p.add_argument("--no-watch", action="store_true", help="reload only on SIGHUP, not on file changes")
    p.add_argument("--unset-env", choices=["refuse", "skip"], default="refuse",
                   help="a provider a served app can reach reads an unset env. variable: refuse to start "
                        "(default) or serve without that provider (its routes fall back, or answer 503)")
    p.add_argument("--access-log", action="store_true",
                   help="log every request line, keys and query values redacted (costs CPU)")
    p.add_argument("--otlp-endpoint", help="send OpenTelemetry traces to this OTLP/HTTP traces URL (default: "
                   "$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or $OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces; "
                   "needs ghat[otel])")


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("serve", help="run the gateway")
    add_serve_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os
    from dataclasses import asdict
    from pathlib import Path

    import uvicorn

    from adapters.api.state import SETTINGS_ENV, Settings
    from adapters.tracing import otlp_endpoint_from_env
    from engine.keys import data_dir, keys_path

    if args.workers > 1 and not args.redis_url:
        if not args.per_process_limits:
            print(f"ghat serve: --workers {args.workers} without --redis-url would give each process its own "
                  f"rate-limit windows, so every limit would admit {args.workers} times its rate; pass "
                  "--redis-url URL to share them, or --per-process-limits to accept that", file=sys.stderr)
            return 2
        logging.getLogger("ghat.serve").warning(
            "--per-process-limits: %d workers without --redis-url; each rate limit admits up to %d times its rate",
            args.workers, args.workers)
    data = data_dir(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        policies=str(Path(args.policies).resolve()), env=args.env,
        keys=str(keys_path(args.keys, data).resolve()), data_dir=str(data.resolve()),
        redis_url=args.redis_url, max_body_bytes=args.max_body_bytes, watch=not args.no_watch,
        otlp_endpoint=args.otlp_endpoint or otlp_endpoint_from_env(),
        header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
        max_header_bytes=args.max_header_bytes, unset_env=args.unset_env,
    )  # fmt: skip
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    loop = "uvloop" if sys.platform != "win32" else "asyncio"
    try:
        uvicorn.run(
            "server:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
            loop=loop, http="adapters.api.protocol:HeaderTimeoutProtocol",  # httptools + a header timeout
            lifespan="on", log_config=log_config(args.log_level, args.access_log), log_level=None,
            access_log=args.access_log,
            timeout_keep_alive=args.keep_alive, timeout_graceful_shutdown=args.graceful_timeout,
            server_header=False, date_header=False,
            proxy_headers=False,  # nothing reads the client address or scheme: skip X-Forwarded-* on every request
        )  # fmt: skip
    except SystemExit as exc:  # lifespan failure (a policy set that does not compile) exits 3
        return int(exc.code or 0)
    return 0
