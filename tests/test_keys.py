"""App-scoped keys: the format, hashes only on disk, lookup, revoke, and `ghat keys` for scripts."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.main import main
from engine.keys import KeyStore, KeyStoreError, display_form, new_key, split_key


def test_key_format_and_display_form() -> None:
    key = new_key("prod")
    env, rest = split_key(key) or ("", "")
    assert key.startswith("ghat_prod_") and env == "prod" and len(rest) == 40 and rest.isalnum()
    assert display_form(key) == f"ghat_prod_{rest[:4]}…"
    assert new_key("prod") != key


@pytest.mark.parametrize("env", ["", "BAD ENV", "a_b", "-x", "x" * 40, "prod\n"])
def test_environment_names_that_would_break_the_key_are_refused(env: str) -> None:
    with pytest.raises(ValueError, match="invalid environment name"):
        new_key(env)


def test_only_hashes_are_stored_and_revoked_keys_stop_working(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = KeyStore(path)
    key, rec = store.create("support", "prod")
    text = path.read_text()
    assert key not in text and key[10:] not in text and rec.hash in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = KeyStore.load(path)
    assert again.lookup(key) == rec
    assert again.lookup(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert again.revoke(rec.display) is not None
    assert again.lookup(key) is None and KeyStore.load(path).lookup(key) is None


@given(st.text(max_size=80))
def test_lookup_of_any_string_never_raises(token: str) -> None:
    assert KeyStore(Path("/nonexistent/keys.json")).lookup(token) is None


@pytest.mark.parametrize("content", ["{not json", '{"keys": [{"id": 1}]}', '["a list"]', "\udcff"])
def test_a_corrupt_store_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(KeyStoreError, match="is not a ghat key store"):
        KeyStore.load(path)


def test_cli_create_list_revoke_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert main(["keys", "create", "--app", "support", "--env", "prod", "--json", *data]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["key"].startswith("ghat_prod_") and created["app"] == "support"
    assert main(["keys", "list", "--json", *data]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [k["id"] for k in listed] == [created["id"]]
    assert all("hash" not in k and created["key"] not in json.dumps(k) for k in listed)
    assert main(["keys", "revoke", created["id"], "--json", *data]) == 0
    assert json.loads(capsys.readouterr().out) == {"id": created["id"], "revoked": True}
    assert main(["keys", "list", "--json", *data]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["keys", "revoke", "key_nope", *data]) == 1
    assert main(["keys", "create", "--app", "support", "--env", "BAD ENV", *data]) == 2
    (tmp_path / "keys.json").write_text("{broken")
    assert main(["keys", "list", *data]) == 2
    assert "is not a ghat key store" in capsys.readouterr().err
