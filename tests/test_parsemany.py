"""Parsing on every core gives exactly the parse of one process, and falls back to it when workers fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.gen_apps import generate
from dsl import parsemany
from dsl.loader import load
from dsl.parsemany import parse_many, parse_one

BROKEN = 'app "x" {\n  env prod\n  models [gpt-4o\n}\nprovider "p" { kind openai }\n'


def _jobs(tmp_path: Path, apps: int) -> list[tuple[str, str]]:
    generate(tmp_path, apps)
    jobs = [(str(p), p.read_text()) for p in sorted(tmp_path.glob("*.policy"))]
    return [*jobs, (str(tmp_path / "broken.policy"), BROKEN)]


def test_workers_return_what_this_process_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Order, items, sources and diagnostics (a broken file among them) are those of a serial parse."""
    jobs = _jobs(tmp_path, 60)
    monkeypatch.setattr(parsemany, "PARALLEL_MIN", 1)
    monkeypatch.setattr(parsemany, "_workers", lambda jobs: 1)  # one worker even on a one-core runner
    parallel = parse_many(jobs)
    serial = [parse_one(path, text) for path, text in jobs]
    assert parallel == serial
    assert [pf.source for pf, _ in parallel] == [text for _, text in jobs]
    assert parallel[-1][1] and parallel[-1][1] == serial[-1][1]  # the broken file's diagnostics came back


def test_a_failing_pool_falls_back_to_parsing_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = _jobs(tmp_path, 6)

    class NoPool:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise OSError("no semaphores here")

    monkeypatch.setattr(parsemany, "_workers", lambda jobs: 1)
    monkeypatch.setattr(parsemany, "ProcessPoolExecutor", NoPool)
    assert parse_many(jobs) == [parse_one(path, text) for path, text in jobs]


def test_small_sets_stay_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Below PARALLEL_MIN characters a worker's start-up would cost more than it saves."""
    jobs = _jobs(tmp_path, 6)
    assert sum(len(t) for _, t in jobs) < parsemany.PARALLEL_MIN
    assert parsemany._workers(jobs) == 0


def test_load_of_a_large_set_is_the_serial_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generate(tmp_path, 60)
    monkeypatch.setenv("GHAT_CACHE_DIR", "off")
    monkeypatch.setattr(parsemany, "PARALLEL_MIN", 1)
    monkeypatch.setattr(parsemany, "_workers", lambda jobs: 1)
    parallel = load([tmp_path])
    monkeypatch.setattr(parsemany, "_workers", lambda jobs: 0)
    serial = load([tmp_path])
    assert parallel.policy_set == serial.policy_set and parallel.sources == serial.sources
