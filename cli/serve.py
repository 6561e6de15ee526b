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
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policies", required=True, help="policy directory or file")
    p.add_argument("--env", required=True, help="the environment served (other envs' keys and apps do not exist)")
    p.add_argument("--keys", help="key store file (default: DATA_DIR/keys.json)")
    p.add_argument("--data-dir", help="state directory (default: $GHAT_DATA_DIR or the user data dir)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--redis-url", help="share rate limits through Redis (default: in memory, per process)")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--max-body-bytes", type=int, default=1 << 20)
    p.add_argument("--max-header-bytes", type=int, default=32_768,
                   help="largest request line plus headers, in bytes (else 431 and close)")
    p.add_argument("--keep-alive", type=int, default=5, help="idle keep-alive timeout, whole seconds")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a client has to send its request headers (else 408 and close)")
    p.add_argument("--body-timeout", type=float, default=30.0,
                   help="seconds a client has to send its request body once the headers are in (else 408)")
    p.add_argument("--graceful-timeout", type=int, default=30, help="whole seconds in-flight requests get on SIGTERM")
    p.add_argument("--no-watch", action="store_true", help="reload only on SIGHUP, not on file changes")
    p.add_argument("--access-log", action="store_true", help="log every request line (costs CPU)")
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

    data = data_dir(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        policies=str(Path(args.policies).resolve()), env=args.env,
        keys=str(keys_path(args.keys, data).resolve()), data_dir=str(data.resolve()),
        redis_url=args.redis_url, max_body_bytes=args.max_body_bytes, watch=not args.no_watch,
        otlp_endpoint=args.otlp_endpoint or otlp_endpoint_from_env(),
        header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
        max_header_bytes=args.max_header_bytes,
    )  # fmt: skip
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    loop = "uvloop" if sys.platform != "win32" else "asyncio"
    try:
        uvicorn.run(
            "server:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
            loop=loop, http="adapters.api.protocol:HeaderTimeoutProtocol",  # httptools + a header timeout
            lifespan="on", log_level=args.log_level, access_log=args.access_log,
            timeout_keep_alive=args.keep_alive, timeout_graceful_shutdown=args.graceful_timeout,
            server_header=False, date_header=False,
            proxy_headers=False,  # nothing reads the client address or scheme: skip X-Forwarded-* on every request
        )  # fmt: skip
    except SystemExit as exc:  # lifespan failure (a policy set that does not compile) exits 3
        return int(exc.code or 0)
    return 0
