"""One pipeline for every tool: what `ghat check` refuses nothing else accepts, and the reverse.

Regressions from issue 10: `ghat check` failed a prod app with `capture prompts`
(E501) while `ghat serve` compiled it; `ghat check` on a folder with no
`.policy` file exited 0; `ghat test --env <typo>` exited 0 with 100 % coverage.
Also: a rebuild over the same paths parses only the files that changed and
keeps the compiled apps nothing they depend on changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from adapters.api.state import Settings, build_served
from cli.main import main
from dsl.ast import PolicySet
from dsl.checker import check_policy_set
from dsl.diagnostics import PolicyError
from engine.compiler import compile_policy
from engine.pipeline import CheckFailed, PolicySetError, build, check
from tests.strategies import policy_sets

SHARED = """
provider local { kind mock }
model local/echo { price in 0 out 0 per 1M }
alias chat { route local/echo }
"""
APP = """
app {name} {{
  env        {env}
  models     chat
  max_tokens 512
  rate_limit 60/min
  input {{ pii redact }}
  {extra}
  test "{name} answers" {{
    request {{ model "chat"; user "hello" }}
    expect allow
  }}
}}
"""


def _app(name: str, env: str = "prod", extra: str = "") -> str:
    return APP.format(name=name, env=env, extra=extra)


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _settings(folder: Path, env: str = "prod") -> Settings:
    return Settings(policies=str(folder), env=env, keys=str(folder / "keys.json"), data_dir=str(folder))


# ── check and serve agree ────────────────────────────────────────────────


def test_serve_refuses_a_prod_app_that_captures_prompts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _write(tmp_path / "p", {"shared.policy": SHARED, "app.policy": _app("a", extra="capture prompts")})
    assert main(["check", str(folder)]) == 1
    assert "E501" in capsys.readouterr().out
    with pytest.raises(CheckFailed) as err:
        build([folder], "prod")
    assert [d.code for d in err.value.diagnostics] == ["E501"]
    with pytest.raises(PolicyError):
        build_served(_settings(folder), None)
    assert main(["test", str(folder)]) == 1
    assert "E501" in capsys.readouterr().err


def test_a_rule_turned_off_in_ghat_toml_is_off_for_every_tool(tmp_path: Path) -> None:
    folder = _write(tmp_path / "p", {"shared.policy": SHARED, "app.policy": _app("a", extra="capture prompts")})
    (folder / "ghat.toml").write_text('[rules]\n"security/capture-in-prod" = "off"\n')
    assert main(["check", str(folder)]) == 0
    assert "a" in build_served(_settings(folder), None).policy.apps
    assert main(["test", str(folder)]) == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_sets())
def test_compile_refuses_exactly_what_the_checker_reports_as_an_error(policy_set: PolicySet) -> None:
    errors = [d for d in check_policy_set(policy_set) if d.level == "error"]
    if errors:
        with pytest.raises(PolicyError):
            compile_policy(policy_set)
    else:
        compile_policy(policy_set)


def test_check_compiles_what_it_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A set that passes every check but would not compile fails `ghat check` too (E000, not a pass)."""
    folder = _write(tmp_path / "p", {"shared.policy": SHARED, "app.policy": _app("a")})
    assert not check([folder]).result.has_errors

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("cannot build the pii detector")

    monkeypatch.setattr("engine.pipeline.compile_policy", broken)
    result = check([folder]).result
    errors = [d for d in result.diagnostics if d.level == "error"]
    assert [d.code for d in errors] == ["E000"] and "does not compile" in errors[0].message


# ── empty inputs and unknown names ───────────────────────────────────────


def test_a_folder_with_no_policy_file_is_refused_by_every_tool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.md").write_text("policies moved\n")
    assert main(["check", str(empty)]) == 1
    assert "no .policy file in directory" in capsys.readouterr().out
    assert main(["test", str(empty)]) == 1
    assert "no .policy file in directory" in capsys.readouterr().err
    req = tmp_path / "req.json"
    req.write_text('{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}')
    assert main(["explain", "--policies", str(empty), "--key-app", "a", str(req)]) == 1
    with pytest.raises(CheckFailed):
        build_served(_settings(empty), None)


def test_an_unknown_env_is_refused_by_every_tool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _write(tmp_path / "p", {"shared.policy": SHARED, "app.policy": _app("a") + _app("b", "dev")})
    assert main(["test", str(folder), "--env", "prdo"]) == 2
    err = capsys.readouterr().err
    assert "no app in the policy set has env 'prdo' (envs: dev, prod); did you mean 'prod'?" in err
    assert main(["test", str(folder), "--env", "prod"]) == 0
    assert "1 passed, 0 failed, 1 skipped" in capsys.readouterr().out
    req = tmp_path / "req.json"
    req.write_text('{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}')
    assert main(["explain", "--policies", str(folder), "--key-app", "a", "--env", "staging", str(req)]) == 2
    assert "env 'staging'" in capsys.readouterr().err
    with pytest.raises(PolicySetError):
        build_served(_settings(folder, "prdo"), None)


def test_explain_refuses_an_unknown_key_app(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _write(tmp_path / "p", {"shared.policy": SHARED, "app.policy": _app("support")})
    req = tmp_path / "req.json"
    req.write_text('{"model": "chat", "messages": [{"role": "user", "content": "hi"}]}')
    assert main(["explain", "--policies", str(folder), "--key-app", "suport", str(req)]) == 2
    assert "no app 'suport'" in capsys.readouterr().err
    assert main(["explain", "--policies", str(folder), "--key-app", "support", str(req)]) == 0


def test_a_broken_config_is_a_usage_error_for_test(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _write(tmp_path / "p", {"shared.policy": SHARED, "app.policy": _app("a")})
    (folder / "ghat.toml").write_text('[rules]\n"no/such-rule" = "off"\n')
    assert main(["test", str(folder)]) == 2
    assert "unknown rule" in capsys.readouterr().err


# ── rebuilds cost what changed ───────────────────────────────────────────


def test_a_rebuild_parses_and_compiles_only_what_changed(tmp_path: Path) -> None:
    files = {"shared.policy": SHARED, **{f"team{i}.policy": _app(f"app{i}") for i in range(4)}}
    folder = _write(tmp_path / "p", files)
    first = build([folder], "prod")
    assert first.parse_cache.parsed == 5 and first.policy is not None
    again = build([folder], "prod", previous=first)
    assert again.parse_cache.parsed == 0 and again.policy is not None
    assert all(again.policy.apps[n] is first.policy.apps[n] for n in first.policy.apps)

    # Edit one team's file, moving its app two lines down: only it is parsed and compiled again.
    (folder / "team2.policy").write_text("# moved\n\n" + _app("app2").replace("512", "256"))
    edited = build([folder], "prod", previous=again)
    assert edited.parse_cache.parsed == 1 and edited.policy is not None
    assert edited.policy.apps["app2"] is not again.policy.apps["app2"]
    assert edited.policy.apps["app2"].settings.max_tokens is not None
    assert edited.policy.apps["app2"].settings.max_tokens.limit == 256
    assert edited.policy.apps["app2"].span.line == again.policy.apps["app2"].span.line + 2  # spans stay exact
    assert all(edited.policy.apps[n] is again.policy.apps[n] for n in ("app0", "app1", "app3"))

    # A shared declaration changed: every app depends on it, so none is kept.
    (folder / "shared.policy").write_text(SHARED.replace("alias chat { route local/echo }",
                                                         "alias chat { route local/echo retries 1 }"))  # fmt: skip
    shared = build([folder], "prod", previous=edited)
    assert shared.policy is not None and shared.parse_cache.parsed == 1
    assert not any(shared.policy.apps[n] is edited.policy.apps[n] for n in shared.policy.apps)
    plan = shared.policy.apps["app0"].plans["chat"].fixed
    assert plan is not None and plan[0].retries == 1

    # Another env: nothing compiled for prod may be served to dev.
    dev = build([folder], None, previous=shared)
    assert dev.policy is not None and not any(dev.policy.apps[n] is shared.policy.apps[n] for n in dev.policy.apps)


def test_a_reload_keeps_the_derived_parts_of_unchanged_apps(tmp_path: Path) -> None:
    folder = _write(tmp_path / "p", {"shared.policy": SHARED, "a.policy": _app("a"), "b.policy": _app("b")})
    first = build_served(_settings(folder), None)
    (folder / "b.policy").write_text(_app("b").replace("512", "128"))
    second = build_served(_settings(folder), first)
    assert second.policy.apps["a"] is first.policy.apps["a"]  # the timed pipeline wrapper is kept too
    assert second.models["a"] is first.models["a"]
    assert second.policy.apps["b"] is not first.policy.apps["b"]
    assert type(second.policy.apps["b"].input).__name__ == "TimedPipeline"
    assert second.router is first.router
