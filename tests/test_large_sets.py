"""Large policy sets: loading, checking, compiling and testing grow linearly, and reloads stay off the loop.

Counts rather than clocks where possible (detectors built, files parsed, apps
compiled); where only time can tell, thread CPU time of 200 against 2,000 apps
as a ratio (a quadratic step makes it ~100, a linear one ~10), marked slow.
"""

from __future__ import annotations

import gc
import time
import weakref
from pathlib import Path

import pytest

from adapters.api.pacing import Pacer
from adapters.codecs import request_of_test
from bench.gen_apps import generate
from dsl.checker import check_policy_set
from dsl.diagnostics import PolicyError
from dsl.loader import ParseCache, load
from dsl.parsecache import DiskCache
from engine.detectors import registry
from engine.pipeline import build
from engine.testing import run_tests
from engine.verdict import Verdict, check_here, check_in_child, from_json, to_json


def _builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    built: list[str] = []
    real = registry._build

    def counting(guard: object, spec: object) -> object:
        built.append(getattr(guard, "detector", "?"))
        return real(guard, spec)  # type: ignore[arg-type]

    monkeypatch.setattr(registry, "_build", counting)
    return built


def test_detectors_are_built_once_per_distinct_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """2,000 apps copying six guard blocks built 7,334 detectors; the count must not grow with the apps."""
    counts = []
    for apps in (30, 120):
        generate(tmp_path / str(apps), apps)
        built = _builds(monkeypatch)
        monkeypatch.setattr(registry, "_BUILT", weakref.WeakValueDictionary())  # nothing from before
        kept = build([tmp_path / str(apps)], "prod")  # keep it alive: the registry holds detectors weakly
        counts.append(len(built))
        assert kept.policy is not None and len(kept.policy.apps) == apps
    assert counts[0] == counts[1] <= 12


def test_shared_detectors_report_what_their_own_would(tmp_path: Path) -> None:
    generate(tmp_path / "g", 12)
    policy = build([tmp_path / "g"], "prod").policy
    assert policy is not None
    report = run_tests(policy, request_of_test)
    assert not report.failed and len(report.results) == 24


def test_disk_cache_reads_back_what_was_parsed(tmp_path: Path) -> None:
    generate(tmp_path / "g", 20)
    disk = DiskCache(tmp_path / "cache")
    cold = load([tmp_path / "g"], ParseCache(disk=disk))
    warm_cache = ParseCache(disk=DiskCache(tmp_path / "cache"))
    warm = load([tmp_path / "g"], warm_cache)
    assert warm_cache.parsed == 0 and warm_cache.read_back == len(cold.policy_set.files)
    assert warm.policy_set == cold.policy_set and warm.sources == cold.sources
    spans = [a.span for a in warm.policy_set.apps]
    assert spans == [a.span for a in cold.policy_set.apps] and spans[0].line > 0
    # an edit misses the cache, and a corrupt entry is parsed again rather than trusted
    (tmp_path / "g" / "team-000.policy").write_text("# edited\n" + (tmp_path / "g" / "team-000.policy").read_text())
    for entry in (tmp_path / "cache" / "parsed").iterdir():
        entry.write_bytes(b"not a pickle")
    again = ParseCache(disk=DiskCache(tmp_path / "cache"))
    load([tmp_path / "g"], again)
    assert again.read_back == 0 and again.parsed == len(cold.policy_set.files)


def test_disk_cache_keeps_at_most_its_limit(tmp_path: Path) -> None:
    generate(tmp_path / "g", 30, per_file=3)
    disk = DiskCache(tmp_path / "cache")
    load([tmp_path / "g"], ParseCache(disk=disk))
    disk.prune(keep=4)
    assert len(list((tmp_path / "cache" / "parsed").iterdir())) == 4


def test_the_cache_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GHAT_CACHE_DIR", "off")
    assert DiskCache.default() is None
    monkeypatch.setenv("GHAT_CACHE_DIR", str(tmp_path / "c"))
    assert DiskCache.default() is not None
    (tmp_path / "shared").mkdir(mode=0o777)
    (tmp_path / "shared").chmod(0o777)  # others could plant entries: never used
    monkeypatch.setenv("GHAT_CACHE_DIR", str(tmp_path / "shared"))
    assert DiskCache.default() is None


# ── reloads: the child's check, and pacing ───────────────────────────────


def test_the_child_checks_as_the_pipeline_does(tmp_path: Path) -> None:
    generate(tmp_path / "g", 10)
    (tmp_path / "g" / "bad.policy").write_text("app broken { env prod  models nope }\n")
    here = check_here([tmp_path / "g"])
    assert any(d.code == "E102" for d in here.diagnostics)
    assert from_json(to_json(here)) == here
    child = check_in_child([tmp_path / "g"])
    assert child == here


def test_a_verdict_is_used_only_for_the_texts_it_checked(tmp_path: Path) -> None:
    generate(tmp_path / "g", 10)
    clean = check_here([tmp_path / "g"])
    assert build([tmp_path / "g"], "prod", verdict=clean).policy is not None
    # The set changes after the child looked: its clean verdict must not let the error through.
    (tmp_path / "g" / "bad.policy").write_text("app broken { env prod  models nope }\n")
    with pytest.raises(PolicyError):
        build([tmp_path / "g"], "prod", verdict=clean)
    # A verdict for these very texts is believed as it is (the child is the checker).
    lying = Verdict([], check_here([tmp_path / "g"]).digests)
    assert build([tmp_path / "g"], "prod", verdict=lying).policy is not None


def test_pacer_steps_aside_once_a_slice_is_used() -> None:
    pacer = Pacer(slice_s=0.0, pause_s=0.0)
    for _ in range(5):
        pacer.checkpoint()
    assert pacer.pauses == 5
    idle = Pacer(slice_s=3600.0, pause_s=0.0)
    for _ in range(5):
        idle.checkpoint()
    assert idle.pauses == 0


def test_a_reload_checkpoints_between_files_and_apps(tmp_path: Path) -> None:
    generate(tmp_path / "g", 30)
    calls = []
    build([tmp_path / "g"], "prod", pace=lambda: calls.append(1))
    assert len(calls) == 4 + 30  # four files, thirty apps


# ── linear growth ────────────────────────────────────────────────────────


def _cpu(fn: object) -> float:
    """Best of two in thread CPU time, with the collector off: growth of the work, not of the heap it walks."""
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(2):
            t0 = time.thread_time()
            fn()  # type: ignore[operator]
            best = min(best, time.thread_time() - t0)
    finally:
        gc.enable()
    return best


def _folder(built: object) -> Path:
    return Path(next(iter(built.result.sources))).parent  # type: ignore[attr-defined]


@pytest.mark.slow
def test_check_compile_and_test_grow_linearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """120 → 1,200 apps: each step within 20x (linear is ~10x; the quadratic coverage match made `test` 28x)."""
    monkeypatch.setenv("GHAT_CACHE_DIR", str(tmp_path / "cache"))
    sets = {}
    for apps in (120, 1200):
        generate(tmp_path / str(apps), apps)
        sets[apps] = build([tmp_path / str(apps)], "prod")  # warms the disk cache too
    ratios = {}
    for name, step in {
        "load": lambda b: load([_folder(b)], ParseCache(disk=DiskCache(tmp_path / "cache"))),
        "check": lambda b: check_policy_set(b.result.policy_set, b.result.sources),
        "build": lambda b: build([_folder(b)], "prod"),
        "test": lambda b: run_tests(b.policy, request_of_test),
    }.items():  # fmt: skip
        small, large = (_cpu(lambda s=sets[n], run=step: run(s)) for n in (120, 1200))
        ratios[name] = large / small
    assert all(r < 20 for r in ratios.values()), ratios
