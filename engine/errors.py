"""The error codes users see, with their HTTP status (GUIDE §5)."""

from __future__ import annotations

UNAUTHORIZED = ("unauthorized", 401)
APP_MISMATCH = ("app_mismatch", 403)
INVALID_MODEL = ("invalid_model", 400)
MODEL_BLOCKED = ("guardrail_model_blocked", 403)
MAX_TOKENS = ("guardrail_max_tokens_exceeded", 400)
RATE_LIMITED = ("guardrail_rate_limit_exceeded", 429)
ROUTE_UNAVAILABLE = ("route_unavailable", 503)
UPSTREAM_RATE_LIMITED = ("upstream_rate_limited", 429)  # every candidate left was rate-limited by its provider
REQUEST_TIMEOUT = ("request_timeout", 504)
INVALID_REQUEST = ("invalid_request", 400)
BODY_TOO_LARGE = ("invalid_request", 413)
MODEL_NOT_FOUND = ("model_not_found", 404)  # GET /v1/models/{id} for an id the key's app is not served
OVERLOADED = 529  # Anthropic's status for an overloaded provider, kept on /v1/messages as route_unavailable's status


def guardrail_blocked(detector: str) -> tuple[str, int]:
    """`guardrail_<detector>_blocked`, with a custom detector's dashes made underscores."""
    return (f"guardrail_{detector.replace('-', '_')}_blocked", 403)


# The OpenAI error `type` for each status, so client libraries raise the right class.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
}


# Anthropic's error `type` for each status (docs.anthropic.com/en/api/errors), on `/v1/messages`.
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
