"""`make serve`: the shipped policies on the mock provider, with a dev key printed ready to paste.

State lives in `./.ghat-dev/` (git-ignored): the key is created once and
reused, so a restart keeps working with the same key. The whole key is kept
there in `dev-key.txt` — acceptable for a local mock-only development key,
never for a real one (`ghat keys create` shows real keys once and stores
only their hash).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

DEV_DIR = Path(".ghat-dev")
DEV_APP = {"dev": "support-dev"}


def main(argv: Sequence[str] | None = None) -> int:
    from cli.serve import add_serve_arguments
    from cli.serve import run as serve
    from engine.keys import KeyStore

    p = argparse.ArgumentParser(prog="python -m cli.devserve", description=__doc__)
    add_serve_arguments(p)
    p.set_defaults(unset_env="skip")  # a laptop has no provider keys: serve the mock, refuse the rest with a 503
    p.add_argument("--app", help="the app the dev key belongs to (default: support-dev for env dev)")
    args = p.parse_args(argv)
    args.data_dir = args.data_dir or str(DEV_DIR)
    data = Path(args.data_dir)
    app = args.app or DEV_APP.get(args.env)
    if app is None:
        print(f"error: no default app for env {args.env}; pass --app", file=sys.stderr)
        return 2
    store = KeyStore.load(Path(args.keys) if args.keys else data / "keys.json")
    saved = data / "dev-key.txt"
    key = saved.read_text().strip() if saved.exists() else ""
    rec = store.lookup(key) if key else None
    if rec is None or rec.app != app or rec.env != args.env:
        key, rec = store.create(app, args.env)
        saved.write_text(key + "\n")
        saved.chmod(0o600)
    base = f"http://{args.host}:{args.port}/v1"
    print(f"""
ghat dev server — env {args.env}, app {app}, policies {args.policies}
key: {key}

  curl -s {base}/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "dev-chat", "messages": [{{"role": "user", "content": "Hi, I am jane.doe@example.com"}}]}}'

  python - <<'EOF'
from openai import OpenAI
client = OpenAI(base_url="{base}", api_key="{key}")
r = client.chat.completions.create(model="dev-chat", messages=[{{"role": "user", "content": "hello"}}])
print(r.choices[0].message.content)
EOF

  # Anthropic Messages, answered natively by the mock (Claude Code: ANTHROPIC_BASE_URL={base[:-3]})
  curl -s {base}/messages -H "x-api-key: {key}" -H "anthropic-version: 2023-06-01" \\
    -H "Content-Type: application/json" \\
    -d '{{"model": "dev-chat", "max_tokens": 100, "messages": [{{"role": "user", "content": "hello"}}]}}'
""", flush=True)  # fmt: skip
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
