"""`privastead-server devices list|remove`: the devices of an account (one per installed app).

Removing a device revokes its tokens (a running relay ends its sockets and long-polls within
``auth.revocation_poll_seconds`` and answers it 401 ``device_removed`` from then on) and
stops its registrations from holding messages back.
"""

from __future__ import annotations

import argparse
import json
import time

from privastead.cli.server.common import add_location, load_config, open_index
from privastead.relay import accounts, store


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    lst = sub.add_parser("list", help="list an account's devices (ids, names, push targets)")
    lst.add_argument("--account", required=True)
    lst.add_argument("--json", action="store_true", help="print JSON")
    add_location(lst)
    rm = sub.add_parser("remove", help="remove a device: revoke its tokens, end its connections")
    rm.add_argument("device_id", help="the device id (see `devices list`)")
    rm.add_argument("--account", required=True)
    add_location(rm)


def run(args: argparse.Namespace) -> int:
    config = load_config(args)
    conn = open_index(config)
    try:
        if args.action == "list":
            rows = accounts.list_devices(conn, args.account)
            if args.json:
                print(json.dumps(rows))
            else:
                print(f"{'device':<20} {'name':<24} push")
                for r in rows:
                    push = ",".join(k for k in ("fcm", "webhook") if r[k]) or "-"
                    print(f"{r['device_id']:<20} {r['name'][:24]:<24} {push}")
            return 0
        conn.execute("BEGIN IMMEDIATE")
        revoked = accounts.remove_device(conn, args.account, args.device_id, time.time())
        blobs = store.collect_for_device(conn, args.account, args.device_id)
        conn.execute("COMMIT")
        for name in blobs:
            (config.data_dir / "blobs" / name[:2] / name).unlink(missing_ok=True)
        print(
            f"device {args.device_id} removed ({len(revoked)} token(s) revoked); a running "
            f"relay ends its connections within {config.auth.revocation_poll_seconds:g} s"
        )
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()
    return 0
