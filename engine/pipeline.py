"""The one path from policy files to a decision graph: load → check → compile.

`ghat check`, `ghat test`, `ghat explain`, `ghat replay` and `ghat serve` all
come through here, so one of them cannot accept a set another refuses: the
checker runs with the same configuration (`ghat.toml` beside the policies)
everywhere, and the compiler refuses exactly what the checker reports as an
error. `ghat check` goes on to compile too (every environment), so a set it
passes is a set the server will load.

A `Build` keeps what the next build of the same paths can reuse: the parsed
files (a reload parses only the files that changed) and the compiled apps
(an app whose file and shared declarations are unchanged is not compiled again).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dsl import ast, rules
from dsl.checker import CheckResult, Config, ConfigError, check_policy_set, find_config, load_config
from dsl.diagnostics import Diagnostic, PolicyError
from dsl.loader import ParseCache, load
from dsl.parsecache import DiskCache
from engine.compiler import CompiledApp, CompiledPolicy, compile_policy
from engine.verdict import Verdict


class PolicySetError(ValueError):
    """The inputs cannot make a policy set for this command: an unknown env, a broken config.

    A usage error (exit 2), not a diagnostic: nothing in the policy text is wrong.
    """


class CheckFailed(PolicyError):
    """The set has errors: every diagnostic, and the sources to render them with carets."""

    def __init__(self, diagnostics: list[Diagnostic], sources: dict[str, str]) -> None:
        super().__init__(diagnostics)
        self.sources = sources


@dataclass
class Build:
    """One run of the pipeline, and what the next run over the same paths may reuse."""

    result: CheckResult
    policy: CompiledPolicy | None = None  # None when only checked (`ghat check`) or when checking failed
    parse_cache: ParseCache = field(default_factory=ParseCache)
    apps: dict[str, tuple[ast.App, CompiledApp]] = field(default_factory=dict)  # reusable compiled apps
    compiled: int = 0  # apps compiled (not reused) by this build: what a reload actually paid for
    checked_by: Verdict | None = None  # the child's verdict, when it was used instead of checking here


def envs_of(policy_set: ast.PolicySet) -> list[str]:
    """The environments the set's apps declare, sorted."""
    return sorted({app.env for app in policy_set.apps if app.env})


def require_env(policy_set: ast.PolicySet, env: str) -> None:
    """Refuse an env no app declares: `ghat test --env prdo` must not pass with nothing tested."""
    known = envs_of(policy_set)
    if env in known:
        return
    close = difflib.get_close_matches(env, known, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    listed = ", ".join(known) if known else "none"
    raise PolicySetError(f"no app in the policy set has env '{env}' (envs: {listed}){hint}")


def config_for(paths: Sequence[Path], config: Config | None = None) -> Config:
    """The configuration `ghat check` would use: the given one, else `ghat.toml` beside the policies."""
    if config is not None:
        return config
    try:
        found = find_config(paths)
        return load_config(found) if found else Config()
    except ConfigError as exc:
        raise PolicySetError(str(exc)) from None


def check(paths: Sequence[Path], config: Config | None = None, previous: Build | None = None) -> Build:
    """Load and check, as `ghat check` reports it; then compile every env, so check passes only what loads."""
    built = _checked(paths, config_for(paths, config), previous)
    if not built.result.has_errors:
        try:
            built.policy = _compile(built, None, previous)
        except PolicyError as err:  # the checker and the compiler disagree: a bug, but never a silent pass
            built.result.diagnostics.extend(err.diagnostics)
        except Exception as exc:  # a detector that cannot be built is still a failed check, not a traceback
            built.result.diagnostics.append(_internal(built.result.policy_set, exc))
    return built


def build(
    paths: Sequence[Path],
    env: str | None = None,
    config: Config | None = None,
    previous: Build | None = None,
    *,
    env_must_exist: bool = True,
    verdict: Verdict | None = None,
    pace: Callable[[], None] | None = None,
) -> Build:
    """Load, check and compile for `env` (None: every app); raises PolicyError or PolicySetError.

    `previous` is the build this one replaces (a reload): unchanged files are not parsed
    and unchanged apps not compiled again. `env_must_exist=False` lets `ghat replay`
    compile an env the changed set no longer has, so its records show up as changed.
    `verdict` is the check a child process ran on these files (engine/verdict.py), used
    when the texts are the ones it checked; `pace` is called between units of work, so
    a server can step aside for its requests (adapters/api/pacing.py).
    """
    built = _checked(paths, config_for(paths, config), previous, verdict, pace)
    errors = [d for d in built.result.diagnostics if d.level == "error"]
    if errors:
        raise CheckFailed(errors, built.result.sources)
    if env is not None and env_must_exist:
        require_env(built.result.policy_set, env)
    built.policy = _compile(built, env, previous, pace)
    return built


def compile_paths(paths: Sequence[Path], env: str | None = None, config: Config | None = None) -> CompiledPolicy:
    """`build` for callers that want only the compiled policy."""
    policy = build(paths, env, config).policy
    assert policy is not None
    return policy


def _checked(
    paths: Sequence[Path],
    config: Config,
    previous: Build | None,
    verdict: Verdict | None = None,
    pace: Callable[[], None] | None = None,
) -> Build:
    if previous is not None:
        cache = ParseCache(dict(previous.parse_cache.files), disk=previous.parse_cache.disk)
    else:
        cache = ParseCache(disk=DiskCache.default())
    loaded = load(list(paths), cache, pace)
    used = verdict if verdict is not None and verdict.matches(loaded.sources) else None
    if used is not None:
        diagnostics = list(used.diagnostics)
    else:  # no child, or a file changed since it read it: check here
        diagnostics = check_policy_set(loaded.policy_set, loaded.sources, config, loaded.diagnostics)
    return Build(CheckResult(loaded.policy_set, diagnostics, loaded.sources), parse_cache=cache, checked_by=used)


def _compile(
    built: Build, env: str | None, previous: Build | None, pace: Callable[[], None] | None = None
) -> CompiledPolicy:
    result = built.result
    reuse = _reusable(result.policy_set, env, previous)
    policy = compile_policy(
        result.policy_set, env, result.sources, diagnostics=result.diagnostics, reuse=reuse, pace=pace
    )
    apps = {app.name: app for app in result.policy_set.apps}
    built.apps = {name: (apps[name], compiled) for name, compiled in policy.apps.items() if name in apps}
    built.compiled = sum(1 for name, app in policy.apps.items() if reuse.get(name) is not app)
    return policy


def _reusable(policy_set: ast.PolicySet, env: str | None, previous: Build | None) -> dict[str, CompiledApp]:
    """Compiled apps of the previous build that this one may keep as they are.

    An app is compiled from its own declaration and from the shared ones (providers,
    models, aliases, detectors), so it is reused only when its `App` node is the very
    object parsed last time (its file did not change) and every file that declares
    something shared is the same object too. Identity, not equality: spans must stay
    exact for `ghat explain` and coverage.
    """
    if previous is None or previous.policy is None or previous.policy.env != env or not previous.apps:
        return {}
    if [id(f) for f in _shared_files(policy_set)] != [id(f) for f in _shared_files(previous.result.policy_set)]:
        return {}
    current = {id(app) for app in policy_set.apps}
    return {name: compiled for name, (node, compiled) in previous.apps.items() if id(node) in current}


def _shared_files(policy_set: ast.PolicySet) -> list[ast.PolicyFile]:
    """The files that declare anything an app compiles against (all but apps and tests)."""
    return [f for f in policy_set.files if any(not isinstance(i, ast.App | ast.TestCase) for i in f.items)]


def _internal(policy_set: ast.PolicySet, exc: BaseException) -> Diagnostic:
    file = policy_set.files[0].path if policy_set.files else "<policy>"
    return rules.INTERNAL.at(
        ast.Span(file, 1, 1, 1, 1),
        f"the set passes every check but does not compile: {type(exc).__name__}: {exc}",
        "please report this with the policy files",
    )
