"""Providers from policy: one adapter (and one pooled client) per `provider` block.

Secrets are read from the environment here, once, when the providers are
built (at start and on reload) — never per request and never logged. An
`env.` reference to a variable that is not set is an error (`unset_env_errors`)
for every provider an app of the served environment can reach: requests would
otherwise go out with no credentials. The server refuses to start on it, and a
reload that brings one in keeps the previous policy serving — unless it is
started with `--unset-env skip` (what `make serve` does: a laptop has no
OpenAI key), which serves without those providers: their candidates are passed
over and a route with nothing else answers 503 saying which variable is unset.
Providers no served app can reach are not checked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping

import anyio

from dsl import ast
from dsl.catalog import PROVIDER_KINDS
from dsl.diagnostics import Diagnostic
from dsl.lint import unset_env
from engine.compiler import CompiledPolicy, Plan
from engine.ports import Provider


def _resolve(value: str, environ: Mapping[str, str]) -> str:
    """`env.NAME` (as the parser encodes an environment reference) → the variable's value."""
    return environ.get(value[4:], "") if value.startswith("env.") else value


def build_provider(spec: ast.Provider, environ: Mapping[str, str] | None = None) -> Provider:
    """The adapter for one provider block."""
    env = os.environ if environ is None else environ
    key = spec.api_key_literal if spec.api_key_literal is not None else (
        env.get(spec.api_key_env) if spec.api_key_env else None
    )
    headers = {k: _resolve(v, env) for k, v in spec.headers}
    base_url = spec.base_url or PROVIDER_KINDS.get(spec.kind) or ""
    if spec.kind == "mock":
        from adapters.mock import MockProvider

        return MockProvider(spec.name)
    if spec.kind == "openai":
        from adapters.openai import OpenAIProvider

        return OpenAIProvider(spec.name, base_url, key, headers, spec.timeout_s)
    if spec.kind == "anthropic":
        from adapters.anthropic import AnthropicProvider

        return AnthropicProvider(spec.name, base_url, key, headers, spec.timeout_s)
    raise ValueError(f"provider {spec.name}: unknown kind {spec.kind!r}")  # the checker rejects this first


def build_providers(specs: Mapping[str, ast.Provider], environ: Mapping[str, str] | None = None) -> dict[str, Provider]:
    """Every provider of a compiled policy, keyed by name (`CompiledPolicy.providers`)."""
    return {name: build_provider(spec, environ) for name, spec in specs.items()}


def reachable_providers(policy: CompiledPolicy) -> set[str]:
    """Every provider some app of the compiled environment can dispatch to: primaries, splits and fallbacks."""
    out: set[str] = set()
    stack: list[Plan] = [plan for app in policy.apps.values() for plan in app.plans.values()]
    while stack:
        for segment in stack.pop().segments:
            if isinstance(segment, tuple):
                out.update(c.provider for c in segment)
            else:
                stack.extend(segment.members)
    return out


def unset_env_by_provider(policy: CompiledPolicy, environ: Mapping[str, str] | None = None
                          ) -> dict[str, list[Diagnostic]]:
    """`security/unset-env` as errors, per reachable provider whose `env.` variables are not set."""
    env = os.environ if environ is None else environ
    out: dict[str, list[Diagnostic]] = {}
    for name in sorted(reachable_providers(policy)):
        spec = policy.providers.get(name)
        if spec is None or spec.kind == "mock":
            continue
        if found := [d.with_level("error") for d in unset_env(spec, env)]:
            out[name] = found
    return out


def unset_env_errors(policy: CompiledPolicy, environ: Mapping[str, str] | None = None) -> list[Diagnostic]:
    """Every `unset_env_by_provider` diagnostic, in provider order."""
    return [d for found in unset_env_by_provider(policy, environ).values() for d in found]


async def close_providers(providers: Iterable[Provider]) -> None:
    """Close every pooled client, even if one fails to close; shielded so shutdown can't cut it short."""
    with anyio.CancelScope(shield=True):
        for p in providers:
            with contextlib.suppress(Exception):  # best effort: the rest must still close
                await p.aclose()
