"""``loopml keys``: create, list or revoke API keys."""

from __future__ import annotations

import argparse

from loopml.cli.commands import cli_actor, command, open_store, print_json, print_table, when


@command
def cmd_keys(args: argparse.Namespace) -> int:
    store = open_store(args)
    if args.action == "create":
        key, rec = store.keys.create(
            args.role,
            name=args.name or "",
            endpoints=args.endpoint,
            rate_per_s=args.rate_limit,
            actor=cli_actor(args),
        )
        scope = f" for endpoint(s) {', '.join(rec['endpoints'])}" if rec["endpoints"] else ""
        print(
            f"Created API key {rec['id']} ({rec['prefix']}) with role {rec['role']}{scope}"
            f"{_limit(rec)}. It is shown once:"
        )
        print(key)
        return 0
    if args.action == "revoke":
        store.keys.revoke(int(args.id), actor=cli_actor(args))
        print(f"Revoked API key {args.id}.")
        return 0
    rows = store.keys.list()
    if args.json:
        print_json(rows)
        return 0
    print_table(
        "API keys",
        [
            "id",
            "prefix",
            "role",
            "endpoints",
            "rate limit",
            "name",
            "created (UTC)",
            "revoked (UTC)",
        ],
        [
            (
                r["id"],
                r["prefix"],
                r["role"],
                ", ".join(r["endpoints"]) if r["endpoints"] else "all",
                f"{r['rate_per_s']:g}/s" if r.get("rate_per_s") else "default",
                r["name"],
                when(r["created_at"]),
                when(r["revoked_at"]),
            )
            for r in rows
        ],
        wrap=["name"],
        drop=["revoked (UTC)", "created (UTC)", "rate limit"],
        wide=args.wide,
    )
    return 0


def _limit(rec: dict) -> str:
    rate = rec.get("rate_per_s")
    return f" and its own rate limit of {rate:g} requests/s" if rate else ""
