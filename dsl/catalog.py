"""The built-in detectors as the language knows them: names, types, options.

The linter checks policies against this table; the engine's detector registry
implements exactly these (a test keeps the two in step). `dsl` stays free of
engine imports, so the table lives here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BuiltinDetector:
    name: str
    types: tuple[str, ...]  # selectable with `types …`; empty: the detector has no types
    default_types: tuple[str, ...]  # what runs when a policy names no types
    directions: tuple[str, ...] = ("input", "output")
    options: tuple[str, ...] = ()  # threshold, model, categories, topics, restore
    summary: str = ""
    # Which message roles the detector reads on input (None: all of them). Direct
    # injection is what users and system prompts say; indirect injection hides in
    # tool results and retrieved documents.
    roles: frozenset[str] | None = None
    # Findings that read the whole text (a score, a share of sentences): no prefix of a stream is
    # safe to redact before its end (engine/streaming.py; the detector's `max_span` is None).
    whole_text: bool = False


PII_TYPES = (
    "email", "phone", "credit_card", "iban", "us_ssn", "ip_address",
    "person", "street_address", "date_of_birth",
)  # fmt: skip
PII_DEFAULT_TYPES = PII_TYPES[:6]
SECRET_TYPES = (
    "aws_access_key_id", "aws_secret_access_key", "github_token", "gitlab_token",
    "slack_token", "slack_webhook", "stripe_key", "openai_key", "anthropic_key",
    "google_api_key", "private_key", "jwt", "url_credentials", "password_assignment",
    "azure_storage_key", "twilio_key", "sendgrid_key", "npm_token", "huggingface_token",
    "generic_high_entropy",
)  # fmt: skip
SAFETY_CATEGORIES = ("violence", "self_harm", "sexual", "hate", "illicit")

BUILTINS: dict[str, BuiltinDetector] = {
    d.name: d
    for d in (
        BuiltinDetector("pii", PII_TYPES, PII_DEFAULT_TYPES, options=("restore",),
                        summary="personal data: email, phone, cards, IBAN, SSN, IPs, names"),
        BuiltinDetector("secrets", SECRET_TYPES, SECRET_TYPES, options=("restore",),
                        summary="credentials: cloud keys, tokens, private keys, passwords"),
        BuiltinDetector("prompt_injection", (), (), options=("threshold", "model"),
                        summary="instruction overrides and jailbreaks in user and system text",
                        roles=frozenset({"system", "user", "output"}), whole_text=True),
        BuiltinDetector("indirect_injection", (), (), ("input",), ("threshold", "model"),
                        summary="injected instructions in tool results and retrieved documents",
                        roles=frozenset({"tool", "document"}), whole_text=True),
        BuiltinDetector("topics", (), (), options=("topics",),
                        summary="denied topics given as phrases"),
        BuiltinDetector("output_safety", SAFETY_CATEGORIES, SAFETY_CATEGORIES, ("output",),
                        ("categories",), summary="violence, self-harm, sexual, hate, illicit"),
        BuiltinDetector("groundedness", (), (), ("output",), ("threshold",),
                        summary="share of output sentences supported by the grounding context", whole_text=True),
    )
}

# An environment name a key `ghat_<env>_<random>` can carry: a policy NAME without "_" (the key's separator).
ENV_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,31}")

# Variables a block `message` template may use (engine/guards.py renders them).
MESSAGE_VARIABLES = ("app", "detector", "types", "topic", "category", "direction")
# Variables set only when one detector blocks; for any other they render empty.
DETECTOR_VARIABLES = {"topic": "topics", "category": "output_safety"}


# Request metadata ghat reads (headers `x-ghat-<field>` or the body's `ghat.metadata`), usable in `when`
# conditions and kept in the request log: one list for the grammar, checker, codecs and log store.
METADATA_FIELDS: tuple[str, ...] = ("workspace_id", "namespace_id", "source_service", "operation",
                                    "external_request_id")  # fmt: skip


# Provider wire protocols (`provider x { kind … }`) and the base URL each defaults to: the checker, the
# provider registry (adapters/registry.py) and the docs read this one table.
PROVIDER_KINDS: dict[str, str | None] = {
    "openai": "https://api.openai.com/v1",  # and every OpenAI-compatible upstream (vLLM, Ollama, Azure, …)
    "anthropic": "https://api.anthropic.com/v1",
    "mock": None,  # answers without a network: demos and tests
}


# The endpoints a request can come in on, as `when endpoint == …` names them; each has a codec in
# adapters/codecs (CODECS, keyed by these names), and engine/request.py's `Endpoint` type lists the same.
# messages: Anthropic /v1/messages; responses: OpenAI /v1/responses
ENDPOINTS: tuple[str, ...] = ("chat", "embeddings", "messages", "responses")
