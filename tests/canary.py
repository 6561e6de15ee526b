"""Canary bodies: OpenAI chat and embeddings requests, answers and streams with a value planted in every string.

Every strategy here builds JSON the way a client or a provider could send
it — tool history, tool definitions, content parts of every type, unknown
fields at every level, token-id input — and puts a canary (an AWS key or an
email, which `secrets redact; pii redact` must hide) into every string leaf
and every key that is not a named structural field (`model`, `role`, `type`,
`finish_reason`). `leaks` then reads every string of what left the gateway,
JSON inside strings included, and reports any canary it still finds.

Shared by the unit property tests (tests/test_canary.py) and the end-to-end
ones through `ghat serve` (tests/test_canary_e2e.py).
"""

from __future__ import annotations

import contextlib
import itertools
import json
from typing import Any

from hypothesis import strategies as st

SECRET = "AKIAZ3MQ7R4TUV2WX9YB"
EMAIL = "jane.doe@example.com"
CANARIES = (SECRET, EMAIL)

JSONValue = Any


@st.composite
def planted(draw: st.DrawFn) -> str:
    """A string with a canary inside, between ordinary words."""
    canary = draw(st.sampled_from(CANARIES))
    before = draw(st.sampled_from(("", "see ", "note: ", "key=", "a b ")))
    after = draw(st.sampled_from(("", " now", " ok", ".", "\nmore")))
    return f"{before}{canary}{after}"


keys = planted()
texts = planted()


def unknown_values(depth: int = 2) -> st.SearchStrategy[JSONValue]:
    """Arbitrary JSON whose strings (keys too) all carry a canary; numbers and booleans around them."""
    leaves = st.one_of(texts, st.integers(-5, 5), st.booleans(), st.none(), st.floats(allow_nan=False,
                                                                                         allow_infinity=False))
    return st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(keys, inner, max_size=3)),
                        max_leaves=6)  # fmt: skip


def _with_unknown(draw: st.DrawFn, obj: dict[str, JSONValue]) -> dict[str, JSONValue]:
    if draw(st.booleans()):
        obj[draw(keys)] = draw(unknown_values())
    return obj


@st.composite
def content_part(draw: st.DrawFn) -> dict[str, JSONValue]:
    kind = draw(st.sampled_from(("text", "input_text", "image_url", "input_audio", "file", "weird")))
    if kind in ("text", "input_text"):
        part: dict[str, JSONValue] = {"type": kind, "text": draw(texts)}
    elif kind == "image_url":
        part = {"type": kind, "image_url": {"url": f"https://img.test/a.png?who={draw(texts)}", "detail": "low"}}
    elif kind == "input_audio":
        part = {"type": kind, "input_audio": {"data": draw(texts), "format": "wav"}}
    elif kind == "file":
        part = {"type": kind, "file": {"filename": draw(texts), "file_data": draw(texts)}}
    else:
        part = {"type": draw(texts), "payload": draw(unknown_values())}
    return _with_unknown(draw, part)


def content() -> st.SearchStrategy[JSONValue]:
    return st.one_of(texts, st.lists(content_part(), min_size=1, max_size=3))


@st.composite
def arguments(draw: st.DrawFn) -> str:
    """Tool-call arguments: JSON text (sometimes with \\u escapes), or not JSON at all."""
    value = draw(st.dictionaries(keys, unknown_values(), min_size=1, max_size=3))
    style = draw(st.sampled_from(("plain", "ascii", "garbage")))
    if style == "garbage":
        return f"{{not json {draw(texts)}"
    return json.dumps(value, ensure_ascii=style == "ascii").replace("@", "\\u0040" if style == "ascii" else "@")


@st.composite
def tool_call(draw: st.DrawFn) -> dict[str, JSONValue]:
    return _with_unknown(draw, {"id": draw(texts), "type": "function",
                                "function": {"name": draw(texts), "arguments": draw(arguments())}})


@st.composite
def message(draw: st.DrawFn) -> dict[str, JSONValue]:
    role = draw(st.sampled_from(("system", "developer", "user", "assistant", "tool", "function")))
    m: dict[str, JSONValue] = {"role": role}
    if role == "assistant":
        m["content"] = draw(st.one_of(st.none(), content()))
        if draw(st.booleans()):
            m["tool_calls"] = draw(st.lists(tool_call(), min_size=1, max_size=2))
        if draw(st.booleans()):
            m["function_call"] = {"name": draw(texts), "arguments": draw(arguments())}
        if draw(st.booleans()):
            m["refusal"] = draw(texts)
    elif role == "tool":
        m["content"] = draw(content())
        m["tool_call_id"] = draw(texts)
    else:
        m["content"] = draw(content())
    if draw(st.booleans()):
        m["name"] = draw(texts)
    return _with_unknown(draw, m)


@st.composite
def tool_definition(draw: st.DrawFn) -> dict[str, JSONValue]:
    prop = {"type": "string", "description": draw(texts), "enum": [draw(texts)], "default": draw(texts)}
    return {"type": "function", "function": {"name": draw(texts), "description": draw(texts),
                                             "parameters": {"type": "object", "properties": {draw(keys): prop}}}}


@st.composite
def chat_request(draw: st.DrawFn, model: str = "chat") -> dict[str, JSONValue]:
    """A chat body with a canary in every string that is not a named structural field."""
    body: dict[str, JSONValue] = {"model": model, "messages": draw(st.lists(message(), min_size=1, max_size=4))}
    optional: dict[str, st.SearchStrategy[JSONValue]] = {
        "tools": st.lists(tool_definition(), min_size=1, max_size=2),
        "functions": st.lists(tool_definition().map(lambda t: t["function"]), min_size=1, max_size=1),
        "tool_choice": st.builds(lambda n: {"type": "function", "function": {"name": n}}, texts),
        "response_format": st.builds(lambda n, d: {"type": "json_schema", "json_schema": {
            "name": n, "schema": {"type": "object", "description": d}}}, texts, texts),
        "user": texts,
        "stop": st.one_of(texts, st.lists(texts, min_size=1, max_size=2)),
        "prediction": st.builds(lambda t: {"type": "content", "content": t}, texts),
        "metadata": st.dictionaries(keys, texts, min_size=1, max_size=2),
        "store": st.booleans(),
        "temperature": st.floats(0, 1),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    return _with_unknown(draw, body)


@st.composite
def embeddings_request(draw: st.DrawFn, model: str = "embed") -> dict[str, JSONValue]:
    """Embeddings input as text, a list of texts, token ids or lists of token ids (LangChain's default)."""
    from engine.usage import encoding

    enc = encoding("cl100k_base")
    assert enc is not None
    style = draw(st.sampled_from(("text", "texts", "ids", "id_lists")))
    values = draw(st.lists(texts, min_size=1, max_size=3))
    inputs: JSONValue
    if style == "text":
        inputs = values[0]
    elif style == "texts":
        inputs = values
    elif style == "ids":
        inputs = list(enc.encode_ordinary(values[0]))
    else:
        inputs = [list(enc.encode_ordinary(v)) for v in values]
    body: dict[str, JSONValue] = {"model": model, "input": inputs}
    if draw(st.booleans()):
        body["user"] = draw(texts)
    return _with_unknown(draw, body)


@st.composite
def chat_response(draw: st.DrawFn) -> dict[str, JSONValue]:
    """A provider's answer with a canary in every string that is not a named structural field."""
    msg: dict[str, JSONValue] = {"role": "assistant", "content": draw(st.one_of(st.none(), content()))}
    for name, strategy in {
        "refusal": texts, "reasoning_content": texts,
        "tool_calls": st.lists(tool_call(), min_size=1, max_size=2),
        "annotations": st.lists(st.builds(lambda u, t: {"type": "url_citation", "url_citation": {
            "url": f"https://docs.test/?q={u}", "title": t, "start_index": 0, "end_index": 1}}, texts, texts),
            min_size=1, max_size=2),
        "audio": st.builds(lambda i, t: {"id": i, "transcript": t, "data": "UklGRg=="}, texts, texts),
    }.items():  # fmt: skip
        if draw(st.booleans()):
            msg[name] = draw(strategy)
    choice: dict[str, JSONValue] = {"index": 0, "message": _with_unknown(draw, msg), "finish_reason": "stop"}
    if draw(st.booleans()):
        choice["logprobs"] = {"content": [{"token": draw(texts), "logprob": -0.1, "bytes": [106, 97],
                                           "top_logprobs": [{"token": draw(texts), "logprob": -1.0}]}]}
    body: dict[str, JSONValue] = {"id": draw(texts), "object": "chat.completion", "created": 0, "model": draw(texts),
                                  "choices": [_with_unknown(draw, choice)],
                                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    if draw(st.booleans()):
        body["system_fingerprint"] = draw(texts)
    return _with_unknown(draw, body)


def stream_chunks(response: dict[str, JSONValue], cuts: list[int]) -> list[dict[str, JSONValue]]:
    """The answer as a provider would stream it: every text slot cut into pieces at `cuts`, tool calls in fragments."""
    choice = response["choices"][0]
    msg = choice["message"]
    base = {k: v for k, v in response.items() if k not in ("choices", "usage", "object")}
    base["object"] = "chat.completion.chunk"
    out: list[dict[str, JSONValue]] = []

    def emit(delta: dict[str, JSONValue], **extra: JSONValue) -> None:
        out.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None, **extra}]})

    emit({"role": "assistant"})
    for name in ("content", "refusal", "reasoning_content"):
        value = msg.get(name)
        if isinstance(value, str):
            for piece in _cut(value, cuts):
                emit({name: piece})
    for i, call in enumerate(msg.get("tool_calls") or []):
        args = call["function"]["arguments"]
        pieces = _cut(args, cuts)
        emit({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                              "function": {"name": call["function"]["name"], "arguments": pieces[0]}}]})
        for piece in pieces[1:]:
            emit({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
    for name, value in msg.items():
        if name not in ("role", "content", "refusal", "reasoning_content", "tool_calls"):
            emit({name: value})
    extra = {k: v for k, v in choice.items() if k not in ("index", "message", "finish_reason")}
    emit({}, **{**extra, "finish_reason": "stop"})
    out[-1]["choices"][0]["finish_reason"] = "stop"
    return out


def _cut(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    pieces = [text[a:b] for a, b in itertools.pairwise(points)]
    return [p for p in pieces if p] or [text]


def strings(node: JSONValue) -> list[str]:
    """Every string in `node` — keys, leaves, and the strings of JSON held in strings."""
    out: list[str] = []
    if isinstance(node, str):
        out.append(node)
        if node.lstrip()[:1] in ("{", "["):
            with contextlib.suppress(ValueError):
                out.extend(strings(json.loads(node)))
    elif isinstance(node, dict):
        for k, v in node.items():
            out.append(k)
            out.extend(strings(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(strings(v))
    return out


def leaks(node: JSONValue) -> list[str]:
    """The strings of `node` that still hold a canary (token-id lists are decoded too)."""
    found = [s for s in strings(node) if any(c in s for c in CANARIES)]
    found.extend(t for t in _token_texts(node) if any(c in t for c in CANARIES))
    return found


def _token_texts(node: JSONValue) -> list[str]:
    if isinstance(node, dict):
        return [t for v in node.values() for t in _token_texts(v)]
    if isinstance(node, list) and node and all(isinstance(i, int) and not isinstance(i, bool) for i in node):
        from engine.usage import encoding

        enc = encoding("cl100k_base")
        assert enc is not None
        try:
            return [enc.decode_bytes(node).decode("utf-8", "replace")]
        except (KeyError, ValueError):
            return []
    if isinstance(node, list):
        return [t for v in node for t in _token_texts(v)]
    return []


# ── OpenAI Responses (/v1/responses, issue 13) ──────────────────────────


@st.composite
def responses_part(draw: st.DrawFn, output: bool = False) -> dict[str, JSONValue]:
    """A content part of a Responses message (input parts, or what an assistant turn in history holds)."""
    kind = draw(st.sampled_from(("output_text", "refusal") if output else
                                ("input_text", "output_text", "input_image", "input_file", "refusal", "weird")))
    if kind in ("input_text", "output_text"):
        part: dict[str, JSONValue] = {"type": kind, "text": draw(texts)}
        if kind == "output_text":
            part["annotations"] = [{"type": "url_citation", "url": f"https://docs.test/?q={draw(texts)}",
                                    "title": draw(texts), "start_index": 0, "end_index": 1}]
            if draw(st.booleans()):
                part["logprobs"] = [{"token": draw(texts), "logprob": -0.1, "bytes": [106],
                                     "top_logprobs": [{"token": draw(texts), "logprob": -1.0, "bytes": [97]}]}]
    elif kind == "input_image":
        part = {"type": kind, "image_url": f"https://img.test/a.png?who={draw(texts)}", "detail": "auto"}
    elif kind == "input_file":
        part = {"type": kind, "filename": draw(texts), "file_data": draw(texts)}
    elif kind == "refusal":
        part = {"type": kind, "refusal": draw(texts)}
    else:
        part = {"type": draw(texts), "payload": draw(unknown_values())}
    return part if output else _with_unknown(draw, part)


@st.composite
def responses_item(draw: st.DrawFn) -> dict[str, JSONValue]:
    """An input item: a message (typed or not), a function call, its output, or a reasoning item."""
    kind = draw(st.sampled_from(("message", "easy", "function_call", "function_call_output", "reasoning")))
    item: dict[str, JSONValue]
    if kind in ("message", "easy"):
        role = draw(st.sampled_from(("system", "developer", "user", "assistant")))
        item = {"role": role, "content": draw(st.one_of(texts, st.lists(responses_part(), min_size=1, max_size=3)))}
        if kind == "message":
            item = {"type": "message", **item, "id": draw(texts), "status": "completed"}
    elif kind == "function_call":
        item = {"type": "function_call", "id": draw(texts), "call_id": draw(texts), "name": draw(texts),
                "arguments": draw(arguments()), "status": "completed"}
    elif kind == "function_call_output":
        item = {"type": "function_call_output", "call_id": draw(texts), "output": draw(st.one_of(
            texts, st.lists(st.builds(lambda t: {"type": "input_text", "text": t}, texts), min_size=1, max_size=2)))}
    else:
        item = {"type": "reasoning", "id": draw(texts), "summary": [{"type": "summary_text", "text": draw(texts)}],
                "encrypted_content": draw(texts)}
    return _with_unknown(draw, item)


@st.composite
def responses_tool(draw: st.DrawFn) -> dict[str, JSONValue]:
    prop = {"type": "string", "description": draw(texts), "enum": [draw(texts)]}
    return {"type": "function", "name": draw(texts), "description": draw(texts), "strict": draw(st.booleans()),
            "parameters": {"type": "object", "properties": {draw(keys): prop}}}


@st.composite
def responses_request(draw: st.DrawFn, model: str = "chat") -> dict[str, JSONValue]:
    """A Responses body with a canary in every string that is not a named structural field."""
    body: dict[str, JSONValue] = {"model": model, "input": draw(st.one_of(
        texts, st.lists(responses_item(), min_size=1, max_size=4)))}
    optional: dict[str, st.SearchStrategy[JSONValue]] = {
        "instructions": texts,
        "tools": st.lists(responses_tool(), min_size=1, max_size=2),
        "tool_choice": st.builds(lambda n: {"type": "function", "name": n}, texts),
        "text": st.builds(lambda n, d: {"format": {"type": "json_schema", "name": n, "schema": {
            "type": "object", "description": d}}}, texts, texts),
        "metadata": st.dictionaries(keys, texts, min_size=1, max_size=2),
        "user": texts,
        "reasoning": st.builds(lambda s: {"effort": "low", "summary": s}, texts),
        "include": st.lists(texts, min_size=1, max_size=2),
        "store": st.booleans(),
        "max_output_tokens": st.integers(1, 100),
        "temperature": st.floats(0, 1),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    return _with_unknown(draw, body)


@st.composite
def responses_output_item(draw: st.DrawFn) -> dict[str, JSONValue]:
    kind = draw(st.sampled_from(("message", "function_call", "reasoning")))
    if kind == "message":
        item: dict[str, JSONValue] = {"id": draw(texts), "type": "message", "status": "completed", "role": "assistant",
                                      "content": draw(st.lists(responses_part(output=True), min_size=1, max_size=2))}
    elif kind == "function_call":
        item = {"id": draw(texts), "type": "function_call", "status": "completed", "call_id": draw(texts),
                "name": draw(texts), "arguments": draw(arguments())}
    else:
        item = {"id": draw(texts), "type": "reasoning", "summary": [{"type": "summary_text", "text": draw(texts)}],
                "content": [{"type": "reasoning_text", "text": draw(texts)}]}
    return _with_unknown(draw, item)


@st.composite
def responses_response(draw: st.DrawFn) -> dict[str, JSONValue]:
    """A provider's Response object with a canary in every string that is not a named structural field."""
    body: dict[str, JSONValue] = {
        "id": draw(texts), "object": "response", "created_at": draw(st.one_of(st.just(0), texts)),  # a hostile one
        "status": "completed", "model": draw(texts),
        "output": draw(st.lists(responses_output_item(), min_size=1, max_size=3)),
        "usage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
    }
    if draw(st.booleans()):
        body["instructions"] = draw(texts)
    if draw(st.booleans()):
        body["metadata"] = draw(st.dictionaries(keys, texts, min_size=1, max_size=2))
    return _with_unknown(draw, body)


def _emptied(item: dict[str, JSONValue]) -> dict[str, JSONValue]:
    """An output item as `response.output_item.added` announces it: its texts still to come."""
    out = dict(item, status="in_progress")
    if item["type"] == "message":
        out["content"] = []
    elif item["type"] == "function_call":
        out["arguments"] = ""
    else:
        out["summary"], out["content"] = [], []
    return out


def responses_events(response: dict[str, JSONValue], cuts: list[int]) -> list[dict[str, JSONValue]]:
    """The answer as a provider streams it: lifecycle events, every text slot cut into deltas at `cuts`, `.done`s."""
    head = {**response, "status": "in_progress", "output": []}
    out: list[dict[str, JSONValue]] = [{"type": "response.created", "response": head},
                                       {"type": "response.in_progress", "response": head}]
    for i, item in enumerate(response["output"]):
        at = {"item_id": item["id"], "output_index": i}
        out.append({"type": "response.output_item.added", "output_index": i, "item": _emptied(item)})
        if item["type"] == "function_call":
            for piece in _cut(item["arguments"], cuts):
                out.append({"type": "response.function_call_arguments.delta", **at, "delta": piece})
            out.append({"type": "response.function_call_arguments.done", **at, "arguments": item["arguments"]})
        parts: list[tuple[str, int, dict[str, JSONValue]]] = []
        if item["type"] == "message":
            parts = [("content", k, p) for k, p in enumerate(item["content"])]
        elif item["type"] == "reasoning":
            parts = [("summary", k, p) for k, p in enumerate(item["summary"])]
            parts += [("content", k, p) for k, p in enumerate(item["content"])]
        for field, k, part in parts:
            text_field = "refusal" if part["type"] == "refusal" else "text"
            name = {"output_text": "output_text", "refusal": "refusal", "summary_text": "reasoning_summary_text",
                    "reasoning_text": "reasoning_text"}[part["type"]]
            index = "summary_index" if field == "summary" else "content_index"
            added = "response.reasoning_summary_part" if field == "summary" else "response.content_part"
            if part["type"] != "reasoning_text":
                out.append({"type": f"{added}.added", **at, index: k, "part": {**part, text_field: ""}})
            for piece in _cut(part[text_field], cuts):
                out.append({"type": f"response.{name}.delta", **at, index: k, "delta": piece})
            out.append({"type": f"response.{name}.done", **at, index: k, text_field: part[text_field]})
            if part["type"] != "reasoning_text":
                out.append({"type": f"{added}.done", **at, index: k, "part": part})
        out.append({"type": "response.output_item.done", "output_index": i, "item": item})
    # an event type added after ghat was written, its type and fields carrying what the answer carries
    out.append({"type": f"response.future.{response['id']}", "detail": response["model"]})
    out.append({"type": "response.completed", "response": response})
    return [{**e, "sequence_number": n} for n, e in enumerate(out)]
