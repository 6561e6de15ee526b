"""`ghat usage`: what each app, model, provider or workflow used, cost and suffered, over a time range.

`--compare SINCE..UNTIL` puts a baseline range beside the main one, per group,
to answer the review questions after a rollout: did reliability (error rate),
latency (p95, total and gateway overhead), block rate or cost change?

Definitions (also in docs/operations.md): an *error* is a status >= 400 that
is not a policy refusal; a *block* is a refusal by policy (any `guardrail_*`
code: guardrail, model not allowed, token cap, rate limit); a *fallback* is a
request on which a candidate other than the first was tried; latency
percentiles are nearest-rank over the requests of the group. Tokens and cost
add up trusted usage only: a request whose usage the log could not trust (out
of range, wrong type, parts above their whole; `usage_trusted` in the record)
is counted in `untrusted_usage` instead, so one hostile figure cannot swamp
a month's totals unnoticed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cli.logs import add_data_dir, open_store, parse_time

if TYPE_CHECKING:
    from engine.records import LogRecord

ALL = "(all)"  # the row over every group
GROUPS = ("app", "model", "provider", "operation", "source_service", "workspace")


def _group_key(by: str) -> Callable[[LogRecord], str]:
    from adapters.logstore.base import served_model

    if by == "app":
        return lambda r: r.app or "-"
    if by == "model":
        return lambda r: served_model(r) or r.requested_model or "-"
    if by == "provider":
        return lambda r: r.provider or (r.attempts[-1].provider if r.attempts else "-")
    meta = "workspace_id" if by == "workspace" else by
    return lambda r: r.metadata.get(meta) or "-"


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Group:
    """Running totals for one group; `summary()` turns them into the reported figures."""

    requests: int = 0
    errors: int = 0
    blocked: int = 0
    fallbacks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    guardrail_hits: int = 0
    untrusted_usage: int = 0  # requests whose tokens and cost are left out of the sums
    total_ms: list[float] = field(default_factory=list)
    overhead_ms: list[float] = field(default_factory=list)
    providers: Counter[str] = field(default_factory=Counter)

    def add(self, r: LogRecord) -> None:
        from adapters.logstore.base import fell_back, is_blocked

        self.requests += 1
        if is_blocked(r):
            self.blocked += 1
        elif r.status >= 400:
            self.errors += 1
        if fell_back(r):
            self.fallbacks += 1
        if r.usage_trusted and r.usage_source != "untrusted":  # the store's flag, or the adapter's verdict
            self.prompt_tokens += r.prompt_tokens
            self.completion_tokens += r.completion_tokens
            self.cost_usd += r.cost_usd
        else:
            self.untrusted_usage += 1
        self.guardrail_hits += sum(g.count for g in r.guardrails)
        if "total" in r.timings_ms:
            self.total_ms.append(r.timings_ms["total"])
        if "overhead" in r.timings_ms:
            self.overhead_ms.append(r.timings_ms["overhead"])
        if r.provider:
            self.providers[r.provider] += 1

    def summary(self) -> dict[str, Any]:
        n = self.requests or 1
        total, over = sorted(self.total_ms), sorted(self.overhead_ms)
        served = sum(self.providers.values()) or 1
        return {
            "requests": self.requests,
            "error_rate": self.errors / n,
            "block_rate": self.blocked / n,
            "tokens_in": self.prompt_tokens,
            "tokens_out": self.completion_tokens,
            "cost_usd": self.cost_usd,
            "latency_ms": {f"p{p}": percentile(total, p) for p in (50, 95, 99)},
            "overhead_ms": {f"p{p}": percentile(over, p) for p in (50, 95, 99)},
            "fallback_rate": self.fallbacks / n,
            "provider_mix": {k: v / served for k, v in self.providers.most_common()},
            "guardrail_hits": self.guardrail_hits,
            "untrusted_usage": self.untrusted_usage,
        }


def aggregate(records: Iterable[LogRecord], by: str) -> dict[str, Group]:
    """Groups keyed by the `--by` dimension, plus the overall `ALL` row."""
    key = _group_key(by)
    groups: dict[str, Group] = {}
    overall = Group()
    for r in records:
        groups.setdefault(key(r), Group()).add(r)
        overall.add(r)
    out = dict(sorted(groups.items()))
    out[ALL] = overall
    return out


def parse_range(text: str) -> tuple[float, float]:
    """`SINCE..UNTIL`, each a time `parse_time` reads (`2d..1d`, `2026-01-01..2026-01-08`)."""
    since, sep, until = text.partition("..")
    if not sep or not since or not until:
        raise argparse.ArgumentTypeError(f"--compare wants SINCE..UNTIL, got {text!r}")
    return parse_time(since), parse_time(until)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "usage", help="requests, errors, tokens, cost and latency by app, model, provider or workflow",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )  # fmt: skip
    add_data_dir(p)
    p.add_argument("--by", choices=GROUPS, default="app")
    p.add_argument("--since", type=parse_time, help="1h, 30m, 2d or ISO 8601 (default: everything)")
    p.add_argument("--until", type=parse_time)
    p.add_argument("--compare", type=parse_range, metavar="SINCE..UNTIL", help="a baseline range to compare with")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    store = open_store(args.data_dir)
    if store is None:
        return 1
    current = {k: g.summary() for k, g in aggregate(store.iter_range(args.since, args.until), args.by).items()}
    baseline = None
    if args.compare:
        b_since, b_until = args.compare
        baseline = {k: g.summary() for k, g in aggregate(store.iter_range(b_since, b_until), args.by).items()}
    report = build_report(args.by, current, baseline, (args.since, args.until), args.compare)
    out = {"table": render_table, "json": render_json, "csv": render_csv}[args.format](report)
    sys.stdout.write(out)
    return 0


# What --compare reports as changes: the review questions, one figure each.
CHANGES = (("requests", "requests"), ("error_rate", "error_rate"), ("block_rate", "block_rate"),
           ("fallback_rate", "fallback_rate"), ("latency_p95_ms", ("latency_ms", "p95")),
           ("overhead_p95_ms", ("overhead_ms", "p95")), ("cost_usd", "cost_usd"),
           ("cost_per_request_usd", None))  # fmt: skip


def _figure(s: dict[str, Any] | None, name: str, path: Any) -> float:
    if not s:
        return 0.0
    if path is None:
        return float(s["cost_usd"]) / s["requests"] if s["requests"] else 0.0
    if isinstance(path, tuple):
        return float(s[path[0]][path[1]])
    return float(s[path])


def build_report(by: str, current: dict[str, dict[str, Any]], baseline: dict[str, dict[str, Any]] | None,
                 rng: tuple[float | None, float | None], base_rng: tuple[float, float] | None) -> dict[str, Any]:
    """The report every format renders: groups with their summary and, with --compare, the changes."""
    groups = []
    keys = list(current)
    if baseline is not None:
        keys = [*sorted({*current, *baseline} - {ALL}), ALL]
    for k in keys:
        entry: dict[str, Any] = {"key": k, "current": current.get(k)}
        if baseline is not None:
            entry["baseline"] = baseline.get(k)
            entry["change"] = {
                name: _figure(current.get(k), name, path) - _figure(baseline.get(k), name, path)
                for name, path in CHANGES
            }
        groups.append(entry)
    return {"by": by, "range": {"since": rng[0], "until": rng[1]},
            "baseline_range": {"since": base_rng[0], "until": base_rng[1]} if base_rng else None,
            "groups": groups}  # fmt: skip


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2) + "\n"


def _flat(s: dict[str, Any] | None) -> dict[str, Any]:
    if not s:
        return {}
    out = {k: v for k, v in s.items() if not isinstance(v, dict)}
    for p in ("p50", "p95", "p99"):
        out[f"latency_{p}_ms"] = s["latency_ms"][p]
        out[f"overhead_{p}_ms"] = s["overhead_ms"][p]
    out["provider_mix"] = " ".join(f"{k}:{v:.3f}" for k, v in s["provider_mix"].items())
    return out


def render_csv(report: dict[str, Any]) -> str:
    buf = io.StringIO()
    rows: list[dict[str, Any]] = []
    for g in report["groups"]:
        row = {report["by"]: g["key"], **_flat(g["current"])}
        if report["baseline_range"]:
            row.update({f"baseline_{k}": v for k, v in _flat(g.get("baseline")).items()})
            row.update({f"change_{k}": v for k, v in g["change"].items()})
        rows.append(row)
    names: list[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def render_table(report: dict[str, Any]) -> str:
    if report["baseline_range"]:
        return _compare_table(report)
    head = [report["by"], "requests", "errors", "blocked", "tok in", "tok out", "cost $", "p50 ms", "p95 ms",
            "p99 ms", "ovh p50", "ovh p95", "ovh p99", "fallback", "guard hits", "providers",
            "untrusted"]  # fmt: skip
    rows = []
    for g in report["groups"]:
        s = g["current"]
        rows.append([
            g["key"], str(s["requests"]), _pct(s["error_rate"]), _pct(s["block_rate"]), str(s["tokens_in"]),
            str(s["tokens_out"]), f"{s['cost_usd']:.6f}",
            *(f"{s['latency_ms'][p]:.1f}" for p in ("p50", "p95", "p99")),
            *(f"{s['overhead_ms'][p]:.2f}" for p in ("p50", "p95", "p99")),
            _pct(s["fallback_rate"]), str(s["guardrail_hits"]),
            " ".join(f"{k} {v * 100:.0f}%" for k, v in s["provider_mix"].items()) or "-",
            str(s["untrusted_usage"]) if s["untrusted_usage"] else "-",
        ])  # fmt: skip
    out = _align([head, *rows])
    total = report["groups"][-1]["current"] if report["groups"] else None
    if total and total["untrusted_usage"]:
        out += (f"* {total['untrusted_usage']} request(s) with usage that could not be trusted are left out of "
                "tokens and cost: ghat logs --untrusted-usage\n")
    return out


def _compare_table(report: dict[str, Any]) -> str:
    head = [report["by"], "requests", "error rate", "block rate", "fallback", "p95 ms", "overhead p95", "cost $",
            "$/request"]  # fmt: skip
    rows = []
    for g in report["groups"]:
        cells = [g["key"]]
        for name, path in CHANGES:
            if name == "cost_usd" or name == "cost_per_request_usd":
                fmt = "{:.6f}"
            elif name.endswith("_rate"):
                cells.append(f"{_pct(_figure(g['baseline'], name, path))} → {_pct(_figure(g['current'], name, path))}")
                continue
            else:
                fmt = "{:.0f}" if name == "requests" else "{:.1f}"
            b, c = _figure(g["baseline"], name, path), _figure(g["current"], name, path)
            cells.append(f"{fmt.format(b)} → {fmt.format(c)}")
        rows.append(cells)
    return "baseline → current\n" + _align([head, *rows])


def _align(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows)
