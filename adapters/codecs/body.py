"""What every dialect codec shares: the JSON body read safely, field errors named, ghat's metadata.

The body is parsed once (orjson, `adapters/jsonwire.py`) and the fields policy
reads are checked with pydantic in strict mode (JSON types only: "5" is not an
int); a wrong type becomes 400 `invalid_request` with `param` naming the field
as OpenAI does (`messages[0].content`). The dict we forward is the caller's
own: fields ghat does not read still pass the guards (engine/conversation.py).

ghat's own request fields live where they cannot collide with a provider's:
headers (`x-ghat-app`, `x-ghat-operation`, …) or the `ghat` body field
(`{"ghat": {"app": ..., "metadata": {...}, "documents": [...]}}`), stripped
before dispatch. `ghat.documents` are the retrieved passages a RAG answer should
rest on: input guards scan them with role `document` (indirect injection) and
output guards use them as grounding; they are not sent upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.jsonwire import loads
from dsl.catalog import METADATA_FIELDS

MAX_DEPTH = 32
METADATA_HEADERS = {f"x-ghat-{f.replace('_', '-')}": f for f in METADATA_FIELDS}
METADATA_MAX_LEN = 512
STRIPPED = frozenset({"ghat", "ghat_app"})  # ghat's own fields: never sent upstream

JSON = dict[str, Any]


class BadRequest(Exception):
    """A malformed request: 400 (or 413) `invalid_request` with the offending `param`."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status


class Strict(BaseModel):
    """A pydantic model of the fields ghat reads, JSON types only; other fields are left to the shapes."""

    model_config = ConfigDict(strict=True, extra="ignore")


class GhatField(Strict):
    """The namespaced `ghat` body field."""

    documents: list[str] = Field(default_factory=list, max_length=256)
    app: str | None = None
    metadata: dict[str, str] | None = None


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
        elif part in ("str", "list[str]", "list[int]", "list[list[int]]", "list[any]", "dict[str,any]"):
            continue  # pydantic's union-member labels are not body fields
        else:
            out += f".{part}"
    return out


def validate(model: type[Strict], body: JSON) -> Strict:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        param = _param(tuple(err["loc"]))
        raise BadRequest(f"Invalid value for '{param}': {err['msg']}.", param=param) from None


def metadata_of(body_meta: Mapping[str, str] | None, headers: Mapping[str, str]) -> dict[str, str]:
    """The metadata fields from `ghat.metadata`, overridden by `x-ghat-*` headers (set by infrastructure)."""
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




def requested_app(ghat: GhatField | None, ghat_app: str | None, headers: Mapping[str, str]) -> str | None:
    """The app a request names: header `x-ghat-app`, body `ghat_app` or `ghat.app`."""
    return headers.get("x-ghat-app") or ghat_app or (ghat.app if ghat else None)
