"""Generate a large policy set: the shipped providers, models and aliases plus N apps.

`python -m bench.gen_apps OUT_DIR --apps 2000` writes `models.policy` (a copy of
the shipped one) and one `team-NNN.policy` per team of `--per-file` apps, as a
company with many teams keeps them. Apps are drawn from a handful of guard
profiles, as teams copy a block that works, each with its own name, caps,
limits, a `when` and two `test` blocks. The set is deterministic (no
randomness), so two runs measure the same text.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Guard profiles teams copy; each app takes one by its number.
PROFILES = (
    "input { pii redact; secrets block; ticket-id redact }\n    output { pii redact }",
    "input { pii redact; secrets redact; prompt_injection block threshold 0.7 }\n    output { secrets redact }",
    'input { secrets block; topics ["legal advice", "medical diagnosis"] block }',
    "input { pii redact types email, phone; secrets block }\n    output { pii redact; output_safety detect }",
    "input { pii detect; secrets redact; indirect_injection detect }",
    'input {\n      pii redact\n      secrets block\n      prompt_injection detect\n      topics ["weather"] detect\n'
    "    }\n    output { pii redact }",
)
MODEL_SETS = (
    "smart-default, cheap-fast",
    "cheap-fast, dev-chat",
    "smart-default, cheap-fast, embed-default, dev-embed",
    "reasoning, cheap-fast",
)
OPERATIONS = ("bulk-summarize", "digest", "classify", "translate")


def app_text(team: int, i: int) -> str:
    """One app of team `team`: the i-th of the whole set."""
    profile = PROFILES[i % len(PROFILES)]
    models = MODEL_SETS[i % len(MODEL_SETS)]
    first = models.split(",")[0]
    operation = OPERATIONS[i % len(OPERATIONS)]
    cap = 512 + 64 * (i % 16)
    rate = 60 * (1 + i % 10)
    per = " per key" if i % 3 == 0 else ""
    secret_expect = "deny guardrail_secrets_blocked" if "secrets block" in profile else "allow"
    return f"""
app team{team:03d}-app{i:04d} {{
    env        prod
    models     {models}
    providers  openai, anthropic, local
    max_tokens {cap}
    rate_limit {rate}/min{per}
    timeout    90s
    {profile}
    when operation == "{operation}" {{ max_tokens {cap * 4}; timeout 120s }}

    test "app {i} caps answers" {{
        request {{ model "{first}"; user "Write a long answer about rivers."; max_tokens 9000 }}
        expect allow
        expect max_tokens {cap}
    }}

    test "app {i} keeps keys out" {{
        request {{ model "{first}"; user "config: github_token = ghp_8f3kZ2mQ9xLw4Rt7Yp1Vb6Nc0Hs5Jd2Ae9Ku" }}
        expect {secret_expect}
    }}
}}
"""


def generate(out: Path, apps: int, per_file: int = 10) -> list[Path]:
    """Write the set into `out` (emptied first); returns the team files."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    shutil.copy(ROOT / "policies" / "models.policy", out / "models.policy")
    files: list[Path] = []
    for team in range((apps + per_file - 1) // per_file):
        lo, hi = team * per_file, min(apps, (team + 1) * per_file)
        path = out / f"team-{team:03d}.policy"
        path.write_text(f"# team {team}\n" + "".join(app_text(team, i) for i in range(lo, hi)), encoding="utf-8")
        files.append(path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--apps", type=int, default=2000)
    parser.add_argument("--per-file", type=int, default=10)
    args = parser.parse_args()
    files = generate(args.out, args.apps, args.per_file)
    print(f"{args.apps} apps in {len(files)} files under {args.out}")


if __name__ == "__main__":
    main()
