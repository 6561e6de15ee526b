"""Provider replies checked before anything reads them: the shapes and ranges the gateway relies on.

A provider is not trusted (GUIDE §6): a reply that parses as JSON can still
hold a `choices` that is a string, an `index` that is a list, a `delta` that is
a number. The router, the output guards, the stream relay and the dialect
codecs read those fields; one wrong type deep inside them was a 500 after a
billed call, or a stream dropped mid-answer with no error event. So every
field the gateway reads is checked here, once, where the reply arrives, and
a reply that fails is `upstream_error` (502, not retried: a provider that
sends wrong types will send them again, and each attempt is billed) naming
the field. Fields the gateway does not read pass through unchecked: new
provider fields keep working without a release.

Token counts are the exception: a count that is not a count (`"abc"`,
`1e30`, `-5`) does not make the answer unusable, so it is left for
`engine/usage.py` to mark the request's usage `untrusted` while the caller
still gets the answer.
"""

from __future__ import annotations

from typing import Any

from engine.ports import JSON, ProviderError

MAX_CHOICES = 128  # a choice `index` at or past this is not a choice (requests ask for n ≤ 16)


def invalid_reply(provider: str, what: str) -> ProviderError:
    """A reply of the wrong shape: the provider's fault, not the caller's, and not worth paying for twice."""
    return ProviderError(
        f"{provider}: invalid reply from upstream: {what}", status=502, code="upstream_error", upstream_status=200
    )


def _optional_str(provider: str, obj: JSON, key: str, where: str) -> None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid_reply(provider, f"{where}.{key} is {_kind(value)}, not a string")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _index(provider: str, part: JSON, where: str, required: bool = False) -> None:
    index = part.get("index")
    if index is None and not required:
        return
    if type(index) is not int or not 0 <= index < MAX_CHOICES:
        raise invalid_reply(provider, f"{where}.index is {index!r:.40}, not an integer from 0 to {MAX_CHOICES - 1}")


def _usage(provider: str, obj: JSON) -> None:
    usage = obj.get("usage")
    if usage is not None and not isinstance(usage, dict):
        raise invalid_reply(provider, f"usage is {_kind(usage)}, not an object")


def _tool_calls(provider: str, holder: JSON, where: str, streamed: bool) -> None:
    calls = holder.get("tool_calls")
    if calls is None:
        return
    if not isinstance(calls, list):
        raise invalid_reply(provider, f"{where}.tool_calls is {_kind(calls)}, not a list")
    for k, call in enumerate(calls):
        at = f"{where}.tool_calls[{k}]"
        if not isinstance(call, dict):
            raise invalid_reply(provider, f"{at} is {_kind(call)}, not an object")
        if streamed:
            _index(provider, call, at)
        _optional_str(provider, call, "id", at)
        fn = call.get("function")
        if fn is not None:
            if not isinstance(fn, dict):
                raise invalid_reply(provider, f"{at}.function is {_kind(fn)}, not an object")
            _optional_str(provider, fn, "name", f"{at}.function")
            _optional_str(provider, fn, "arguments", f"{at}.function")


def _content(provider: str, holder: JSON, where: str) -> None:
    content = holder.get("content")
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list) or not all(isinstance(p, dict) for p in content):
        raise invalid_reply(provider, f"{where}.content is {_kind(content)}, not a string")
    for k, part in enumerate(content):
        _optional_str(provider, part, "text", f"{where}.content[{k}]")


def _header(provider: str, obj: JSON) -> None:
    for key in ("id", "model", "object"):
        _optional_str(provider, obj, key, "reply")
    _usage(provider, obj)


def check_completion(provider: str, data: JSON) -> JSON:
    """An OpenAI chat.completion whose every field the gateway reads has its type."""
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise invalid_reply(provider, f"choices is {_kind(choices)}, not a list")
    _header(provider, data)
    for i, choice in enumerate(choices):
        where = f"choices[{i}]"
        if not isinstance(choice, dict):
            raise invalid_reply(provider, f"{where} is {_kind(choice)}, not an object")
        _index(provider, choice, where)
        _optional_str(provider, choice, "finish_reason", where)
        message = choice.get("message")
        if not isinstance(message, dict):
            raise invalid_reply(provider, f"{where}.message is {_kind(message)}, not an object")
        _optional_str(provider, message, "role", f"{where}.message")
        _optional_str(provider, message, "refusal", f"{where}.message")
        _content(provider, message, f"{where}.message")
        _tool_calls(provider, message, f"{where}.message", streamed=False)
    return data


def check_chunk(provider: str, chunk: JSON) -> JSON:
    """An OpenAI chat.completion.chunk, checked as `check_completion` checks a whole answer."""
    choices = chunk.get("choices")
    if choices is None:
        choices = ()
    elif not isinstance(choices, list):
        raise invalid_reply(provider, f"stream chunk choices is {_kind(choices)}, not a list")
    _header(provider, chunk)
    for i, choice in enumerate(choices):
        where = f"stream chunk choices[{i}]"
        if not isinstance(choice, dict):
            raise invalid_reply(provider, f"{where} is {_kind(choice)}, not an object")
        _index(provider, choice, where)
        _optional_str(provider, choice, "finish_reason", where)
        delta = choice.get("delta")
        if delta is None:
            continue
        if not isinstance(delta, dict):
            raise invalid_reply(provider, f"{where}.delta is {_kind(delta)}, not an object")
        _optional_str(provider, delta, "role", f"{where}.delta")
        _optional_str(provider, delta, "refusal", f"{where}.delta")
        _optional_str(provider, delta, "content", f"{where}.delta")
        _tool_calls(provider, delta, f"{where}.delta", streamed=True)
    return chunk


def check_embeddings(provider: str, data: JSON) -> JSON:
    """An OpenAI embeddings list: `data` a list of objects with an index and a vector (or base64 text)."""
    items = data.get("data")
    if not isinstance(items, list):
        raise invalid_reply(provider, f"data is {_kind(items)}, not a list")
    _optional_str(provider, data, "model", "reply")
    _usage(provider, data)
    for i, item in enumerate(items):
        where = f"data[{i}]"
        if not isinstance(item, dict):
            raise invalid_reply(provider, f"{where} is {_kind(item)}, not an object")
        index = item.get("index")
        if index is not None and (type(index) is not int or index < 0):
            raise invalid_reply(provider, f"{where}.index is {index!r:.40}, not an integer")
        if not isinstance(item.get("embedding"), list | str):
            raise invalid_reply(provider, f"{where}.embedding is {_kind(item.get('embedding'))}, not a list")
    return data
