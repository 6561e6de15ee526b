"""What a server serves: the compiled policy, its router, the key store — and how they are swapped.

A reload (policy file changed, key file changed, or SIGHUP) compiles in a
worker thread, off the request path and paced so that it leaves the event loop
the interpreter lock (adapters/api/pacing.py), reusing what did not change,
and replaces `Gateway.served` in one assignment: a request reads `served` once at its start and keeps that
version to its end, so no request ever mixes two policies. A set that fails
to compile keeps the old one serving and logs every diagnostic.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio

from adapters.api.observe import Observers, open_observers
from adapters.api.pacing import Pacer
from adapters.registry import build_providers, close_providers, unset_env_by_provider
from dsl.diagnostics import PolicyError, render_text
from engine.compiler import CompiledApp, CompiledPolicy
from engine.detectors.base import ScanContext
from engine.guards import GuardPipeline, GuardResult, Redactor
from engine.keys import KeyStore
from engine.pipeline import Build, PolicySetError, build
from engine.ports import Provider
from engine.ratelimit import MemoryRateLimiter, RateLimiter
from engine.router import Router
from engine.verdict import Verdict, check_in_child

log = logging.getLogger("ghat.server")
POLL_S = 1.0
PROVIDER_GRACE_S = 330.0  # old pooled clients outlive the longest in-flight request of a replaced policy

# Per-request accumulator of input-guard time (each request runs in its own task, hence its own context).
GUARD_MS: contextvars.ContextVar[list[float]] = contextvars.ContextVar("ghat_guard_ms")


@dataclass(frozen=True, slots=True)
class TimedPipeline(GuardPipeline):
    """A guard pipeline that adds its run time to GUARD_MS, so Server-Timing can split it from resolve."""

    def run(self, texts: list[tuple[ScanContext, str]], redactor: Redactor | None = None) -> GuardResult:
        t0 = time.perf_counter()
        try:
            return GuardPipeline.run(self, texts, redactor)
        finally:
            acc = GUARD_MS.get(None)
            if acc is not None:
                acc[0] += (time.perf_counter() - t0) * 1000.0


def _timed(policy: CompiledPolicy, kept: dict[str, CompiledApp]) -> CompiledPolicy:
    """The policy with every input pipeline timed; `kept` are apps already wrapped by the previous version."""
    apps = {}
    for name, app in policy.apps.items():
        done = kept.get(name)
        if done is None:
            p = app.input
            done = replace(app, input=TimedPipeline(p.direction, p.rules, p.block_message, p.app))
        apps[name] = done
    return replace(policy, apps=apps)


@dataclass(frozen=True, slots=True)
class Served:
    """One policy version with everything derived from it that requests need."""

    policy: CompiledPolicy
    router: Router
    restore: dict[str, frozenset[str]]  # app → input types whose placeholders return to the caller
    models: dict[str, bytes]  # app → the /v1/models body, rendered once
    mtimes: tuple[tuple[str, int], ...] = field(default=())
    build: Build | None = field(default=None, compare=False, repr=False)  # what the next reload may reuse


SETTINGS_ENV = "GHAT_SERVE_SETTINGS"  # `ghat serve` → its uvicorn workers, as JSON


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything `ghat serve` was started with (passed to workers as JSON)."""

    policies: str
    env: str
    keys: str
    data_dir: str
    redis_url: str | None = None
    max_body_bytes: int = 8 << 20  # `ghat serve --max-body` (cli/serve.py DEFAULT_MAX_BODY)
    watch: bool = True
    otlp_endpoint: str | None = None  # OpenTelemetry traces over OTLP/HTTP when set
    header_timeout_s: float = 10.0  # a client must send its request headers within this (slowloris)
    body_timeout_s: float = 30.0  # and its body within this, once the headers are in
    max_header_bytes: int = 32_768  # request line + headers, else 431 (adapters/api/protocol.py)
    unset_env: str = "refuse"  # refuse | skip: a reachable provider's `env.` variable is unset (adapters/registry.py)

    @classmethod
    def from_env(cls) -> Settings | None:
        """The settings `ghat serve` handed its workers, or None outside `ghat serve`."""
        raw = os.environ.get(SETTINGS_ENV)
        return cls(**json.loads(raw)) if raw else None


def _mtimes(paths: list[Path]) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for root in paths:
        files = sorted(root.rglob("*.policy")) if root.is_dir() else [root]
        for f in files:
            try:
                out.append((str(f), f.stat().st_mtime_ns))
            except FileNotFoundError:
                continue
    return tuple(out)


def _models_body(policy: CompiledPolicy, app: str) -> bytes:
    from adapters.jsonwire import dumps

    names = policy.apps[app].plans
    data = [{"id": n, "object": "model", "created": 0, "owned_by": "ghat", "kind": policy.kinds.get(n, "chat")}
            for n in names]  # fmt: skip
    return dumps({"object": "list", "data": data})


def build_served(
    settings: Settings, previous: Served | None, verdict: Verdict | None = None, pacer: Pacer | None = None
) -> Served:
    """Compile and derive (runs in a worker thread); raises PolicyError on a bad set.

    Through the one pipeline (engine/pipeline.py), reusing the previous version's parsed
    files and compiled apps: a reload costs what changed, not the size of the set. A
    reload passes the child's `verdict` and a `pacer` (see `Gateway.reload`).
    """
    paths = [Path(settings.policies)]
    mtimes = _mtimes(paths)
    pace = pacer.checkpoint if pacer is not None else None
    built = build(paths, settings.env, previous=previous.build if previous is not None else None,
                  verdict=verdict, pace=pace)  # fmt: skip
    assert built.policy is not None
    kept = _unchanged(built, previous)
    policy = _timed(built.policy, {name: previous.policy.apps[name] for name in kept} if previous else {})
    unset = unset_env_by_provider(policy)  # requests would go out without credentials (adapters/registry.py)
    if unset and settings.unset_env != "skip":
        raise PolicyError([d for found in unset.values() for d in found])
    unavailable = {name: f"{name}: not served here ({found[0].message}; set it and reload)"
                   for name, found in unset.items()}  # fmt: skip
    for why in unavailable.values():
        log.warning("--unset-env skip: %s", why)
    if (previous is not None and previous.policy.providers == policy.providers
            and previous.router.unavailable == unavailable):
        router = previous.router  # same upstreams: keep pooled connections and breaker state
    else:
        served = {name: spec for name, spec in policy.providers.items() if name not in unavailable}
        router = Router(build_providers(served), unavailable=unavailable)
    restore = {name: app.input.restore_types for name, app in policy.apps.items()}
    models = {name: previous.models[name] if name in kept and previous else _models_body(policy, name)
              for name in policy.apps}  # fmt: skip
    return Served(policy, router, restore, models, mtimes, built)


def _unchanged(built: Build, previous: Served | None) -> set[str]:
    """Apps the pipeline kept from the previous version as they were: their derived parts are kept too."""
    if previous is None or previous.build is None:
        return set()
    old = previous.build.apps
    return {name for name, (_, app) in built.apps.items() if name in old and old[name][1] is app
            and name in previous.policy.apps}  # fmt: skip


class Gateway:
    """The server's long-lived state; `served` and `keys` are swapped whole, never edited."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.served: Served = build_served(settings, None)  # at start a bad set is fatal: nothing to keep
        self.keys = KeyStore.load(Path(settings.keys))
        self.limiter: RateLimiter = self._limiter()
        self.observers: Observers = open_observers(Path(settings.data_dir), settings.env, settings.otlp_endpoint)
        self.started = time.time()
        self.ready = True
        self.reloads = 0
        self._retired: list[tuple[float, list[Provider]]] = []
        self._lock = anyio.Lock()

    def _limiter(self) -> RateLimiter:
        if self.settings.redis_url:
            from adapters.ratelimit_redis import RedisRateLimiter

            return RedisRateLimiter(self.settings.redis_url)
        return MemoryRateLimiter()

    async def reload(self, reason: str) -> bool:
        """Compile off the request path and swap; on failure keep serving the old version.

        The check runs in a child process (engine/verdict.py) and the rest in a worker
        thread that steps aside for requests (adapters/api/pacing.py), so serving does
        not slow down while a large set reloads.
        """
        async with self._lock:
            old = self.served
            started = time.perf_counter()
            try:
                verdict = await anyio.to_thread.run_sync(check_in_child, [Path(self.settings.policies)])
                new = await anyio.to_thread.run_sync(build_served, self.settings, old, verdict, Pacer())
            except (PolicyError, PolicySetError) as err:
                diagnostics = err.diagnostics if isinstance(err, PolicyError) else []
                text = "\n".join(render_text(d, None) for d in diagnostics) or str(err)
                log.error("policy reload (%s) failed; still serving %s:\n%s", reason, old.policy.version, text)
                self.served = replace(old, mtimes=_mtimes([Path(self.settings.policies)]))  # don't retry until edited
                return False
            except Exception:
                log.exception("policy reload (%s) failed; still serving %s", reason, old.policy.version)
                return False
            self.served = new
            self.reloads += 1
            if new.router is not old.router:
                self._retired.append((time.monotonic() + PROVIDER_GRACE_S, list(old.router.providers.values())))
            done = new.build
            where = "in a child process" if done is not None and done.checked_by is verdict else "in process"
            log.warning("policy %s loaded (%s) in %.3f s: checked %s, %d file(s) parsed, %d app(s) compiled; "
                        "was %s", new.policy.version, reason, time.perf_counter() - started, where,
                        done.parse_cache.parsed if done else 0, done.compiled if done else 0,
                        old.policy.version)  # fmt: skip
            return True

    def reload_keys(self) -> None:
        try:
            self.keys = KeyStore.load(Path(self.settings.keys))
        except (OSError, ValueError, TypeError):
            log.exception("could not reload the key store %s; keeping the previous keys", self.settings.keys)

    async def watch(self) -> None:
        """Poll the key file and the policy files' mtimes (a few stat calls a second, no extra dependency).

        Two loops, each with its own error handling: a policy folder that cannot
        be walked (a symlink loop, a permission error) must not stop key
        revocation, which once sat in the same try block and never ran again.
        """
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_keys)
            tg.start_soon(self._watch_policies)

    async def _watch_keys(self) -> None:
        keys_path = Path(self.settings.keys)
        while True:
            await anyio.sleep(POLL_S)
            try:
                mtime = keys_path.stat().st_mtime_ns if keys_path.exists() else 0
                if mtime != self.keys.mtime_ns:
                    self.reload_keys()
            except Exception:
                log.exception("key store watch failed; retrying in %s s", POLL_S)

    async def _watch_policies(self) -> None:
        while True:
            await anyio.sleep(POLL_S)
            try:
                if self.settings.watch and _mtimes([Path(self.settings.policies)]) != self.served.mtimes:
                    await self.reload("files changed")
                await self._close_retired(force=False)
            except Exception:
                log.exception("watcher iteration failed")

    async def _close_retired(self, force: bool) -> None:
        now = time.monotonic()
        due = [p for t, p in self._retired if force or t <= now]
        self._retired = [(t, p) for t, p in self._retired if not (force or t <= now)]
        for providers in due:
            await close_providers(providers)

    async def aclose(self) -> None:
        """Shutdown: flush the log, then close every pooled client."""
        self.ready = False
        await self.observers.aclose()
        await self._close_retired(force=True)
        await close_providers(self.served.router.providers.values())
        closer: Any = getattr(self.limiter, "aclose", None)
        if closer is not None:
            await closer()
