"""The provider key variables the shipped policies and the docs' examples read, set for the test session.

`ghat check` warns (W502) and `ghat serve` refuses when a served provider's
`env.` variable is unset; tests that use the shipped policies or the docs'
preamble are about other things, so they get a placeholder value here (a
value a test sets itself, or one from the real environment, is kept).
Subprocesses (`ghat serve` in end-to-end tests) inherit it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

PLACEHOLDERS = {"OPENAI_API_KEY": "sk-test-placeholder", "ANTHROPIC_API_KEY": "sk-ant-test-placeholder",
                "ACME_API_KEY": "sk-acme-placeholder", "AZURE_KEY": "azure-placeholder",  # the last two: docs/rules.md
                "ACME_GATEWAY_KEY": "gw-placeholder", "OPENAI_ORG": "org-placeholder",
                "OPENAI_ORG_EU": "org-eu-placeholder"}  # docs/rules.md and tests/policies/mistakes


@pytest.fixture(scope="session", autouse=True)
def provider_key_variables() -> Iterator[None]:
    added = [name for name in PLACEHOLDERS if not os.environ.get(name)]
    for name in added:
        os.environ[name] = PLACEHOLDERS[name]
    yield
    for name in added:
        os.environ.pop(name, None)
