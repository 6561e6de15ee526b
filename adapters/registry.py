"""Providers from policy: one adapter (and one pooled client) per `provider` block.

Secrets are read from the environment here, once, when the providers are
built (at start and on reload) — never per request and never logged. A
missing key variable is not an error at build time: the mock and keyless
local upstreams (Ollama, vLLM) need none, and an upstream that does will
answer 401, which surfaces as `upstream_error` naming the provider.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping

import anyio

from dsl import ast
from dsl.catalog import PROVIDER_KINDS
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


async def close_providers(providers: Iterable[Provider]) -> None:
    """Close every pooled client, even if one fails to close; shielded so shutdown can't cut it short."""
    with anyio.CancelScope(shield=True):
        for p in providers:
            with contextlib.suppress(Exception):  # best effort: the rest must still close
                await p.aclose()
