"""`ghat keys create|list|revoke`: manage app-scoped API keys (the whole key is shown once, at creation)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("keys", help="create, list and revoke API keys")
    ks = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    for name, helptext in (("create", "create a key for an app (printed once)"),
                           ("list", "list keys (never the keys themselves)"),
                           ("revoke", "revoke a key by id, display form or whole key")):  # fmt: skip
        sp = ks.add_parser(name, help=helptext)
        sp.add_argument("--keys", help="key store file (default: DATA_DIR/keys.json)")
        sp.add_argument("--data-dir", help="state directory (default: $GHAT_DATA_DIR or the user data dir)")
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "create":
            sp.add_argument("--app", required=True)
            sp.add_argument("--env", required=True)
        elif name == "list":
            sp.add_argument("--app")
            sp.add_argument("--env")
            sp.add_argument("--all", action="store_true", help="include revoked keys")
        else:
            sp.add_argument("key", help="key id (key_…), display form or the whole key")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from engine.keys import KeyStore, keys_path

    path = keys_path(args.keys, args.data_dir)
    try:
        store = KeyStore.load(path)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.keys_command == "create":
        try:
            key, rec = store.create(args.app, args.env)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps({"key": key, "id": rec.id, "app": rec.app, "env": rec.env, "display": rec.display}))
        else:
            print(key)
            print(f"# {rec.id} for app {rec.app} ({rec.env}), stored as a hash in {path}", file=sys.stderr)
            print("# this is the only time the whole key is shown", file=sys.stderr)
        return 0
    if args.keys_command == "list":
        rows = [r for r in store.records
                if (args.all or r.active) and (args.app is None or r.app == args.app)
                and (args.env is None or r.env == args.env)]  # fmt: skip
        if args.json:
            print(json.dumps([{k: v for k, v in asdict(r).items() if k != "hash"} for r in rows]))
        else:
            for r in rows:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created))
                state = "revoked" if r.revoked else "active"
                print(f"{r.id}  {r.display:<18} {r.app:<24} {r.env:<8} {when}  {state}")
        return 0
    revoked = store.revoke(args.key)
    if revoked is None:
        print(f"error: no key matches {args.key!r}", file=sys.stderr)
        return 1
    print(json.dumps({"id": revoked.id, "revoked": True}) if args.json else f"revoked {revoked.id} ({revoked.display})")
    return 0
