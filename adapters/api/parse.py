"""Request bodies in, `GatewayRequest`s out — and the body that goes upstream after the decision.

The body is parsed once (orjson, `adapters/jsonwire.py`) and checked with pydantic in strict
mode (JSON types only: "5" is not an int), so the dict we forward is the
caller's own, with unknown fields passed through untouched. Only the fields
policy reads are validated; a wrong type becomes 400 `invalid_request` with
`param` naming the field as OpenAI does (`messages[0].content`).

Guarded text: every message's string content, every `text` content part
(images, audio and files pass through unscanned), tool results (role `tool`),
and grounding documents in the ghat extension field:

    {"model": "...", "messages": [...],
     "ghat": {"documents": ["retrieved passage", ...], "app": "support-prod"},
     "ghat_app": "support-prod",          # same as ghat.app / header x-ghat-app
     "metadata": {"operation": "summarize", ...}}

`ghat.documents` are the retrieved passages a RAG answer should rest on: input
guards scan them with role `document` (so indirect prompt injection in them is
caught) and output guards use them as the grounding for `groundedness`. They
are not sent upstream — put them in the messages too if the model must read
them. `ghat`, `ghat_app` and `metadata` are stripped before dispatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.jsonwire import loads
from engine.request import GatewayRequest, TextField

MAX_DEPTH = 32
METADATA_FIELDS = ("workspace_id", "namespace_id", "source_service", "operation", "external_request_id")
METADATA_HEADERS = {f"x-ghat-{f.replace('_', '-')}": f for f in METADATA_FIELDS}
METADATA_MAX_LEN = 512
STRIPPED = frozenset({"metadata", "ghat", "ghat_app"})
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
          "tool": "tool", "function": "tool"}  # fmt: skip

JSON = dict[str, Any]


class BadRequest(Exception):
    """A malformed request: 400 (or 413) `invalid_request` with the offending `param`."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class _Part(_Strict):
    type: str
    text: str | None = None


class _Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[_Part] | None = None


class _Ghat(_Strict):
    documents: list[str] = Field(default_factory=list, max_length=256)
    app: str | None = None


class _Common(_Strict):
    model: str = Field(min_length=1, max_length=256)
    metadata: dict[str, str] | None = None
    ghat_app: str | None = None
    ghat: _Ghat | None = None


class _Chat(_Common):
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stream: bool | None = False
    n: int | None = Field(default=None, ge=1, le=16)


class _Embeddings(_Common):
    input: str | list[str] | list[int] | list[list[int]]


def load_json(raw: bytes) -> JSON:
    """The body as a JSON object, no deeper than MAX_DEPTH, else BadRequest."""
    if not raw:
        raise BadRequest("The request body is empty; a JSON object is required.")
    try:
        body = loads(raw)
    except RecursionError:
        raise BadRequest(f"The JSON body is nested deeper than {MAX_DEPTH} levels.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    _check_depth(body)
    return body


def _check_depth(root: JSON) -> None:
    """Iterative: only containers are visited, so a 1 KB prompt costs a handful of steps."""
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRequest(f"The JSON body is nested deeper than {MAX_DEPTH} levels.")
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list) and child:
                stack.append((child, depth + 1))


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not out:
            out = part
        elif part in ("str", "list[_Part]", "list[str]", "list[int]", "list[list[int]]", "_Part"):
            continue  # pydantic's union-member labels are not body fields
        else:
            out += f".{part}"
    return out


def _validate(model: type[_Strict], body: JSON) -> _Strict:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        param = _param(tuple(err["loc"]))
        raise BadRequest(f"Invalid value for '{param}': {err['msg']}.", param=param) from None


def metadata_of(body_meta: Mapping[str, str] | None, headers: Mapping[str, str]) -> dict[str, str]:
    """The five metadata fields from the body, overridden by `x-ghat-*` headers (set by infrastructure)."""
    out: dict[str, str] = {}
    if body_meta:
        for name in METADATA_FIELDS:
            value = body_meta.get(name)
            if value is not None:
                out[name] = value
    for header, name in METADATA_HEADERS.items():
        value = headers.get(header)
        if value is not None:
            out[name] = value
    for name, value in out.items():
        if len(value) > METADATA_MAX_LEN:
            raise BadRequest(f"metadata {name} is longer than {METADATA_MAX_LEN} characters.", param=f"metadata.{name}")
    return out


def _requested_app(parsed: _Common, headers: Mapping[str, str]) -> str | None:
    return headers.get("x-ghat-app") or parsed.ghat_app or (parsed.ghat.app if parsed.ghat else None)


def chat_request(body: JSON, headers: Mapping[str, str]) -> GatewayRequest:
    """A chat body as the engine sees it: every guarded text with its path in the body."""
    parsed = _validate(_Chat, body)
    assert isinstance(parsed, _Chat)
    texts: list[TextField] = []
    for i, m in enumerate(parsed.messages):
        role = _ROLES[m.role]
        content = m.content
        if isinstance(content, str):
            texts.append(TextField(role, content, ("messages", i, "content")))
        elif content:
            for j, part in enumerate(content):
                if part.type == "text" and part.text is not None:
                    texts.append(TextField(role, part.text, ("messages", i, "content", j, "text")))
    documents = tuple(parsed.ghat.documents) if parsed.ghat else ()
    texts.extend(TextField("document", d, ("ghat", "documents", k)) for k, d in enumerate(documents))
    asked = parsed.max_completion_tokens if parsed.max_completion_tokens is not None else parsed.max_tokens
    return GatewayRequest(
        endpoint="chat", model=parsed.model, texts=tuple(texts), max_tokens=asked,
        metadata=metadata_of(parsed.metadata, headers), requested_app=_requested_app(parsed, headers),
        stream=bool(parsed.stream), grounding=documents,
    )  # fmt: skip


def embeddings_request(body: JSON, headers: Mapping[str, str]) -> GatewayRequest:
    """Embedding inputs are guarded like user text (token-id arrays cannot be read, so pass as they are)."""
    parsed = _validate(_Embeddings, body)
    assert isinstance(parsed, _Embeddings)
    texts: tuple[TextField, ...] = ()
    if isinstance(parsed.input, str):
        texts = (TextField("user", parsed.input, ("input",)),)
    elif parsed.input and isinstance(parsed.input[0], str):
        texts = tuple(TextField("user", t, ("input", k)) for k, t in enumerate(parsed.input) if isinstance(t, str))
    return GatewayRequest(
        endpoint="embeddings", model=parsed.model, texts=texts,
        metadata=metadata_of(parsed.metadata, headers), requested_app=_requested_app(parsed, headers),
    )  # fmt: skip


def _set_path(root: JSON, path: tuple[str | int, ...], value: str) -> None:
    """Write `value` at `path`, copying each container on the way so the caller's body stays intact."""
    node: Any = root
    for key in path[:-1]:
        child = node[key]
        child = list(child) if isinstance(child, list) else dict(child)
        node[key] = child
        node = child
    node[path[-1]] = value


def upstream_body(body: JSON, before: GatewayRequest, after: GatewayRequest) -> JSON:
    """The body to dispatch: ghat fields and metadata stripped, redactions written back, token cap set."""
    out = {k: v for k, v in body.items() if k not in STRIPPED}
    if before.texts is not after.texts:
        for old, new in zip(before.texts, after.texts, strict=True):
            if old.text != new.text and new.path and new.path[0] != "ghat":
                _set_path(out, new.path, new.text)
    cap = after.max_tokens
    if cap is not None and after.endpoint == "chat" and cap != before.max_tokens:
        if "max_completion_tokens" in out:
            out["max_completion_tokens"] = cap
            if "max_tokens" in out:
                out["max_tokens"] = cap
        else:
            out["max_tokens"] = cap
    return out
