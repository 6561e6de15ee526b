"""secrets: vendor formats, assignments, and what is deliberately not a secret."""

from __future__ import annotations

import pytest

from engine.detectors.base import ScanContext
from engine.detectors.secrets import SecretsDetector

D = SecretsDetector()


def found(text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in D.scan(text, ScanContext())]


@pytest.mark.parametrize(
    ("text", "type_", "value"),
    [
        ("my key is AKIAZ3MQ7R4TUV2WX9YB, ok?", "aws_access_key_id", "AKIAZ3MQ7R4TUV2WX9YB"),
        ("GITHUB_TOKEN=ghp_" + "aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA2bC4", "github_token", None),
        ("token glpat-Xq7r2_Lp93m-Wz8KtYv4Hn", "gitlab_token", "glpat-Xq7r2_Lp93m-Wz8KtYv4Hn"),
        ("STRIPE=sk_live_4eC39HqLyjWDarjtT1zdp7dc9", "stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc9"),
        ("x-api-key: sk-ant-api03-" + "a1B2c3D4" * 12, "anthropic_key", None),
        ("key=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "google_api_key", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
        ("postgres://app:S3cr3tPw9@db.internal:5432/prod", "url_credentials", "S3cr3tPw9"),
        ('password = "hunter22!"', "password_assignment", "hunter22!"),
        ("my password is Tr0ub4dor&3", "password_assignment", "Tr0ub4dor&3"),
        ('api_key = "a8F3kL9qZ2xW7vB1nM4pR6tY"', "generic_high_entropy", "a8F3kL9qZ2xW7vB1nM4pR6tY"),
        ("SG.abcdefghijABCDEFGHIJ12.abcdefghijABCDEFGHIJabcdefghijABCDEFGHIJ123", "sendgrid_key", None),
        ("HF_TOKEN=hf_aBcDeFgHiJkLmNoPqRsTuVwXyZaBcDeFgH", "huggingface_token", None),
    ],
)
def test_vendor_and_assignment_types(text: str, type_: str, value: str | None) -> None:
    results = found(text)
    assert [t for t, _ in results] == [type_]
    if value is not None:
        assert results[0][1] == value


def test_private_key_block_whole() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x\nabc+/def==\n-----END RSA PRIVATE KEY-----"
    assert found(f"key:\n{pem}\nbye") == [("private_key", pem)]


@pytest.mark.parametrize(
    "text",
    [
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",  # the vendor's documented example
        "OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "OPENAI_API_KEY=YOUR_API_KEY",
        "token: <token>",
        "password = os.environ['DB_PASSWORD']",
        "password = get_password()",
        "password: ${DB_PASSWORD}",
        "Your password: must contain a digit.",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "passport_id: 12345",
    ],
)
def test_not_secrets(text: str) -> None:
    assert found(text) == []


def test_spans_are_bounded_for_streaming() -> None:
    assert D.max_span is not None and D.max_span <= 8192


AWS_SECRET = "xmEiGhX6gZuUzxDJQbC3abIRmK7ASQu9KcWbstcU"


@pytest.mark.parametrize(
    ("text", "type_", "value"),
    [
        ('provider "aws" {\n  secret_key = "' + AWS_SECRET + '"\n}', "aws_secret_access_key", AWS_SECRET),
        ('env:\n  - name: AWS_SECRET_ACCESS_KEY\n    value: "' + AWS_SECRET + '"', "aws_secret_access_key", AWS_SECRET),
        ("<password>Wint3r!6lUghD</password>", "password_assignment", "Wint3r!6lUghD"),
        ('<property name="password" value="Blue#Foxuq715W"/>', "password_assignment", "Blue#Foxuq715W"),
        ("$settings['db_pass'] = 'Blue#FoxQ6dMLj';", "password_assignment", "Blue#FoxQ6dMLj"),
        ('variable "db_password" {\n  default = "Zebra_4280smVl"\n}', "password_assignment", "Zebra_4280smVl"),
        ("mysql -u root --password Kx9$vLm42 shop", "password_assignment", "Kx9$vLm42"),
        ('secret_key = "' + AWS_SECRET + '"', "password_assignment", AWS_SECRET),  # nothing says AWS: a generic secret
    ],
)
def test_assignments_in_other_shapes(text: str, type_: str, value: str) -> None:
    assert found(text) == [(type_, value)]


@pytest.mark.parametrize(
    "text",
    [
        "max_tokens: 1024",
        "token_expiry_seconds = 3600",
        "secretName: db-credentials",
        "password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256",
        "password_min_length = 12",
    ],
)
def test_names_about_secrets_are_not_secrets(text: str) -> None:
    assert found(text) == []
