"""`privastead-server tokens issue|revoke|list`: bearer tokens of an account."""

from __future__ import annotations

import argparse
import json
import time

from privastead.cli.server.common import add_location, load_config, open_index
from privastead.relay import accounts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    issue = sub.add_parser("issue", help="issue a token and print it (shown once)")
    issue.add_argument("--account", required=True)
    issue.add_argument(
        "--kind",
        choices=["owner", "device", "restricted"],
        default="device",
        help="owner (the hub), device (one installed client), or restricted "
        "(some mailboxes until --ttl; e.g. pairing)",
    )
    issue.add_argument(
        "--mailbox",
        action="append",
        default=[],
        metavar="ID",
        help="restricted tokens: an allowed mailbox id (repeat)",
    )
    issue.add_argument(
        "--ttl", type=int, metavar="SECONDS", help="expiry (required for restricted tokens)"
    )
    issue.add_argument("--label", default="", help="a note shown by `tokens list`")
    add_location(issue)
    revoke = sub.add_parser("revoke", help="revoke a token by its id (see `tokens list`)")
    revoke.add_argument("token_id")
    add_location(revoke)
    lst = sub.add_parser("list", help="list tokens (ids and kinds, never secrets)")
    lst.add_argument("--account")
    add_location(lst)


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    conn = open_index(config)
    try:
        if args.action == "issue":
            now = time.time()
            expires = now + args.ttl if args.ttl else None
            conn.execute("BEGIN IMMEDIATE")
            issued = accounts.issue_token(
                conn,
                args.account,
                args.kind,
                now,
                mailboxes=args.mailbox or None,
                expires_at=expires,
                label=args.label,
            )
            conn.execute("COMMIT")
            print(
                json.dumps(
                    {
                        "token_id": issued.token_id,
                        "device_id": issued.device_id,
                        "expires_at": issued.expires_at,
                        "token": issued.token,
                    }
                )
            )
        elif args.action == "revoke":
            conn.execute("BEGIN IMMEDIATE")
            accounts.revoke_token(conn, args.token_id, time.time())
            conn.execute("COMMIT")
            print(
                f"token {args.token_id} revoked (a running relay ends its connections and "
                f"refuses it within {config.auth.revocation_poll_seconds:g} s)"
            )
        else:
            for row in accounts.list_tokens(conn, args.account):
                print(json.dumps(row))
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
    return 0
