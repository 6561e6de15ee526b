"""Compile a checked policy set into a decision graph for one environment.

The pipeline is a list of named stages in one place (`STAGES`), as OPA's
compiler is: each takes the state so far and adds to it, and `compile_policy`
runs them in order. Everything that does not depend on the request is done
here — route plans, guard pipelines (one detector per option set), compiled `when` predicates — so
the evaluator only looks things up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dsl import ast
from dsl.checker import Config, check_policy_set
from dsl.diagnostics import Diagnostic, PolicyError
from dsl.resolve import Index
from engine.conditions import Predicate, compile_condition
from engine.decision import Candidate
from engine.detectors.base import Detector
from engine.guards import DetectorKey, GuardPipeline, compile_pipeline


@dataclass(frozen=True, slots=True)
class SplitChoice:
    """A weighted choice among sub-plans; `cumulative` are the running weight totals."""

    salt: str
    cumulative: tuple[float, ...]
    total: float
    members: tuple[Plan, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """How one requested name (model or alias) becomes an ordered candidate list.

    `segments` are fixed candidate runs or split choices; a plan with no split
    keeps its whole list in `fixed`, the common fast path.
    """

    kind: ast.ModelKind
    segments: tuple[tuple[Candidate, ...] | SplitChoice, ...]
    fixed: tuple[Candidate, ...] | None
    span: ast.Span | None = None


@dataclass(frozen=True, slots=True)
class Limit:
    """One rate limit in force, with the bucket of the rule that declared it.

    The bucket names the rule, never its number: the app's own limit is
    `{env:app}:app`, a `when` block's is `{env:app}:when:<digest of its
    condition>` (`#2`, `#3` for a repeated condition), so editing a number
    keeps the bucket, two teams with one number never share one, and a `when`
    limit counts only what it declared. A per-key limit's bucket ends with
    `:key:` and the evaluator appends the key id. The braces are a Redis
    cluster hash tag: every bucket of one app lives on one shard, so one
    script can check and take them all at once.
    """

    bucket: str
    per_key: bool
    rate: ast.RateLimit
    span: ast.Span | None


@dataclass(frozen=True, slots=True)
class WhenRule:
    predicate: Predicate
    settings: ast.Settings
    span: ast.Span
    limit: Limit | None = None


@dataclass(frozen=True, slots=True)
class Effective:
    """The settings in force for a request, flattened for the evaluator: no lookups left.

    `limits` are every rate limit that applies: the app's own (unless a
    matching `when` raises it) and each matching `when`'s, in declared order.
    A request is admitted only if each of them admits it.
    """

    settings: ast.Settings
    cap: ast.MaxTokens | None
    cap_span: ast.Span | None
    timeout_s: float | None
    limits: tuple[Limit, ...]
    buckets: tuple[tuple[str, int, float], ...] | None  # the limiter's arguments, when no limit is per key

    @classmethod
    def of(cls, settings: ast.Settings, when_span: ast.Span | None, limits: tuple[Limit, ...]) -> Effective:
        buckets = None
        if not any(lim.per_key for lim in limits):
            buckets = tuple((lim.bucket, lim.rate.limit, lim.rate.period_s) for lim in limits)
        return cls(settings, settings.max_tokens, settings.span_of("max_tokens") or when_span, settings.timeout_s,
                   limits, buckets)  # fmt: skip


def limit_of(env: str | None, app: str, rate: ast.RateLimit | None, rule: str, span: ast.Span | None) -> Limit | None:
    """The Limit a rule declares: its bucket is the app and the rule (see `Limit`)."""
    if rate is None:
        return None
    bucket = f"{{{env}:{app}}}:{rule}" + (":key:" if rate.per == "key" else "")
    return Limit(bucket, rate.per == "key", rate, span)


def when_rules(env: str | None, app: ast.App) -> tuple[WhenRule, ...]:
    """Compiled `when`s; each limit's rule id is its condition's digest (and its occurrence, if repeated)."""
    out: list[WhenRule] = []
    seen: dict[str, int] = {}
    for w in app.whens:
        digest = hashlib.blake2b(repr(w.condition).encode(), digest_size=6).hexdigest()  # spans are not in repr
        seen[digest] = seen.get(digest, 0) + 1
        rule = f"when:{digest}" + (f"#{seen[digest]}" if seen[digest] > 1 else "")
        span = w.settings.span_of("rate_limit") or w.span
        out.append(WhenRule(compile_condition(w.condition), w.settings, w.span,
                            limit_of(env, app.name, w.settings.rate_limit, rule, span)))  # fmt: skip
    return tuple(out)


@dataclass(frozen=True, slots=True)
class CompiledApp:
    name: str
    env: str
    plans: dict[str, Plan]  # requested name → plan, for the models this app allows
    settings: ast.Settings
    whens: tuple[WhenRule, ...]
    input: GuardPipeline
    output: GuardPipeline
    providers: frozenset[str] | None
    shadow: bool
    capture: tuple[str, ...]
    span: ast.Span
    base: Effective  # the settings when no `when` matches
    policy_env: str | None = None
    max_scan: int | None = None  # characters of request text the input guards may scan
    resolved: dict[tuple[int, ...], Effective] = field(default_factory=dict, compare=False, repr=False)
    limit: Limit | None = None  # the app's own rate limit

    def effective(self, matched: tuple[int, ...]) -> Effective:
        """The settings when exactly the `when`s at these indices match: merged once, then cached.

        Scalar settings override (a later `when` wins); rate limits add up:
        the app's own applies unless a matching `when` raises it, and every
        matching `when`'s limit applies beside it.
        """
        eff = self.resolved.get(matched)
        if eff is None:
            settings = self.settings
            for i in matched:
                settings = override(settings, self.whens[i].settings)
            extra = [w.limit for w in (self.whens[i] for i in matched) if w.limit is not None]
            raised = any(limit.rate.raises for limit in extra)
            limits = tuple(([] if raised or self.limit is None else [self.limit]) + extra)
            eff = self.resolved[matched] = Effective.of(settings, self.whens[matched[-1]].span, limits)
        return eff


def override(base: ast.Settings, top: ast.Settings) -> ast.Settings:
    """A `when` block's max_tokens and timeout over the app's: each field it sets wins.

    Rate limits do not override (they add up: see `CompiledApp.effective`), so
    the merged settings keep the app's own.
    """
    spans = dict(base.spans)
    spans.update(dict(top.spans))
    return ast.Settings(
        max_tokens=top.max_tokens or base.max_tokens,
        rate_limit=base.rate_limit,
        timeout_s=top.timeout_s or base.timeout_s,
        spans=tuple(spans.items()),
    )


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    env: str | None
    apps: dict[str, CompiledApp]
    kinds: dict[str, ast.ModelKind]  # every declared model and alias → its kind
    models: dict[str, ast.Model]
    providers: dict[str, ast.Provider]
    version: str
    source: ast.PolicySet = field(repr=False)


@dataclass
class _State:
    policy_set: ast.PolicySet
    env: str | None
    index: Index = field(default_factory=Index)
    plans: dict[str, Plan] = field(default_factory=dict)
    apps: dict[str, CompiledApp] = field(default_factory=dict)
    detectors: dict[DetectorKey, Detector] = field(default_factory=dict)  # built once per option set
    reuse: dict[str, CompiledApp] = field(default_factory=dict)  # apps a reload may keep (engine/pipeline.py)
    pace: Callable[[], None] | None = None  # called after each app: a reloading server steps aside there


def _stage_index(state: _State) -> None:
    state.index = Index.of(state.policy_set)


def _stage_plans(state: _State) -> None:
    for name in [*state.index.models, *state.index.aliases]:
        state.plans[name] = _plan_for(name, state.index, ())


def _stage_apps(state: _State) -> None:
    custom = state.index.detectors
    restricted: dict[tuple[str, frozenset[str] | None], Plan] = {}  # apps with one provider list share plans
    for app in state.policy_set.apps:
        if state.env is not None and app.env != state.env:
            continue  # apps of other environments do not exist for this server
        if state.pace is not None:
            state.pace()
        kept = state.reuse.get(app.name)
        if kept is not None:
            state.apps[app.name] = kept
            continue
        providers = frozenset(app.providers) if app.providers is not None else None
        plans = {t.name: _restricted(state.plans, t.name, providers, restricted) for t in app.models
                 if t.name in state.plans}  # fmt: skip
        own = limit_of(state.env, app.name, app.settings.rate_limit, "app", app.settings.span_of("rate_limit"))
        state.apps[app.name] = CompiledApp(
            name=app.name,
            env=app.env or "",
            plans=plans,
            settings=app.settings,
            whens=when_rules(state.env, app),
            input=compile_pipeline(app.input, "input", custom, app.shadow, app.name, state.detectors),
            output=compile_pipeline(app.output, "output", custom, app.shadow, app.name, state.detectors),
            providers=providers,
            shadow=app.shadow,
            capture=app.capture,
            span=app.span,
            base=Effective.of(app.settings, None, () if own is None else (own,)),
            policy_env=state.env,
            max_scan=app.max_scan,
            limit=own,
        )


STAGES: list[tuple[str, Callable[[_State], None]]] = [
    ("index", _stage_index),
    ("plans", _stage_plans),
    ("apps", _stage_apps),
]


def compile_policy(
    policy_set: ast.PolicySet,
    env: str | None = None,
    sources: dict[str, str] | None = None,
    *,
    config: Config | None = None,
    diagnostics: list[Diagnostic] | None = None,
    reuse: dict[str, CompiledApp] | None = None,
    pace: Callable[[], None] | None = None,
) -> CompiledPolicy:
    """Check exactly as `ghat check` does, then compile. A set with errors raises PolicyError.

    `diagnostics` are the checker's own, when the caller has just run it (engine/pipeline.py);
    `reuse` are compiled apps the caller knows are unchanged (a reload); `pace` is called
    after each app.
    """
    if diagnostics is None:
        diagnostics = check_policy_set(policy_set, sources, config)
    errors = [d for d in diagnostics if d.level == "error"]
    if errors:
        raise PolicyError(errors)
    state = _State(policy_set, env, reuse=dict(reuse or {}), pace=pace)
    for _name, stage in STAGES:
        stage(state)
    index = state.index
    kinds = {name: plan.kind for name, plan in state.plans.items()}
    return CompiledPolicy(
        env=env,
        apps=state.apps,
        kinds=kinds,
        models=dict(index.models),
        providers=dict(index.providers),
        version=policy_version(policy_set, sources),
        source=policy_set,
    )


def compile_paths(paths: list[Path], env: str | None = None) -> CompiledPolicy:
    """Load, check and compile policy files, through the one pipeline (engine/pipeline.py)."""
    from engine.pipeline import compile_paths as through_pipeline

    return through_pipeline(paths, env)


def policy_version(policy_set: ast.PolicySet, sources: dict[str, str] | None = None) -> str:
    """A short content hash of the set: the same files give the same version."""
    digest = hashlib.sha256()
    texts = sources or {f.path: f.source for f in policy_set.files}
    for path in sorted(texts):
        digest.update(Path(path).name.encode())
        digest.update(b"\0")
        digest.update(texts[path].encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


# ── route plans ──────────────────────────────────────────────────────────


def _candidate(model: ast.Model, target: ast.Target | None, via: tuple[str, ...], index: Index) -> Candidate:
    provider = index.providers.get(model.provider)
    timeout = target.timeout_s if target and target.timeout_s else (provider.timeout_s if provider else None)
    return Candidate(
        model=model.name,
        provider=model.provider,
        upstream_model=model.upstream_name,
        timeout_s=timeout,
        retries=target.retries if target and target.retries is not None else 0,
        via=via,
        span=target.span if target else model.span,
    )


def _plan_for(name: str, index: Index, via: tuple[str, ...], target: ast.Target | None = None) -> Plan:
    model = index.models.get(name)
    if model is not None:
        cand = _candidate(model, target, via, index)
        return Plan(model.kind, ((cand,),), (cand,), model.span)
    alias = index.aliases[name]
    path = (*via, name)
    segments: list[tuple[Candidate, ...] | SplitChoice] = []
    if alias.route is not None:
        segments.extend(_plan_for(alias.route.name, index, path, alias.route).segments)
    elif alias.split:
        members = tuple(_plan_for(m.name, index, path, m) for m in alias.split)
        weights = [m.weight or 0.0 for m in alias.split]
        cumulative = tuple(sum(weights[: i + 1]) for i in range(len(weights)))
        segments.append(SplitChoice("/".join(path), cumulative, cumulative[-1], members))
    for fb in alias.fallbacks:
        segments.extend(_plan_for(fb.name, index, path, fb).segments)
    kind = index.kind_of(name) or "chat"
    return Plan(kind, _merge_fixed(segments), _fixed(segments), alias.span)


def _merge_fixed(
    segments: list[tuple[Candidate, ...] | SplitChoice],
) -> tuple[tuple[Candidate, ...] | SplitChoice, ...]:
    """Join adjacent fixed runs so a plan has as few segments as possible."""
    out: list[tuple[Candidate, ...] | SplitChoice] = []
    for seg in segments:
        if isinstance(seg, tuple) and out and isinstance(out[-1], tuple):
            out[-1] = (*out[-1], *seg)
        else:
            out.append(seg)
    return tuple(out)


def _fixed(segments: list[tuple[Candidate, ...] | SplitChoice]) -> tuple[Candidate, ...] | None:
    if any(isinstance(s, SplitChoice) for s in segments):
        return None
    return tuple(c for s in segments if isinstance(s, tuple) for c in s)


def _restricted(
    plans: dict[str, Plan],
    name: str,
    providers: frozenset[str] | None,
    memo: dict[tuple[str, frozenset[str] | None], Plan],
) -> Plan:
    """`_restrict` of a named plan, computed once per provider list (plans are immutable)."""
    key = (name, providers)
    plan = memo.get(key)
    if plan is None:
        plan = memo[key] = _restrict(plans[name], providers)
    return plan


def _restrict(plan: Plan, providers: frozenset[str] | None) -> Plan:
    """P7 at run time: drop every candidate on a provider the app excludes."""
    if providers is None:
        return plan

    def seg(s: tuple[Candidate, ...] | SplitChoice) -> tuple[Candidate, ...] | SplitChoice:
        if isinstance(s, tuple):
            return tuple(c for c in s if c.provider in providers)
        members = tuple(_restrict(m, providers) for m in s.members)
        return SplitChoice(s.salt, s.cumulative, s.total, members)

    segments = tuple(seg(s) for s in plan.segments)
    fixed = None if plan.fixed is None else tuple(c for c in plan.fixed if c.provider in providers)
    return Plan(plan.kind, segments, fixed, plan.span)
