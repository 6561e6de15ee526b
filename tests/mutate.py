"""A small mutation run over the engine and the checker: do the tests notice a broken engine?

`make mutate` (or `python -m tests.mutate [--only engine/guards.py] [--workers 2]`)
makes AST-level mutants of each target module, one change each — a comparison
flipped, `and`/`or` swapped, a `not` dropped, `min`/`max` or `any`/`all`
swapped, an `if` branch dropped or its test negated, an integer constant
changed, `True`/`False` swapped, `+`/`-` swapped — and runs the tests that
cover the module against each mutant. A mutant is *killed* when a test fails
(or times out), *survives* otherwise. Survivors are printed with their line so
they can be read, and each is either killed by a new test or explained in
bench/RESULTS.md.

How a mutant runs: a warmed-up parent (pytest, hypothesis and the libraries
imported once) forks a child per mutant; the child installs an import hook
that serves the mutated source for the target module and runs pytest
in-process on the target's tests, stopping at the first failure. Hypothesis
runs derandomized without its example database or shrinking, so a run is
repeatable and a kill costs no shrink time. Not part of `make test`: it takes
tens of minutes.
"""

from __future__ import annotations

import argparse
import ast
import importlib.abc
import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each target and the tests that cover it, fast and specific ones first (a kill stops the run).
ENGINE_TESTS = (
    "tests/test_evaluator.py", "tests/test_values.py", "tests/test_compiler.py", "tests/test_rate_semantics.py",
    "tests/test_guard_semantics.py", "tests/test_streaming.py", "tests/test_testing_cli.py",
    "tests/test_explain_cli.py", "tests/test_differential.py", "tests/test_properties_engine.py",
)  # fmt: skip
CHECK_TESTS = (
    "tests/test_check_details.py", "tests/test_check.py", "tests/test_lint.py", "tests/test_rules_doc.py",
    "tests/test_check_cli.py", "tests/test_reporters.py", "tests/test_parser.py",
)  # fmt: skip
TARGETS: dict[str, tuple[str, ...]] = {
    "engine/evaluator.py": ENGINE_TESTS,
    "engine/compiler.py": ENGINE_TESTS,
    "engine/guards.py": (*ENGINE_TESTS[:6], "tests/test_redaction_properties.py", "tests/test_detectors_pii.py",
                         *ENGINE_TESTS[6:]),
    "dsl/check.py": CHECK_TESTS,
    "dsl/checker.py": CHECK_TESTS,
}
TIMEOUT_S = 240  # a mutant that loops (or slows a test past this) counts as killed


# ── mutation points ──────────────────────────────────────────────────────

FLIP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE,
        ast.GtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}  # fmt: skip
SWAP_CALLS = {"min": "max", "max": "min", "any": "all", "all": "any"}


@dataclass(frozen=True)
class Mutant:
    target: str
    index: int  # the n-th mutation point of the module, in walk order
    line: int
    what: str


def _skipped(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Annotations, docstrings and `TYPE_CHECKING` blocks: not behaviour."""
    child, parent = node, parents.get(node)
    while parent is not None:
        if isinstance(parent, ast.AnnAssign) and child is parent.annotation:
            return True
        if isinstance(parent, ast.arg) or (isinstance(parent, ast.FunctionDef) and child is parent.returns):
            return True
        if isinstance(parent, ast.If) and isinstance(parent.test, ast.Name) and parent.test.id == "TYPE_CHECKING":
            return True
        child, parent = parent, parents.get(parent)
    return False


def points(tree: ast.Module) -> Iterator[tuple[ast.AST, str, int]]:
    """(node, description, variant) of every mutation the module offers, in a stable order."""
    parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    for node in ast.walk(tree):
        if _skipped(node, parents):
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in FLIP:
                    yield node, f"{type(op).__name__} -> {FLIP[type(op)].__name__}", i
        elif isinstance(node, ast.BoolOp):
            yield node, f"{type(node.op).__name__} -> {'Or' if isinstance(node.op, ast.And) else 'And'}", 0
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node, "drop not", 0
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SWAP_CALLS:
            yield node, f"{node.func.id} -> {SWAP_CALLS[node.func.id]}", 0
        elif isinstance(node, ast.If):
            yield node, "negate if", 0
            if not (len(node.body) == 1 and isinstance(node.body[0], ast.Pass)):
                yield node, "drop if branch", 1
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            yield node, f"{node.value} -> {not node.value}", 0
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield node, f"{node.value} -> {node.value + 1}", 0
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
            yield node, f"{type(node.op).__name__} -> {'Sub' if isinstance(node.op, ast.Add) else 'Add'}", 0


def apply(node: ast.AST, variant: int) -> None:
    """Change `node` in place as the mutation point (node, variant) says."""
    if isinstance(node, ast.Compare):
        node.ops[variant] = FLIP[type(node.ops[variant])]()
    elif isinstance(node, ast.BoolOp):
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif isinstance(node, ast.UnaryOp):  # `not x` -> `not not x`, which is `bool(x)`
        node.operand = ast.UnaryOp(ast.Not(), node.operand)
    elif isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        node.func.id = SWAP_CALLS[node.func.id]
    elif isinstance(node, ast.If):
        if variant == 0:
            node.test = ast.UnaryOp(ast.Not(), node.test)
        else:
            node.body = [ast.Pass()]
    elif isinstance(node, ast.Constant):
        node.value = (not node.value) if type(node.value) is bool else node.value + 1
    elif isinstance(node, ast.BinOp):
        node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()


_SOURCES: dict[str, str] = {}


def source(target: str) -> str:
    """The target's text as the run found it: editing a file during a run changes none of its mutants."""
    if target not in _SOURCES:
        _SOURCES[target] = (ROOT / target).read_text()
    return _SOURCES[target]


def mutants(target: str) -> list[Mutant]:
    tree = ast.parse(source(target))
    return [Mutant(target, i, getattr(n, "lineno", 0), what) for i, (n, what, _v) in enumerate(points(tree))]


def mutated_source(target: str, index: int) -> str:
    tree = ast.parse(source(target))
    node, _what, variant = list(points(tree))[index]
    apply(node, variant)
    return ast.unparse(ast.fix_missing_locations(tree))


# ── running one mutant ───────────────────────────────────────────────────


class _Serve(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the mutated source for one module name; everything else imports as usual."""

    def __init__(self, name: str, path: Path, source: str) -> None:
        self.name, self.path, self.source = name, path, source

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname != self.name:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=str(self.path))

    def create_module(self, spec: object) -> None:
        return None

    def exec_module(self, module: object) -> None:
        module.__file__ = str(self.path)  # type: ignore[attr-defined]
        exec(compile(self.source, str(self.path), "exec"), module.__dict__)  # type: ignore[attr-defined]


def _child(mutant: Mutant, tests: tuple[str, ...]) -> int:
    import pytest
    from hypothesis import Phase, settings

    settings.register_profile("mutate", derandomize=True, database=None, deadline=None,
                              phases=[Phase.explicit, Phase.generate])  # fmt: skip
    settings.load_profile("mutate")
    name = mutant.target.removesuffix(".py").replace("/", ".")
    sys.meta_path.insert(0, _Serve(name, ROOT / mutant.target, mutated_source(mutant.target, mutant.index)))
    os.environ["GHAT_MUTANT"] = f"{mutant.target}:{mutant.index}"
    args = [*tests, "-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=", "-m", "not slow",
            "--timeout", str(TIMEOUT_S), "--no-header", "-W", "ignore"]  # fmt: skip
    with open(os.devnull, "w") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        return int(pytest.main(args))


def run_one(mutant: Mutant) -> str:
    """killed | survived | timeout, running the target's tests in a forked child."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            code = _child(mutant, TARGETS[mutant.target])
        finally:
            os._exit(code)
    deadline = time.monotonic() + TIMEOUT_S * 3
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            return "survived" if code == 0 else "killed" if code in (1, 2, 3) or code < 0 else f"error {code}"
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.05)


def _warm() -> None:
    """Import what every child needs and no module a mutant replaces (nor anything importing one)."""
    import hypothesis  # noqa: F401
    import jinja2  # noqa: F401
    import lark  # noqa: F401
    import numpy  # noqa: F401
    import pydantic  # noqa: F401
    import pytest  # noqa: F401
    import re2  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutate", description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", help="a target module (repeatable); default: all")
    parser.add_argument("--workers", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--out", default="mutation-results.json", help="where to write every outcome")
    parser.add_argument("--sample", type=int, default=0, help="run every N-th mutant only (0: all)")
    parser.add_argument("--again", help="a previous --out file: run only its survivors again (after new tests)")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    _warm()
    todo = [] if args.again else [m for t in (args.only or list(TARGETS)) for m in mutants(t)]
    if args.sample:
        todo = todo[:: args.sample]
    if args.again:  # the same mutants of the same sources as that run, against today's tests
        before = json.loads(Path(args.again).read_text())
        _SOURCES.update(before["sources"])
        again = {(r["target"], r["index"]) for r in before["results"] if r["outcome"] == "survived"}
        todo = [m for t in (args.only or list(TARGETS)) for m in mutants(t) if (m.target, m.index) in again]
    print(f"{len(todo)} mutants over {', '.join(args.only or TARGETS)}", flush=True)
    results: dict[Mutant, str] = {}
    running: dict[int, Mutant] = {}
    queue = list(todo)
    started = time.monotonic()
    while queue or running:
        while queue and len(running) < args.workers:
            m = queue.pop(0)
            pid = os.fork()
            if pid == 0:
                os._exit(_exit_code(run_one(m)))
            running[pid] = m
        pid, status = os.wait()
        m = running.pop(pid)
        outcome = _OUTCOMES.get(os.waitstatus_to_exitcode(status), "error")
        results[m] = outcome
        if outcome != "killed":
            print(f"  {outcome:8} {m.target}:{m.line}  {m.what}  (#{m.index})", flush=True)
        if len(results) % 20 == 0:
            print(f"  … {len(results)}/{len(todo)} in {(time.monotonic() - started) / 60:.1f} min", flush=True)
    elapsed = time.monotonic() - started
    report = _report(results, elapsed)
    print(report, flush=True)
    rows = [{"target": m.target, "line": m.line, "index": m.index, "what": m.what, "outcome": o}
            for m, o in sorted(results.items(), key=lambda kv: (kv[0].target, kv[0].index))]  # fmt: skip
    sources = {t: source(t) for t in dict.fromkeys(m.target for m in results)}
    Path(args.out).write_text(json.dumps({"sources": sources, "results": rows}, indent=1))
    return 0


_OUTCOMES = {0: "killed", 1: "survived", 2: "timeout", 3: "error"}


def _exit_code(outcome: str) -> int:
    return {"killed": 0, "survived": 1, "timeout": 2}.get(outcome, 3)


def _report(results: dict[Mutant, str], elapsed: float) -> str:
    lines = ["", "| target | mutants | killed | survived | kill rate |", "| --- | ---: | ---: | ---: | ---: |"]
    total = dead = 0
    for target in dict.fromkeys(m.target for m in results):
        mine = [o for m, o in results.items() if m.target == target]
        killed = sum(o in ("killed", "timeout") for o in mine)
        total, dead = total + len(mine), dead + killed
        lines.append(f"| {target} | {len(mine)} | {killed} | {len(mine) - killed} | {100 * killed / len(mine):.1f} % |")
    lines.append(f"| all | {total} | {dead} | {total - dead} | {100 * dead / max(total, 1):.1f} % |")
    lines.append(f"\n{elapsed / 60:.1f} min")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
