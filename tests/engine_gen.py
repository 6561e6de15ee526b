"""Hypothesis generators of policy ASTs and requests for the engine's property tests.

A stop-gap until the shared `tests/strategies.py` lands: small on purpose.
The vocabulary is fixed (three mock providers, a handful of chat and
embedding models, three custom pattern detectors) so generated requests hit
the generated rules often; the structure is random (aliases over aliases with
routes, splits and fallbacks, apps with caps, limits, guards and `when`s).
Built-in detectors are left out so these properties do not depend on them.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from hypothesis import strategies as st

from dsl import ast
from engine.request import EvalContext, GatewayRequest, TextField

PROVIDERS = ("pa", "pb", "pc")
MODELS = (
    ast.Model("pa/m1"),
    ast.Model("pa/m2"),
    ast.Model("pb/m1"),
    ast.Model("pc/m1"),
    ast.Model("pa/e1", kind="embedding"),
    ast.Model("pb/e1", kind="embedding"),
)
DETECTORS = (
    ast.CustomDetector("digits", "[0-9]{4}", type="number"),
    ast.CustomDetector("word", "secret[a-z]*"),
    ast.CustomDetector("tick", "TK-[0-9]+", type="ticket"),
)
# Fragments that texts are built from: detector matches, near misses, filler.
FRAGMENTS = ("1234", "98765", "12", "secret", "secretive", "SECRET", "TK-7", "TK-", " ", "hello", "x", "-")
OPERATIONS = ("bulk", "chat", "digest", "")
ACTIONS: tuple[ast.Action, ...] = ast.ACTIONS


@st.composite
def aliases(draw: st.DrawFn) -> tuple[ast.Alias, ...]:
    """Aliases a0…an; each names only models or earlier aliases of one kind, so no cycles."""
    kinds: dict[str, ast.ModelKind] = {m.name: m.kind for m in MODELS}
    out: list[ast.Alias] = []
    for i in range(draw(st.integers(0, 4))):
        kind: ast.ModelKind = draw(st.sampled_from(("chat", "chat", "embedding")))
        pool = sorted(n for n, k in kinds.items() if k == kind)
        target = st.builds(
            ast.Target,
            st.sampled_from(pool),
            timeout_s=st.none() | st.sampled_from((5.0, 10.0)),
            retries=st.none() | st.integers(0, 2),
        )
        fallbacks = tuple(draw(st.lists(target, max_size=2)))
        if draw(st.booleans()):
            alias = ast.Alias(f"a{i}", route=draw(target), fallbacks=fallbacks)
        else:
            members = draw(st.lists(target, min_size=1, max_size=3))
            weights = draw(st.lists(st.integers(1, 9), min_size=len(members), max_size=len(members)))
            split = tuple(
                ast.Target(m.name, float(w), m.timeout_s, m.retries) for m, w in zip(members, weights, strict=True)
            )
            alias = ast.Alias(f"a{i}", split=split, fallbacks=fallbacks)
        kinds[alias.name] = kind
        out.append(alias)
    return tuple(out)


def conditions(depth: int = 2) -> st.SearchStrategy[ast.Expr]:
    leaf: st.SearchStrategy[ast.Expr] = st.one_of(
        st.builds(ast.Compare, st.just("operation"), st.sampled_from(("==", "!=")), st.sampled_from(OPERATIONS)),
        st.builds(ast.Compare, st.just("endpoint"), st.sampled_from(("==", "!=")), st.sampled_from(("chat", "x"))),
        st.builds(ast.Member, st.just("operation"), st.tuples(st.sampled_from(OPERATIONS)), st.booleans()),
        st.builds(ast.Compare, st.just("model"), st.just("=="), st.sampled_from(("pa/m1", "a0"))),
    )
    if depth == 0:
        return leaf
    inner = conditions(depth - 1)
    return st.one_of(
        leaf,
        st.builds(ast.Not, inner),
        st.builds(ast.And, st.lists(inner, min_size=2, max_size=2).map(tuple)),
        st.builds(ast.Or, st.lists(inner, min_size=2, max_size=2).map(tuple)),
    )


def settings() -> st.SearchStrategy[ast.Settings]:
    return st.builds(
        ast.Settings,
        max_tokens=st.none()
        | st.builds(ast.MaxTokens, st.sampled_from((10, 100)), st.sampled_from(("clamp", "reject"))),
        rate_limit=st.none()
        | st.builds(ast.RateLimit, st.integers(1, 3), st.just(60.0), st.sampled_from(("app", "key")), st.just("n/min")),
        timeout_s=st.none() | st.sampled_from((30.0, 60.0)),
    )


guards = st.builds(
    ast.Guard,
    st.sampled_from([d.name for d in DETECTORS]),
    st.sampled_from(("off", "detect", "redact", "redact", "block", "block")),
    shadow=st.integers(0, 3).map(lambda n: n == 0),
)


@st.composite
def apps(draw: st.DrawFn, names: list[str], index: int) -> ast.App:
    models = draw(st.lists(st.sampled_from(names), min_size=1, max_size=4, unique=True))
    providers = draw(st.none() | st.lists(st.sampled_from(PROVIDERS), unique=True).map(tuple))
    block = None
    if draw(st.booleans()):
        rules = draw(st.lists(guards, min_size=1, max_size=4))
        if draw(st.booleans()):  # a second rule on one detector: strictest-wins and shadow merging
            first = draw(st.sampled_from(rules))
            rules.append(ast.Guard(first.detector, draw(st.sampled_from(ACTIONS)), shadow=not first.shadow))
        block = ast.GuardBlock("input", tuple(rules))
    return ast.App(
        name=f"app{index}",
        env="prod",
        models=tuple(ast.Target(m) for m in models),
        providers=providers,
        settings=draw(settings()),
        shadow=draw(st.booleans()) and draw(st.booleans()),
        input=block,
        whens=tuple(draw(st.lists(st.builds(ast.When, conditions(), settings()), max_size=2))),
    )


@st.composite
def raw_policy_sets(draw: st.DrawFn) -> ast.PolicySet:
    """Structurally sound sets whose apps may list providers their routes leave (P7 violations)."""
    alias_items = draw(aliases())
    names = [m.name for m in MODELS] + [a.name for a in alias_items]
    app_items = [draw(apps(names, i)) for i in range(draw(st.integers(1, 3)))]
    items: list[ast.Item] = [
        *(ast.Provider(p, "mock") for p in PROVIDERS),
        *MODELS,
        *alias_items,
        *DETECTORS,
        *app_items,
    ]
    return ast.PolicySet((ast.PolicyFile("gen.policy", tuple(items)),))


def close_providers(ps: ast.PolicySet) -> ast.PolicySet:
    """The same set with each app's providers widened to what its routes reach: it passes the checker."""
    from dsl.resolve import Index

    index = Index.of(ps)
    items: list[ast.Item] = []
    for item in ps.items():
        if isinstance(item, ast.App) and item.providers is not None:
            reach = {m.provider for t in item.models for m, _ in index.reachable(t.name)}
            item = replace(item, providers=tuple(sorted(set(item.providers) | reach)))
        items.append(item)
    return ast.PolicySet((ast.PolicyFile("gen.policy", tuple(items)),))


policy_sets = raw_policy_sets().map(close_providers)


@st.composite
def requests(draw: st.DrawFn, ps: ast.PolicySet) -> GatewayRequest:
    """Any request the schema admits, biased towards names, endpoints and texts the policy knows."""
    from dsl.resolve import Index

    index = Index.of(ps)
    allowed = sorted({t.name for a in ps.apps for t in a.models})
    names = [m.name for m in MODELS] + [a.name for a in ps.aliases] + ["nope/model", ""]
    model = draw(
        st.sampled_from(allowed) if draw(st.integers(0, 9)) < 8 else st.sampled_from(names) | st.text(max_size=6)
    )
    kind = index.kind_of(model)
    endpoint = "embeddings" if kind == "embedding" else "chat"
    if draw(st.integers(0, 9)) == 0:
        endpoint = "chat" if endpoint == "embeddings" else "embeddings"
    texts = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6).map("".join)
    roles = st.sampled_from(("user", "system", "assistant", "tool", "document"))
    fields = draw(st.lists(st.builds(TextField, roles, texts), max_size=3))
    metadata = draw(
        st.dictionaries(
            st.sampled_from(("operation", "operation", "external_request_id", "workspace_id")),
            st.sampled_from(OPERATIONS) | st.text(max_size=4),
            max_size=2,
        )
    )
    requested = None
    if draw(st.integers(0, 9)) == 0:
        requested = draw(st.sampled_from([*(a.name for a in ps.apps), "other"]))
    return GatewayRequest(
        endpoint="embeddings" if endpoint == "embeddings" else "chat",
        model=model,
        texts=tuple(fields),
        max_tokens=draw(st.none() | st.sampled_from((1, 10, 50, 100, 1000)) | st.integers(0, 2**31)),
        metadata=MappingProxyType(metadata),
        requested_app=requested,
    )


@st.composite
def contexts(draw: st.DrawFn, ps: ast.PolicySet) -> EvalContext:
    """Mostly a key of one of the set's apps; sometimes none, or an app that does not exist."""
    apps_ = [a.name for a in ps.apps]
    key_app = draw(st.sampled_from(apps_)) if draw(st.integers(0, 9)) < 9 else draw(st.sampled_from([None, "ghost"]))
    return EvalContext(key_app, draw(st.sampled_from(("k1", "k2"))), draw(st.text(max_size=4)), 0.0)
