"""The canonical conversation: every string of a body is a typed slot, or a named structural field.

ghat's promise (P13) is that no string leaves the gateway, upstream or back to
the caller, without passing the guards of its direction. Reading only message
`content` broke that promise in 35 places (tool-call arguments, tool
definitions, `user`, `stop`, unknown fields, …). So the rule is structural,
not field by field: a dialect describes its bodies as a `Shape`, and `slots`
walks a body with it and returns *every* string leaf — and every key the
dialect does not name — as a `TextField` with its role, its kind and its path.
Only two things are exempt, and both are named: a dialect's own field names,
and values of an `Enum` field that are in its closed set (`role`, `type`,
`finish_reason`, …) or the `model` the gateway resolves itself. Anything the
shape does not know is walked as free text (`Free`), so an unknown field is
scanned, never forwarded unscanned.

`rewrite` writes guarded texts back at their paths. A string that holds JSON
(tool-call arguments) is a `JsonText`: its decoded leaves are the slots (so
`\\u0040` cannot hide an `@` from a detector) and the JSON is serialised again
after redaction, so it stays valid JSON. Integers of six digits or more in
free regions are scanned as text too (a card number needs no quotes).

The shapes themselves are wire formats and live in `adapters/codecs/`; this
module is the format-free machinery every codec shares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

from engine.detectors.base import ScanContext
from engine.guards import Blocked, GuardPipeline, Outcome, Redactor, restore_placeholders
from engine.request import EMBEDDED, BodyPath, KeyOf, TextField

JSON: TypeAlias = dict[str, Any]


# ── shapes ──────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Text:
    """A string leaf read as `kind`; `role` None takes the role of the enclosing turn."""

    kind: str
    role: str | None = None


@dataclass(frozen=True, slots=True)
class Enum:
    """A closed vocabulary (`role`, `type`, …): values in `values` are structural; any other is scanned."""

    values: frozenset[str]
    kind: str = "unknown"


@dataclass(frozen=True, slots=True)
class Exempt:
    """A value the gateway checks or replaces itself (the model id): never forwarded as the caller wrote it."""


@dataclass(frozen=True, slots=True)
class Free:
    """Anything: every key and every string leaf below is a slot of `kind`."""

    kind: str
    role: str | None = None


@dataclass(frozen=True, slots=True)
class JsonText:
    """A string that holds JSON (tool arguments): its decoded keys and leaves are the slots."""

    kind: str
    role: str | None = None


@dataclass(frozen=True, slots=True)
class Obj:
    """A JSON object with named fields; keys not in `fields` are walked with `rest`.

    `role_from` names a field whose (validated) value becomes the role of
    everything below, mapped through `roles` (a chat message's `role`).
    """

    fields: Mapping[str, Shape]
    rest: Shape | None = None  # None: Free("unknown")
    role_from: str | None = None
    roles: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ListOf:
    item: Shape


@dataclass(frozen=True, slots=True)
class OneOf:
    """The shape picked by the value's JSON type: str, list, dict (a field that is a string or a list of parts)."""

    by_type: Mapping[type, Shape]
    other: Shape | None = None


@dataclass(frozen=True, slots=True)
class Tagged:
    """An object whose shape depends on its `tag` field (a content part's `type`)."""

    tag: str
    shapes: Mapping[str, Shape]
    other: Shape


Shape: TypeAlias = Text | Enum | Exempt | Free | JsonText | Obj | ListOf | OneOf | Tagged
UNKNOWN = Free("unknown")
LONG_INT = 100_000  # integers from here on are scanned as text: a card or an account number needs no quotes


# ── walking ─────────────────────────────────────────────────────────────


def slots(node: Any, shape: Shape, role: str, path: BodyPath = ()) -> list[TextField]:
    """Every slot of `node` under `shape`, in document order."""
    out: list[TextField] = []
    _walk(node, shape, role, path, out)
    return out


def _walk(node: Any, shape: Shape, role: str, path: BodyPath, out: list[TextField]) -> None:
    if node is None or node is True or node is False or type(node) is float:
        return
    _WALKERS[type(shape)](node, shape, role, path, out)


def _walk_text(node: Any, shape: Text, role: str, path: BodyPath, out: list[TextField]) -> None:
    if type(node) is str:
        out.append(TextField(shape.role or role, node, path, shape.kind))
    else:
        _walk_free(node, shape.kind, shape.role or role, path, out)


def _walk_enum(node: Any, shape: Enum, role: str, path: BodyPath, out: list[TextField]) -> None:
    if type(node) is str:
        if node not in shape.values:
            out.append(TextField(role, node, path, shape.kind))
    else:
        _walk_free(node, shape.kind, role, path, out)


def _walk_list(node: Any, shape: ListOf, role: str, path: BodyPath, out: list[TextField]) -> None:
    if type(node) is list:
        item = shape.item
        for i, value in enumerate(node):
            _walk(value, item, role, (*path, i), out)
    else:
        _walk(node, shape.item, role, path, out)


def _walk_one_of(node: Any, shape: OneOf, role: str, path: BodyPath, out: list[TextField]) -> None:
    picked = shape.by_type.get(type(node), shape.other)
    _walk(node, picked if picked is not None else UNKNOWN, role, path, out)


def _walk_tagged(node: Any, shape: Tagged, role: str, path: BodyPath, out: list[TextField]) -> None:
    tag = node.get(shape.tag) if type(node) is dict else None
    _walk(node, shape.shapes.get(tag, shape.other) if type(tag) is str else shape.other, role, path, out)


def _walk_exempt(node: Any, shape: Exempt, role: str, path: BodyPath, out: list[TextField]) -> None:
    if type(node) is not str and type(node) is not int:
        _walk_free(node, "unknown", role, path, out)


def _walk_free_shape(node: Any, shape: Free, role: str, path: BodyPath, out: list[TextField]) -> None:
    _walk_free(node, shape.kind, shape.role or role, path, out)


def _walk_obj(node: Any, shape: Obj, role: str, path: BodyPath, out: list[TextField]) -> None:
    if type(node) is not dict:
        _walk(node, shape.rest or UNKNOWN, role, path, out)
        return
    if shape.role_from is not None and shape.roles is not None:
        value = node.get(shape.role_from)
        if type(value) is str and value in shape.roles:
            role = shape.roles[value]
    fields = shape.fields
    rest = shape.rest or UNKNOWN
    for key, value in node.items():
        sub = fields.get(key)
        if sub is None:
            kind = rest.kind if isinstance(rest, Free) else "unknown"
            out.append(TextField(role, key, (*path, KeyOf(key)), kind))
            _walk(value, rest, role, (*path, key), out)
        elif type(value) is int:
            if not -LONG_INT < value < LONG_INT:  # a small number is a slot under no shape: skip the walk
                _WALKERS[type(sub)](value, sub, role, (*path, key), out)
        elif type(value) is str and type(sub) is Enum:
            if value not in sub.values:
                out.append(TextField(role, value, (*path, key), sub.kind))
        elif value is not None and value is not True and value is not False and type(value) is not float:
            _WALKERS[type(sub)](value, sub, role, (*path, key), out)


def _walk_free(node: Any, kind: str, role: str, path: BodyPath, out: list[TextField]) -> None:
    if isinstance(node, str):
        out.append(TextField(role, node, path, kind))
    elif isinstance(node, int):
        if abs(node) >= LONG_INT:
            out.append(TextField(role, str(node), path, kind))
    elif isinstance(node, dict):
        for key, value in node.items():
            out.append(TextField(role, key, (*path, KeyOf(key)), kind))
            _walk_free(value, kind, role, (*path, key), out)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _walk_free(item, kind, role, (*path, i), out)


def _walk_json_text(node: Any, shape: JsonText, role: str, path: BodyPath, out: list[TextField]) -> None:
    if not isinstance(node, str):
        _walk_free(node, shape.kind, shape.role or role, path, out)
        return
    decoded = decode_json_text(node)
    if decoded is None:  # not JSON (or a bare string): the text itself is the slot
        out.append(TextField(shape.role or role, node, path, shape.kind))
    else:
        _walk_free(decoded[0], shape.kind, shape.role or role, (*path, EMBEDDED), out)


# One walker per shape, picked by the shape's type (an `isinstance` chain cost ~40 % of a body's walk).
_WALKERS: dict[type, Callable[[Any, Any, str, BodyPath, list[TextField]], None]] = {
    Obj: _walk_obj, Text: _walk_text, Enum: _walk_enum, ListOf: _walk_list, OneOf: _walk_one_of,
    Tagged: _walk_tagged, JsonText: _walk_json_text, Exempt: _walk_exempt, Free: _walk_free_shape,
}


def decode_json_text(text: str) -> tuple[Any] | None:
    """The value a JSON-holding string decodes to, boxed; None when it is not a JSON container."""
    if not text or text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        return (orjson.loads(text),)
    except orjson.JSONDecodeError:
        return None


# ── writing back ────────────────────────────────────────────────────────


def rewrite(body: Any, changes: list[tuple[BodyPath, str]]) -> Any:
    """`body` with each path's string replaced, copying containers on the way (the input stays intact).

    A path through an `EMBEDDED` step rewrites the JSON inside that string and
    serialises it again; a `KeyOf` step renames the key in place (order kept).
    """
    outer: dict[BodyPath, list[tuple[BodyPath, str]]] = {}
    plain: list[tuple[BodyPath, str]] = []
    for path, value in changes:
        if EMBEDDED in path:
            at = path.index(EMBEDDED)
            outer.setdefault(path[:at], []).append((path[at + 1 :], value))
        else:
            plain.append((path, value))
    for where, inner in outer.items():
        decoded = decode_json_text(_get(body, where))
        if decoded is None:
            continue
        plain.append((where, orjson.dumps(rewrite(decoded[0], inner)).decode()))
    # keys last and deepest first, so a renamed key never invalidates a later path
    plain.sort(key=lambda c: (isinstance(c[0][-1], KeyOf) if c[0] else False, -len(c[0])))
    for path, value in plain:
        body = _set(body, path, value)
    return body


def _get(node: Any, path: BodyPath) -> Any:
    for step in path:
        node = node[step]
    return node


def _set(node: Any, path: BodyPath, value: Any) -> Any:
    """A copy of `node` with `value` at `path` (only the containers on the path are copied)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, KeyOf):
        assert isinstance(node, dict) and not rest
        return {(value if k == head.key else k): v for k, v in node.items()}
    copy: Any = list(node) if isinstance(node, list) else dict(node)
    current = copy[head]
    if rest:
        copy[head] = _set(current, rest, value)
    elif isinstance(current, int) and isinstance(value, str) and value.lstrip("-").isdigit():
        copy[head] = int(value)  # an integer scanned as text keeps its type unless redacted
    else:
        copy[head] = value
    return copy


def changed(before: list[TextField] | tuple[TextField, ...], after: list[str]) -> list[tuple[BodyPath, str]]:
    """The (path, new text) of every slot whose text the guards changed."""
    return [(s.path, new) for s, new in zip(before, after, strict=True) if s.text != new]



def rewrite_value(body: Any, path: BodyPath, value: Any) -> Any:
    """`body` with any JSON value at `path` (token ids re-encoded from guarded text), copied on the way."""
    return _set(body, path, value)


# ── guarding a whole body ───────────────────────────────────────────────


@dataclass(slots=True)
class Guarded:
    """A body after the guards of its direction: rewritten, what fired, and the block if one did."""

    body: Any
    outcomes: list[Outcome]
    blocked: Blocked | None
    texts: list[TextField]


def guard_tree(
    node: Any,
    shape: Shape,
    pipeline: GuardPipeline,
    redactor: Redactor,
    grounding: tuple[str, ...] = (),
    restore: frozenset[str] = frozenset(),
    role: str = "output",
) -> Guarded:
    """Run `pipeline` over every slot of `node` (an answer, an error, a stream's whole tool call).

    Output slots all read as role `output` (what output detectors expect);
    `restore` then puts back the input's placeholders for the caller.
    """
    found = slots(node, shape, role)
    if not found:
        return Guarded(node, [], None, found)
    if pipeline.rules:
        result = pipeline.run([(ScanContext(role, grounding), s.text) for s in found], redactor)
        if result.blocked is not None:
            return Guarded(node, result.outcomes, result.blocked, found)
        texts, outcomes = result.texts, result.outcomes
    else:
        texts, outcomes = [s.text for s in found], []
    if restore:
        texts = [restore_placeholders(t, redactor, restore) for t in texts]
    edits = changed(found, texts)
    return Guarded(rewrite(node, edits) if edits else node, outcomes, None, found)
