"""`privastead-server accounts add|list|remove`: manage accounts (one per household)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from privastead.cli.server.common import add_location, load_config, open_index
from privastead.relay import accounts
from privastead.relay.api import IssuedToken
from privastead.relay.config import RelayConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser(
        "add", help="create an account; print its owner token alone on stdout (for the hub)"
    )
    add.add_argument("name", help="account name: 1-63 chars of a-z 0-9 _ . -")
    add.add_argument("--quota-bytes", type=int, help="storage quota (default: from the config)")
    add_location(add)
    lst = sub.add_parser("list", help="list accounts with usage")
    lst.add_argument("--json", action="store_true", help="print JSON")
    add_location(lst)
    rm = sub.add_parser("remove", help="delete an account with all its mailboxes and tokens")
    rm.add_argument("name")
    add_location(rm)


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    if config.storage.backend == "postgresql":
        return _run_postgresql(args, config)
    conn = open_index(config)
    try:
        if args.action == "add":
            conn.execute("BEGIN IMMEDIATE")
            accounts.add_account(conn, args.name, time.time(), args.quota_bytes)
            issued = accounts.issue_token(conn, args.name, "owner", time.time(), label="cli")
            conn.execute("COMMIT")
            _print_token(args.name, issued.token)
        elif args.action == "list":
            _print_list(args, config, accounts.list_accounts(conn))
        else:
            conn.execute("BEGIN IMMEDIATE")
            blobs = accounts.remove_account(conn, args.name)
            conn.execute("COMMIT")
            for name in blobs:
                (config.data_dir / "blobs" / name[:2] / name).unlink(missing_ok=True)
            print(f"account {args.name} removed")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
    return 0


def _run_postgresql(args: argparse.Namespace, config: RelayConfig) -> int:
    from privastead.cli.server import pg_accounts

    result = asyncio.run(pg_accounts.run(args, config))
    if isinstance(result, IssuedToken):
        _print_token(args.name, result.token)
    elif isinstance(result, list):
        _print_list(args, config, result)
    else:
        print(f"account {args.name} removed")
    return 0


def _print_token(name: str, token: str) -> None:
    # The token alone on stdout, so `accounts add NAME > owner-token` makes a token file.
    print(
        f"account {name} created; its owner token (shown once, for the hub's "
        "[relay] token_file) follows on stdout",
        file=sys.stderr,
    )
    print(token)


def _print_list(args: argparse.Namespace, config: RelayConfig, rows: list[Any]) -> None:
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'account':<24} {'used bytes':>12} {'quota':>12} mailboxes devices")
    for r in rows:
        quota = r["quota_bytes"] or config.limits.account_quota_bytes
        print(
            f"{r['name']:<24} {r['used_bytes']:>12} {quota:>12}"
            f" {r['mailboxes']:>9} {r['devices']:>7}"
        )
