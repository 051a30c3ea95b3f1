"""Commands that change or show who serves an endpoint: deploy, promote, rollback, the kill
switch (disable) and its undo (enable), retire, freeze and unfreeze, the traffic history and guarded rollouts."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from loopml.cli.commands import (
    cli_actor,
    command,
    open_store,
    parse_time,
    print_json,
    print_table,
    project_config,
    when,
)

if TYPE_CHECKING:
    from loopml.store.rows import EndpointRow


def print_endpoint(args: argparse.Namespace, ep: EndpointRow) -> int:
    if getattr(args, "json", False):
        print_json(ep)
    else:
        shadows = (
            ", ".join(f"v{s['version_id']} ({s['fraction']:.0%})" for s in ep["shadows"]) or "none"
        )
        canary = f"v{ep['canary_id']} at {ep['canary_weight']:g}%" if ep["canary_id"] else "none"
        print(
            f"Endpoint {ep['name']}: champion v{ep['champion_id']}, canary {canary}, shadows {shadows}"
            + (" [frozen]" if ep["frozen"] else "")
        )
    return 0


@command
def cmd_deploy(args: argparse.Namespace) -> int:
    store = open_store(args)
    v = store.versions.get(args.version)
    ep = store.endpoints.deploy(
        args.endpoint,
        v,
        actor=cli_actor(args),
        reason=args.reason or "",
        canary=args.canary,
        shadow=args.shadow,
    )
    return print_endpoint(args, ep)


@command
def cmd_promote(args: argparse.Namespace) -> int:
    store = open_store(args)
    store.versions.get(args.version)  # a missing version is "not found", not a database error
    ep = store.endpoints.promote(
        args.endpoint, int(args.version), actor=cli_actor(args), reason=args.reason or ""
    )
    return print_endpoint(args, ep)


@command
def cmd_rollback(args: argparse.Namespace) -> int:
    store = open_store(args)
    return print_endpoint(
        args,
        store.endpoints.rollback(args.endpoint, actor=cli_actor(args), reason=args.reason or ""),
    )


@command
def cmd_disable(args: argparse.Namespace) -> int:
    store = open_store(args)
    removal = store.disable(
        int(args.version),
        actor=cli_actor(args),
        reason=args.reason or "kill switch from the command line",
    )
    print(
        f"Version {args.version} disabled; removed from: {', '.join(removal.endpoints) or 'no endpoint'}."
    )
    return 0


@command
def cmd_enable(args: argparse.Namespace) -> int:
    store = open_store(args)
    row = store.enable(
        int(args.version),
        actor=cli_actor(args),
        reason=args.reason or "re-enabled from the command line",
    )
    print(
        f"Version {args.version} enabled; it is a {row['status']} in no traffic. Deploy or "
        f"promote it to serve it again."
    )
    return 0


@command
def cmd_retire(args: argparse.Namespace) -> int:
    store = open_store(args)
    removal = store.retire(
        int(args.version), actor=cli_actor(args), reason=args.reason or "retired by hand"
    )
    print(
        f"Version {args.version} retired; removed from: {', '.join(removal.endpoints) or 'no endpoint'}."
    )
    return 0


def _set_frozen(args: argparse.Namespace, frozen: bool) -> int:
    reason = args.reason or f"{'frozen' if frozen else 'unfrozen'} by hand"
    ep = open_store(args).endpoints.set_frozen(
        args.endpoint, frozen, actor=cli_actor(args), reason=reason
    )
    return print_endpoint(args, ep)


@command
def cmd_freeze(args: argparse.Namespace) -> int:
    return _set_frozen(args, True)


@command
def cmd_unfreeze(args: argparse.Namespace) -> int:
    return _set_frozen(args, False)


@command
def cmd_history(args: argparse.Namespace) -> int:
    store = open_store(args)
    rows = store.endpoints.history(args.endpoint, at=parse_time(args.at) if args.at else None)
    if args.json:
        print_json(rows)
        return 0
    if args.at and not rows:
        print(f"Endpoint {args.endpoint} had no traffic at {args.at}.")
        return 0
    print_table(
        f"Traffic of {args.endpoint}",
        ["from (UTC)", "champion", "canary", "canary %", "shadows"],
        [
            (
                when(r["at"]),
                r["traffic"]["champion"],
                r["traffic"]["canary"],
                f"{r['traffic']['canary_weight'] or 0:g}",
                ",".join(str(s["version_id"]) for s in r["traffic"]["shadows"]) or "-",
            )
            for r in rows
        ],
        wrap=["shadows"],
        wide=args.wide,
    )
    return 0


@command
def cmd_rollout(args: argparse.Namespace) -> int:
    """Start a guarded rollout of a candidate: shadow -> canary steps -> champion."""
    from loopml.control import start_rollout

    cfg = project_config(args)
    store = open_store(args)
    start_rollout(
        cfg,
        store,
        args.endpoint,
        store.versions.get(args.version),
        actor=cli_actor(args),
        evidence={"requested_by": cli_actor(args), "reason": args.reason or ""},
    )
    print(
        f"Rollout of version {args.version} on {args.endpoint} started in shadow; the "
        f"controller (loopml serve, or loopml control) moves it through "
        f"{cfg.deploy.rollout.steps if cfg.deploy else 'the canary steps'} while its guards hold."
    )
    return 0
