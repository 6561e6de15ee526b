"""Tokens and cost: what each request used and what it cost, streamed or not.

Usage comes from the provider whenever it reports it (the router asks for a
usage chunk on every stream where the wire protocol allows). Where it does
not, the tokens are counted here with a real BPE tokenizer and the record
says so (`usage_source`):

- `provider`: the upstream's own numbers;
- `tokenizer`: counted with OpenAI's BPE (o200k_base for the GPT-4o / o-series
  / GPT-4.1+ families, cl100k_base for GPT-4, GPT-3.5 and the embedding
  models) from the `bpe-openai` package, which ships the encodings inside its
  wheel. `tiktoken` would download them on first use, which a gateway with
  no network at run time cannot do. For non-OpenAI models o200k_base is an
  approximation (within a few percent for English text);
- `estimate`: no tokenizer could be loaded: one token per 4 UTF-8 bytes,
  the rule of thumb OpenAI documents for English;
- `untrusted`: the provider reported usage, but a count in it was not a
  count (a string, a negative or fractional number, more than 2³¹−1): that
  count is taken as 0, so the cost is a lower bound (`engine/usage.py`,
  `reported_usage`);
- `none`: nothing was used or nothing could be counted (a refused request).

Accounting does not depend on how the answer travelled: a non-streamed
response without usage is counted from its text exactly as a stream is, so the
same request streamed or not costs the same.

Cost follows the providers' conventions, which the adapters normalise to
OpenAI's: cached tokens are a part of the prompt tokens, billed at the cached
price (the input price when the model has none); reasoning tokens are a part
of the completion tokens, billed at the output price.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dsl.ast import Price
from engine.ports import Usage

log = logging.getLogger("ghat.usage")
NO_USAGE = Usage(source="none")

# OpenAI's chat format: every message costs its content plus this framing;
# the reply is primed with 3 more (the cookbook's count for current models).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
_CL100K_PREFIXES = ("gpt-4-", "gpt-4", "gpt-3.5", "text-embedding-", "text-davinci")
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-")


def cost_of(usage: Usage, price: Price | None) -> float:
    """Estimated USD for `usage` at `price` (0 for a model without a price)."""
    if price is None or price.per <= 0:
        return 0.0
    cached = min(max(usage.cached_tokens, 0), max(usage.prompt_tokens, 0))
    fresh = max(usage.prompt_tokens, 0) - cached
    cached_price = price.input if price.cached_input is None else price.cached_input
    total = fresh * price.input + cached * cached_price + max(usage.completion_tokens, 0) * price.output
    return total / price.per


def encoding_name(model: str | None) -> str:
    """The BPE a model uses; o200k_base for models this does not know (documented approximation)."""
    name = (model or "").rsplit("/", 1)[-1].lower()
    if name.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if name.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return "o200k_base"


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...

    def decode_bytes(self, tokens: list[int]) -> bytes: ...


_encodings: dict[str, _Encoding | None] = {}
_encodings_lock = threading.Lock()


def _encoding(name: str) -> _Encoding | None:
    """The tokenizer for `name`, loaded once (≈0.5 s); None when no offline tokenizer is available."""
    enc = _encodings.get(name, _encodings)
    if enc is not _encodings:
        return enc  # type: ignore[return-value]
    with _encodings_lock:
        if name in _encodings:
            return _encodings[name]
        loaded: _Encoding | None = None
        try:
            with warnings.catch_warnings():  # it reads its data with a deprecated importlib call
                warnings.simplefilter("ignore", DeprecationWarning)
                import bpe_openai  # type: ignore[import-untyped]

                loaded = bpe_openai.get_encoding(name)
        except Exception as exc:  # missing package or data: fall back to the estimate, and say so
            log.warning("no offline tokenizer for %s (%s); token counts will be estimates", name, exc)
        _encodings[name] = loaded
        return loaded


def encoding(name: str) -> _Encoding | None:
    """The offline BPE encoding `name` (cl100k_base, o200k_base), or None when it cannot be loaded."""
    return _encoding(name)


def warm_up(models: Iterable[str] = ("gpt-4o", "gpt-4")) -> None:
    """Load the tokenizers now (server start-up) rather than inside the first stream that needs them."""
    for m in models:
        _encoding(encoding_name(m))


def count_tokens(text: str, model: str | None = None) -> tuple[int, str]:
    """(tokens in `text`, usage source: tokenizer or estimate)."""
    if not text:
        return 0, "tokenizer"
    enc = _encoding(encoding_name(model))
    if enc is None:
        return (len(text.encode("utf-8")) + 3) // 4, "estimate"
    return len(enc.encode_ordinary(text)), "tokenizer"


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: count the text ones
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def count_prompt_tokens(messages: Sequence[Mapping[str, Any]], model: str | None = None) -> tuple[int, str]:
    """Prompt tokens of a chat request as OpenAI counts them (content plus per-message framing)."""
    total = REPLY_PRIMING
    source = "tokenizer"
    for m in messages:
        total += TOKENS_PER_MESSAGE
        for key in ("role", "content", "name"):
            n, source = count_tokens(_content_text(m.get(key)), model)
            total += n
        if m.get("name"):
            total += TOKENS_PER_NAME
    return total, source


def _choice_text(obj: Mapping[str, Any], part: str) -> str:
    out: list[str] = []
    for choice in obj.get("choices") or ():
        if isinstance(choice, dict):
            body = choice.get(part) or {}
            if isinstance(body, dict):
                out.append(_content_text(body.get("content")))
    return "".join(out)


MAX_TOKENS_REPORTED = (1 << 31) - 1  # no single request uses two billion tokens: a larger count is not a count


def token_count(value: Any) -> int | None:
    """A provider's token count as an int, or None when it is not one (`"abc"`, `-5`, `1e30`, `true`).

    Absent or null is 0 (the provider reported nothing for that field); an
    integral float such as `12.0` is accepted, since some OpenAI-compatible
    servers write their counts that way.
    """
    if value is None:
        return 0
    if type(value) is int:
        return value if 0 <= value <= MAX_TOKENS_REPORTED else None
    if type(value) is float and value.is_integer() and 0 <= value <= MAX_TOKENS_REPORTED:
        return int(value)
    return None


def reported_usage(obj: Mapping[str, Any]) -> Usage | None:
    """Usage from an OpenAI-shaped response or chunk, or None when it carries none.

    Counts come from the provider and are not trusted: one that is not a
    count is taken as 0 and the whole usage is marked `untrusted` (in the log,
    the metrics and `ghat usage`), so a hostile or broken provider can neither
    fail a request it has answered nor write an absurd bill.
    """
    u = obj.get("usage")
    if not isinstance(u, dict):
        return None
    if "prompt_tokens" not in u and "input_tokens" in u:  # the Responses API's names for the same counts
        u = {"prompt_tokens": u.get("input_tokens"), "completion_tokens": u.get("output_tokens"),
             "prompt_tokens_details": u.get("input_tokens_details"),
             "completion_tokens_details": u.get("output_tokens_details")}  # fmt: skip
    cached = u.get("prompt_tokens_details")
    reasoning = u.get("completion_tokens_details")
    counts = (
        token_count(u.get("prompt_tokens")),
        token_count(u.get("completion_tokens")),
        token_count(cached.get("cached_tokens")) if isinstance(cached, dict) else 0,
        token_count(reasoning.get("reasoning_tokens")) if isinstance(reasoning, dict) else 0,
    )
    trusted = None not in counts and (cached is None or isinstance(cached, dict)) and (
        reasoning is None or isinstance(reasoning, dict))
    prompt, completion, cached_n, reasoning_n = (n or 0 for n in counts)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached_n,
                 reasoning_tokens=reasoning_n, source="provider" if trusted else "untrusted")


def _counted(messages: Sequence[Mapping[str, Any]] | None, completion: str, model: str | None) -> Usage:
    prompt, s1 = count_prompt_tokens(messages, model) if messages else (0, "tokenizer")
    done, s2 = count_tokens(completion, model)
    return Usage(prompt_tokens=prompt, completion_tokens=done, source="estimate" if "estimate" in (s1, s2) else s2)


def usage_of_response(response: Mapping[str, Any], messages: Sequence[Mapping[str, Any]] | None,
                      model: str | None = None) -> Usage:
    """A non-streamed chat or embeddings response: the provider's usage, else counted from the text."""
    reported = reported_usage(response)
    if reported is not None:
        return reported
    return _counted(messages, _choice_text(response, "message"), model)


class StreamUsage:
    """Accounts a stream chunk by chunk: the usage chunk if one comes, else the text counted at the end.

    Only the completion text is kept, and only until `result()`: it never
    leaves this object (the log stores counts, not text).
    """

    __slots__ = ("_model", "_parts", "_reported")

    def __init__(self, model: str | None = None) -> None:
        self._model = model
        self._parts: list[str] = []
        self._reported: Usage | None = None

    def feed(self, chunk: Mapping[str, Any]) -> None:
        reported = reported_usage(chunk)
        if reported is not None:
            self._reported = reported
        elif self._reported is None:
            text = _choice_text(chunk, "delta")
            if text:
                self._parts.append(text)

    def result(self, messages: Sequence[Mapping[str, Any]] | None) -> Usage:
        if self._reported is not None:
            return self._reported
        return _counted(messages, "".join(self._parts), self._model)


@dataclass(frozen=True, slots=True)
class Accounting:
    """What the log record and the metrics take from one request's usage."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    usage_source: str
    cost_usd: float


def account(usage: Usage, price: Price | None) -> Accounting:
    """Usage and its cost, shaped for `LogRecord`'s fields."""
    return Accounting(
        usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens,
        usage.source, cost_of(usage, price),
    )  # fmt: skip


def price_of(models: Mapping[str, Any], model: str | None) -> Price | None:
    """The price of a `provider/model` in a compiled policy's `models` table, if it has one."""
    m = models.get(model) if model else None
    return getattr(m, "price", None)
