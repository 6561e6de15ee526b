"""Parse many policy files at once, on every core when there is enough text to pay for it.

Lark's LALR parser is pure Python and reads ~0.6 MB/s here, so a never-seen set
of 2,000 apps (1.5 MB) spends ~2.4 s of a 3.6 s cold start parsing
(bench/RESULTS.md, "Large policy sets"). Files are independent, so above
`PARALLEL_MIN` characters they are shared between this process and `cores - 1`
spawned workers; each worker sends its files back pickled the way the disk
cache pickles them (through the node constructors, 2x faster to read back than
the default for frozen slotted dataclasses). Anything that goes wrong with the
workers (no semaphores in a sandbox, a killed child) falls back to parsing here:
the result is the same, only slower.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from dsl import ast
from dsl.parsecache import Entry, Pickler
from dsl.parser import parse_text

PARALLEL_MIN = 300_000  # characters: below this a worker's start-up (~0.2 s) costs more than it saves
MAX_WORKERS = 4

Job = tuple[str, str]  # (path, text)


def parse_many(jobs: Sequence[Job]) -> list[Entry]:
    """Each job's parse, in the order of `jobs`."""
    workers = _workers(jobs)
    if workers == 0:
        return [parse_one(*job) for job in jobs]
    parts = workers + 1  # this process takes a share too
    slices = [list(jobs[i::parts]) for i in range(parts)]
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_parse_pickled, part) for part in slices[1:]]
            done = [[parse_one(*job) for job in slices[0]]]
            for part, future in zip(slices[1:], futures, strict=True):
                entries: list[Entry] = pickle.loads(future.result())
                done.append([(ast.PolicyFile(pf.path, pf.items, text), diags)
                             for (_, text), (pf, diags) in zip(part, entries, strict=True)])
    except Exception:  # any failure of the pool: do the work here instead
        return [parse_one(*job) for job in jobs]
    out: list[Entry] = [None] * len(jobs)  # type: ignore[list-item]
    for k, entries in enumerate(done):
        out[k::parts] = entries
    return out


def _workers(jobs: Sequence[Job]) -> int:
    if sum(len(text) for _, text in jobs) < PARALLEL_MIN or len(jobs) < 2:
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(cores, MAX_WORKERS, len(jobs)) - 1)


def parse_one(path: str, text: str) -> Entry:
    """One file's parse and its diagnostics."""
    pf, diags = parse_text(text, path)
    return pf, tuple(diags)


def _parse_pickled(jobs: list[Job]) -> bytes:
    """In a worker: the parses of `jobs`, pickled without their texts (the parent has them)."""
    buffer = io.BytesIO()
    entries = []
    for job in jobs:
        pf, diags = parse_one(*job)
        entries.append((ast.PolicyFile(pf.path, pf.items), diags))
    Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(entries)
    return buffer.getvalue()
