"""Canary bodies in Anthropic's Messages dialect: requests, answers and event streams with a value in every string.

The companion of tests/canary.py (same canaries, same `leaks`): system
prompts as a string or blocks, every content block type (text with
citations, image, document of each source, tool_use, tool_result as a string
or blocks, thinking with its signature, redacted thinking, blocks this was
written before), tool definitions, tool_choice, stop sequences, metadata and
unknown fields at every level. Only the named structural fields (`model`,
`role`, `type`, `media_type`, `stop_reason`, numbers) carry no canary.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import strategies as st

from tests.canary import JSONValue, _with_unknown, keys, texts, unknown_values


@st.composite
def _text_block(draw: st.DrawFn) -> dict[str, JSONValue]:
    block: dict[str, JSONValue] = {"type": "text", "text": draw(texts)}
    if draw(st.booleans()):
        block["cache_control"] = {"type": "ephemeral"}
    if draw(st.booleans()):
        block["citations"] = [{"type": "char_location", "cited_text": draw(texts), "document_index": 0,
                               "document_title": draw(texts), "start_char_index": 0, "end_char_index": 3}]
    return _with_unknown(draw, block)


@st.composite
def _image_block(draw: st.DrawFn) -> dict[str, JSONValue]:
    if draw(st.booleans()):
        source: dict[str, JSONValue] = {"type": "base64", "media_type": "image/png", "data": draw(texts)}
    else:
        source = {"type": "url", "url": f"https://img.test/a.png?who={draw(texts)}"}
    return _with_unknown(draw, {"type": "image", "source": source})


@st.composite
def _document_block(draw: st.DrawFn) -> dict[str, JSONValue]:
    style = draw(st.sampled_from(("text", "pdf", "content", "url")))
    source: dict[str, JSONValue]
    if style == "text":
        source = {"type": "text", "media_type": "text/plain", "data": draw(texts)}
    elif style == "pdf":
        source = {"type": "base64", "media_type": "application/pdf", "data": draw(texts)}
    elif style == "content":
        source = {"type": "content", "content": draw(st.one_of(texts, st.lists(_text_block(), min_size=1,
                                                                                max_size=2)))}
    else:
        source = {"type": "url", "url": f"https://docs.test/{draw(texts)}"}
    block: dict[str, JSONValue] = {"type": "document", "source": source}
    for name in ("title", "context"):
        if draw(st.booleans()):
            block[name] = draw(texts)
    return _with_unknown(draw, block)


def _tool_input() -> st.SearchStrategy[JSONValue]:
    return st.dictionaries(keys, unknown_values(), min_size=1, max_size=3)


@st.composite
def _tool_use_block(draw: st.DrawFn) -> dict[str, JSONValue]:
    return _with_unknown(draw, {"type": "tool_use", "id": draw(texts), "name": draw(texts),
                                "input": draw(_tool_input())})


@st.composite
def _tool_result_block(draw: st.DrawFn) -> dict[str, JSONValue]:
    inner = st.lists(st.one_of(_text_block(), _image_block(), _document_block()), min_size=1, max_size=2)
    block: dict[str, JSONValue] = {"type": "tool_result", "tool_use_id": draw(texts),
                                   "content": draw(st.one_of(texts, inner))}
    if draw(st.booleans()):
        block["is_error"] = draw(st.booleans())
    return _with_unknown(draw, block)


@st.composite
def _thinking_block(draw: st.DrawFn) -> dict[str, JSONValue]:
    if draw(st.booleans()):
        return {"type": "thinking", "thinking": draw(texts), "signature": draw(texts)}
    return {"type": "redacted_thinking", "data": draw(texts)}


@st.composite
def _odd_block(draw: st.DrawFn) -> dict[str, JSONValue]:
    """A block type this was written before (server tools, search results): every string a canary."""
    return {"type": draw(st.sampled_from(("server_tool_use", "web_search_tool_result", "search_result"))),
            "payload": draw(unknown_values()), draw(keys): draw(texts)}


@st.composite
def _turn(draw: st.DrawFn) -> dict[str, JSONValue]:
    role = draw(st.sampled_from(("user", "assistant")))
    if role == "user":
        block = st.one_of(_text_block(), _image_block(), _document_block(), _tool_result_block(), _odd_block())
    else:
        block = st.one_of(_text_block(), _tool_use_block(), _thinking_block(), _odd_block())
    content = draw(st.one_of(texts, st.lists(block, min_size=1, max_size=3)))
    return _with_unknown(draw, {"role": role, "content": content})


@st.composite
def _tool_definition(draw: st.DrawFn) -> dict[str, JSONValue]:
    prop = {"type": "string", "description": draw(texts), "enum": [draw(texts)]}
    return _with_unknown(draw, {"name": draw(texts), "description": draw(texts),
                                "input_schema": {"type": "object", "properties": {draw(keys): prop}}})


@st.composite
def messages_request(draw: st.DrawFn, model: str = "chat") -> dict[str, JSONValue]:
    """A Messages body with a canary in every string that is not a named structural field."""
    body: dict[str, JSONValue] = {"model": model, "max_tokens": draw(st.integers(1, 4096)),
                                  "messages": draw(st.lists(_turn(), min_size=1, max_size=4))}
    optional: dict[str, st.SearchStrategy[JSONValue]] = {
        "system": st.one_of(texts, st.lists(_text_block(), min_size=1, max_size=2)),
        "tools": st.lists(_tool_definition(), min_size=1, max_size=2),
        "tool_choice": st.builds(lambda n: {"type": "tool", "name": n}, texts),
        "stop_sequences": st.lists(texts, min_size=1, max_size=2),
        "metadata": st.builds(lambda u: {"user_id": u}, texts),
        "thinking": st.just({"type": "enabled", "budget_tokens": 1024}),
        "temperature": st.floats(0, 1),
        "stream": st.booleans(),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    return _with_unknown(draw, body)


@st.composite
def messages_response(draw: st.DrawFn) -> dict[str, JSONValue]:
    """A provider's Message with a canary in every string that is not a named structural field."""
    block = st.one_of(_text_block(), _tool_use_block(), _thinking_block(), _odd_block())
    body: dict[str, JSONValue] = {
        "id": draw(texts), "type": "message", "role": "assistant", "model": draw(texts),
        "content": draw(st.lists(block, min_size=1, max_size=4)),
        "stop_reason": draw(st.sampled_from(("end_turn", "stop_sequence", "tool_use"))),
        "stop_sequence": draw(st.one_of(st.none(), texts)),
        "usage": {"input_tokens": 3, "output_tokens": 5}}  # fmt: skip
    return _with_unknown(draw, body)


def _cut(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [p for a, b in itertools.pairwise(points) if (p := text[a:b])] or [text]


def message_events(message: dict[str, JSONValue], cuts: list[int]) -> list[dict[str, JSONValue]]:
    """The Message as Anthropic streams it: text, thinking and tool input cut into pieces at `cuts`."""
    start = {k: v for k, v in message.items() if k not in ("content", "stop_reason", "stop_sequence")}
    events: list[dict[str, JSONValue]] = [{"type": "message_start", "message": {**start, "content": []}}]
    for i, block in enumerate(message["content"]):
        kind = block["type"]
        if kind in ("text", "thinking"):
            name = kind
            rest = {k: v for k, v in block.items() if k not in (name, "signature")}
            events.append({"type": "content_block_start", "index": i, "content_block": {
                **rest, name: "", **({"signature": ""} if kind == "thinking" else {})}})
            events.extend({"type": "content_block_delta", "index": i, "delta": {"type": f"{name}_delta", name: p}}
                          for p in _cut(block[name], cuts))
            if kind == "thinking":
                events.append({"type": "content_block_delta", "index": i,
                               "delta": {"type": "signature_delta", "signature": block["signature"]}})
        elif kind == "tool_use":
            events.append({"type": "content_block_start", "index": i, "content_block": {**block, "input": {}}})
            events.extend({"type": "content_block_delta", "index": i,
                           "delta": {"type": "input_json_delta", "partial_json": p}}
                          for p in _cut(json.dumps(block["input"]), cuts))
        else:
            events.append({"type": "content_block_start", "index": i, "content_block": block})
        events.append({"type": "content_block_stop", "index": i})
    events.append({"type": "message_delta", "delta": {"stop_reason": message["stop_reason"],
                                                      "stop_sequence": message["stop_sequence"]},
                   "usage": {"output_tokens": 5}})
    events.append({"type": "message_stop"})
    return events


def reassembled(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The content blocks a client rebuilds from the events (what the SDK's accumulator does)."""
    blocks: dict[int, dict[str, Any]] = {}
    json_bufs: dict[int, str] = {}
    for e in events:
        if e.get("type") == "content_block_start":
            blocks[e["index"]] = dict(e["content_block"])
        elif e.get("type") == "content_block_delta":
            b, d = blocks[e["index"]], e["delta"]
            kind = d.get("type")
            if kind == "text_delta":
                b["text"] = b.get("text", "") + d["text"]
            elif kind == "thinking_delta":
                b["thinking"] = b.get("thinking", "") + d["thinking"]
            elif kind == "signature_delta":
                b["signature"] = d["signature"]
            elif kind == "input_json_delta":
                json_bufs[e["index"]] = json_bufs.get(e["index"], "") + d["partial_json"]
    for i, raw in json_bufs.items():
        blocks[i]["input"] = json.loads(raw)  # valid JSON after redaction, or this raises
    return [blocks[i] for i in sorted(blocks)]
