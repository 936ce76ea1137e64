"""Cluster storage benchmark: the shared backends against the embedded ones, in one run.

Measures the building blocks of the relay cluster on this machine, each beside its embedded
counterpart:

- index appends: durable small-message appends (take the seq, insert message and receipt,
  quota trigger) from 32 concurrent writers; SQLite through the relay's storage interface
  (``SqliteStorage.append``: its group-commit writer) against PostgreSQL (``backends.pg``, fsync
  on, ``synchronous_commit = on``) with the same work in plain SQL (three statements, or one),
  and through the storage interface (``PgStorage.append``: with its row locks and receipt
  check, what a relay process runs), with the CPU both sides spent;
- wake-up bus: events per second from one relay process to another over LISTEN/NOTIFY, and
  NOTIFYs per event;
- blobs: PUT and GET of 64 KiB and 1 MiB bodies, 8 at a time, to the local blob directory
  against a three-node Garage (replication 3) through ``backends.s3`` (skipped, and said so,
  when the Garage binary is not built);
- downloads of 1 MiB clips from a relay process on PostgreSQL + Garage, 8 at a time: through
  the relay (streamed from the store) against presigned URLs (the relay only authorises; the
  client fetches from Garage), with the relay process's CPU per downloaded GB for each.

Everything runs on loopback on one machine, sharing its cores: compare within a run.

    python bench/bench_cluster.py [--seconds 4]

Prints a table and one JSON line (``{"bench": "cluster", ...}``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from privastead.devcluster import programs  # noqa: E402
from privastead.devcluster.garage import GarageCluster  # noqa: E402
from privastead.devcluster.postgres import PostgresServer  # noqa: E402
from privastead.devcluster.relays import RelayInstance, server_cli, storage_config  # noqa: E402
from privastead.relay import db, schema, store  # noqa: E402
from privastead.relay.backends.bus import MailboxEvent, PgNotificationBus  # noqa: E402
from privastead.relay.backends.pg import Connection, PgDatabase  # noqa: E402
from privastead.relay.backends.pg_storage import PgStorage  # noqa: E402
from privastead.relay.backends.s3 import S3BlobStore  # noqa: E402
from privastead.relay.backends.settings import PostgresSettings, S3Settings  # noqa: E402
from privastead.relay.blobs import BlobStore  # noqa: E402
from privastead.relay.client import RelayClient  # noqa: E402
from privastead.relay.sqlite_storage import SqliteStorage  # noqa: E402

WRITERS = 32
MAILBOXES = 64
# One account per two mailboxes, as many households: an account's uploads serialise on its
# quota row (both backends), so a single account would measure that lock, not the store.
ACCOUNTS = MAILBOXES // 2


def account_of(box: int) -> str:
    return f"a{box % ACCOUNTS}"


BODY = os.urandom(256)


def cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total


def postgres_pids(server: PostgresServer) -> list[int]:
    assert server.server is not None
    leader = psutil.Process(server.server.pid)
    return [leader.pid, *(c.pid for c in leader.children(recursive=True))]


async def run_writers(seconds: float, append: Any) -> int:
    count = 0
    stop = time.monotonic() + seconds

    async def writer(n: int) -> None:
        nonlocal count
        i = 0
        while time.monotonic() < stop:
            await append(n, i)
            i += 1
            count += 1

    await asyncio.gather(*(writer(n) for n in range(WRITERS)))
    return count


async def sqlite_appends(work: Path, seconds: float) -> dict[str, float]:
    database = db.Database(work / "relay.sqlite3", "full")
    database.open(schema.init)
    boxes = [f"{i:032x}" for i in range(MAILBOXES)]

    def setup(conn: Any) -> None:
        for a in range(ACCOUNTS):
            conn.execute("INSERT INTO accounts(name, created_at) VALUES (?, 0)", (f"a{a}",))
        for i, box in enumerate(boxes):
            store.create_mailbox(conn, account_of(i), box, 0.0, None)

    await database.run(setup)
    digest = hashlib.sha256(BODY).digest()

    storage = SqliteStorage(database)

    async def append(n: int, i: int) -> None:
        b = (n + i) % MAILBOXES
        msg = store.NewMessage(account_of(b), boxes[b], f"s{n}-{i}", digest, 256, BODY, None)
        await storage.append(msg=msg, now=time.time(), default_ttl=86400, quota=1 << 40)

    me = psutil.Process()
    cpu0 = me.cpu_times()
    start = time.monotonic()
    count = await run_writers(seconds, append)
    elapsed = time.monotonic() - start
    cpu1 = me.cpu_times()
    database.close()
    cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    return {"msgs_per_s": count / elapsed, "msgs_per_cpu_s": count / cpu, "cpu_s": cpu}


async def _pg_append(conn: Connection, account: str, box: str, msg_id: str, now: float) -> None:
    seq = await conn.fetchval(
        "UPDATE mailboxes SET last_seq = last_seq + 1 WHERE id = $1 AND account = $2"
        " RETURNING last_seq",
        box,
        account,
    )
    await conn.execute(
        "INSERT INTO messages(mailbox, seq, account, size, charged, body, created_at, expires_at)"
        " VALUES ($1, $2, $6, 256, 512, $3, $4, $5)",
        box,
        seq,
        BODY,
        now,
        now + 86400,
        account,
    )
    await conn.execute(
        "INSERT INTO receipts(mailbox, msg_id, seq, digest, expires_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        box,
        msg_id,
        seq,
        hashlib.sha256(BODY).digest(),
        now + 86400,
    )


# The same append as one statement: one round trip and an implicit transaction instead of
# BEGIN, three statements and COMMIT.
_ONE_STATEMENT = """
WITH m AS (
    UPDATE mailboxes SET last_seq = last_seq + 1 WHERE id = $1 AND account = $2
    RETURNING last_seq
), ins AS (
    INSERT INTO messages(mailbox, seq, account, size, charged, body, created_at, expires_at)
    SELECT $1, last_seq, $2, 256, 512, $3, $4::float8, $4::float8 + 86400 FROM m RETURNING seq
)
INSERT INTO receipts(mailbox, msg_id, seq, digest, expires_at)
SELECT $1, $5, seq, $6, $4::float8 + 86400 FROM ins RETURNING seq
"""


async def _pg_append_one(conn: Connection, account: str, box: str, msg_id: str, now: float) -> None:
    seq = await conn.fetchval(
        _ONE_STATEMENT, box, account, BODY, now, msg_id, hashlib.sha256(BODY).digest()
    )
    assert seq is not None


async def storage_appends(server: PostgresServer, seconds: float) -> dict[str, float]:
    """``PgStorage.append``: the plain-SQL append plus the mailbox and account row locks and the
    receipt lookup that make it exactly-once and quota-safe across processes."""
    settings = PostgresSettings(
        dsn=server.dsn,
        password_file=server.password_file,
        min_connections=WRITERS,
        max_connections=WRITERS,
    )
    database = PgDatabase(settings)
    await database.open()
    storage = PgStorage(database)
    digest = hashlib.sha256(BODY).digest()

    async def append(n: int, i: int) -> None:
        b = (n + i) % MAILBOXES
        box = f"{b:032x}"
        msg = store.NewMessage(account_of(b), box, f"i{n}-{i}", digest, len(BODY), BODY, None)
        await storage.append(msg=msg, now=time.time(), default_ttl=86400, quota=1 << 40)

    me = psutil.Process()
    pids = postgres_pids(server)
    ours0, theirs0 = me.cpu_times(), cpu_of(pids)
    start = time.monotonic()
    count = await run_writers(seconds, append)
    elapsed = time.monotonic() - start
    ours1, theirs1 = me.cpu_times(), cpu_of(pids)
    await database.close()
    client = (ours1.user + ours1.system) - (ours0.user + ours0.system)
    server_cpu = theirs1 - theirs0
    return {
        "msgs_per_s": count / elapsed,
        "msgs_per_cpu_s": count / (client + server_cpu),
        "client_cpu_s": client,
        "server_cpu_s": server_cpu,
    }


async def postgres_appends(
    server: PostgresServer, seconds: float, one_statement: bool
) -> dict[str, float]:
    settings = PostgresSettings(
        dsn=server.dsn,
        password_file=server.password_file,
        min_connections=WRITERS,
        max_connections=WRITERS,
    )
    database = PgDatabase(settings)
    await database.open()
    boxes = [f"{i:032x}" for i in range(MAILBOXES)]

    async def setup(conn: Connection) -> None:
        await conn.executemany(
            "INSERT INTO accounts(name, created_at) VALUES ($1, 0) ON CONFLICT DO NOTHING",
            [(f"a{a}",) for a in range(ACCOUNTS)],
        )
        await conn.executemany(
            "INSERT INTO mailboxes(id, account, created_at) VALUES ($1, $2, 0)"
            " ON CONFLICT DO NOTHING",
            [(b, account_of(i)) for i, b in enumerate(boxes)],
        )

    await database.transaction(setup)

    async def append(n: int, i: int) -> None:
        b = (n + i) % MAILBOXES
        args = (account_of(b), boxes[b], f"{'q' if one_statement else 'p'}{n}-{i}", time.time())
        if one_statement:
            await database.transactionless(lambda c: _pg_append_one(c, *args))  # autocommit
        else:
            await database.transaction(lambda c: _pg_append(c, *args))

    me = psutil.Process()
    pids = postgres_pids(server)
    ours0, theirs0 = me.cpu_times(), cpu_of(pids)
    start = time.monotonic()
    count = await run_writers(seconds, append)
    elapsed = time.monotonic() - start
    ours1, theirs1 = me.cpu_times(), cpu_of(pids)
    await database.close()
    client = (ours1.user + ours1.system) - (ours0.user + ours0.system)
    server_cpu = theirs1 - theirs0
    return {
        "msgs_per_s": count / elapsed,
        "msgs_per_cpu_s": count / (client + server_cpu),
        "client_cpu_s": client,
        "server_cpu_s": server_cpu,
    }


async def bus_rate(server: PostgresServer, events: int = 20000) -> dict[str, float]:
    settings = PostgresSettings(dsn=server.dsn, password_file=server.password_file)
    heard: list[MailboxEvent] = []
    all_heard = asyncio.Event()

    def hear(event: MailboxEvent) -> None:
        heard.append(event)
        if len(heard) == events:
            all_heard.set()

    # The queue holds the whole burst: this measures sending, not the overflow policy.
    sender = PgNotificationBus(settings, lambda e: None, lambda: None, max_queued=events)
    receiver = PgNotificationBus(settings, hear, lambda: None)
    await sender.start()
    await receiver.start()
    start = time.monotonic()
    for i in range(events):
        sender.publish(MailboxEvent("message", f"{i % 500:032x}", i))
        if i % 500 == 0:
            await asyncio.sleep(0)  # publishing from request handlers interleaves with sending
    await all_heard.wait()
    elapsed = time.monotonic() - start
    await sender.stop()
    await receiver.stop()
    return {"events_per_s": events / elapsed, "notifies_per_event": sender.sent_notifies / events}


async def blob_rates(put: Any, get: Any, size: int, count: int = 48) -> dict[str, float]:
    data = os.urandom(size)
    names: list[str] = []

    async def one_put() -> None:
        async def chunks() -> Any:
            for i in range(0, size, 65536):
                yield data[i : i + 65536]

        names.append(await put(chunks()))

    start = time.monotonic()
    for _ in range(count // 8):
        await asyncio.gather(*(one_put() for _ in range(8)))
    put_s = (time.monotonic() - start) / count
    start = time.monotonic()
    for i in range(0, count, 8):
        await asyncio.gather(*(get(n) for n in names[i : i + 8]))
    get_s = (time.monotonic() - start) / count
    return {"put_ms": put_s * 1000, "get_ms": get_s * 1000, "get_mb_per_s": size / get_s / 1e6}


async def local_blobs(work: Path, size: int) -> dict[str, float]:
    blobs = BlobStore(work / "blobs")
    blobs.open()

    async def put(chunks: Any) -> str:
        return (await blobs.write(chunks, 1 << 30)).name

    async def get(name: str) -> None:
        await asyncio.to_thread(blobs.path(name).read_bytes)

    return await blob_rates(put, get, size)


async def garage_blobs(cluster: GarageCluster, size: int) -> dict[str, float]:
    creds = cluster.credentials
    assert creds is not None
    settings = S3Settings(
        endpoint=creds.endpoint, bucket=creds.bucket, access_key_id=creds.access_key_id
    )
    store_ = S3BlobStore(settings, env={"PRIVASTEAD_RELAY_S3_SECRET_KEY": creds.secret_access_key})
    await store_.open()

    async def put(chunks: Any) -> str:
        return (await store_.write(chunks, 1 << 30)).name

    async def get(name: str) -> None:
        async with store_.reader(name) as blob:
            async for _ in blob.chunks():
                pass

    try:
        return await blob_rates(put, get, size)
    finally:
        await store_.close()


async def relay_downloads(
    server: PostgresServer, cluster: GarageCluster, work: Path, size: int, count: int = 64
) -> dict[str, float]:
    """One relay process on PostgreSQL + Garage; ``count`` clips fetched 8 at a time through
    the relay, then by presigned URL; the relay's CPU per GB for each."""
    creds = cluster.credentials
    assert creds is not None
    config = work / "relay.toml"
    config.write_text(
        storage_config(server.dsn, server.password_file, creds, creds.endpoint, work / "s3-secret")
    )
    data = work / "relay-data"
    out = server_cli("accounts", "add", "bench", "--config", str(config), "--data-dir", str(data))
    token = out.strip().splitlines()[-1]
    (work / "logs").mkdir(exist_ok=True)
    relay = RelayInstance(1, data, config, work / "logs")
    relay.start()
    try:
        assert relay.server is not None
        process = psutil.Process(relay.server.pid)
        box, clip = os.urandom(16).hex(), os.urandom(size)
        async with RelayClient(relay.url, token) as client:
            await client.create_mailbox(box)
            seqs = [(await client.upload(box, clip, f"c{i}")).seq for i in range(count)]
            result: dict[str, float] = {}
            for mode, direct in (("via_relay", False), ("presigned", True)):
                cpu = sum(process.cpu_times()[:2])
                start = time.monotonic()
                for i in range(0, count, 8):
                    bodies = await asyncio.gather(
                        *(client.fetch(box, s, direct=direct) for s in seqs[i : i + 8])
                    )
                    assert all(len(b) == size for b in bodies)
                elapsed = time.monotonic() - start
                cpu = sum(process.cpu_times()[:2]) - cpu
                gb = size * count / 1e9
                result[f"{mode}_ms"] = elapsed / count * 1000
                result[f"{mode}_mb_per_s"] = size * count / elapsed / 1e6
                result[f"{mode}_relay_cpu_s_per_gb"] = cpu / gb
        return result
    finally:
        relay.stop()


async def main_async(seconds: float, work: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"bench": "cluster", "writers": WRITERS, "seconds": seconds}
    pg_root = Path(tempfile.mkdtemp(prefix="privastead-bench-pg-"))
    server = PostgresServer(pg_root, fsync=True)
    server.init()
    try:
        binary: Path | None = programs.garage()
    except programs.MissingProgramError as exc:
        result["garage"] = None
        result["garage_skipped"] = str(exc)
        binary = None
    cluster = GarageCluster(work / "garage")
    try:
        result["index_sqlite"] = await sqlite_appends(work, seconds)
        result["index_postgresql"] = await postgres_appends(server, seconds, False)
        result["index_postgresql_one_statement"] = await postgres_appends(server, seconds, True)
        # After postgres_appends: its accounts and mailboxes are there.
        result["index_postgresql_storage"] = await storage_appends(server, seconds)
        result["bus"] = await bus_rate(server)
        for size in (65536, 1 << 20):
            result[f"blobs_local_{size}"] = await local_blobs(work, size)
        if binary is not None:
            cluster.start(binary)
            for size in (65536, 1 << 20):
                result[f"blobs_garage_{size}"] = await garage_blobs(cluster, size)
            result["relay_download_1048576"] = await relay_downloads(server, cluster, work, 1 << 20)
    finally:
        cluster.stop()
        server.stop()
        shutil.rmtree(pg_root, ignore_errors=True)
    return result


def table(result: dict[str, Any]) -> None:
    lite, pg = result["index_sqlite"], result["index_postgresql"]
    print(f"{'what':<44} {'embedded':>14} {'cluster':>14}")
    rates = f"{lite['msgs_per_s']:>14,.0f} {pg['msgs_per_s']:>14,.0f}"
    print(f"{'durable appends/s (32 writers)':<44} {rates}")
    print(
        f"{'appends per CPU-second (incl. PostgreSQL)':<44} {lite['msgs_per_cpu_s']:>14,.0f}"
        f" {pg['msgs_per_cpu_s']:>14,.0f}"
    )
    one = result["index_postgresql_one_statement"]
    rates = f"{'':>14} {one['msgs_per_s']:>14,.0f}"
    print(f"{'  ... as one statement (appends/s)':<44} {rates}")
    print(
        f"{'  ... as one statement (per CPU-second)':<44} {'':>14} {one['msgs_per_cpu_s']:>14,.0f}"
    )
    via = result["index_postgresql_storage"]
    rates = f"{'':>14} {via['msgs_per_s']:>14,.0f}"
    print(f"{'  ... through PgStorage (appends/s)':<44} {rates}")
    print(
        f"{'  ... through PgStorage (per CPU-second)':<44} {'':>14} {via['msgs_per_cpu_s']:>14,.0f}"
    )
    bus = result["bus"]
    print(f"{'wake-up events/s across processes':<44} {'-':>14} {bus['events_per_s']:>14,.0f}")
    for size in (65536, 1 << 20):
        local = result[f"blobs_local_{size}"]
        garage = result.get(f"blobs_garage_{size}")
        label = f"{size // 1024} KiB"
        for key, what in (("put_ms", "PUT ms"), ("get_ms", "GET ms")):
            other = f"{garage[key]:>14.2f}" if garage else f"{'skipped':>14}"
            print(f"{label + ' blob ' + what + ' (8 at a time)':<44} {local[key]:>14.2f} {other}")
    down = result.get("relay_download_1048576")
    if down:
        print(f"{'1 MiB clip download, 8 at a time':<44} {'via relay':>14} {'presigned':>14}")
        for key, what in (("ms", "ms per clip"), ("relay_cpu_s_per_gb", "relay CPU-s per GB")):
            print(
                f"{'  ' + what:<44} {down['via_relay_' + key]:>14.2f}"
                f" {down['presigned_' + key]:>14.2f}"
            )
    if result.get("garage_skipped"):
        print(f"garage: {result['garage_skipped']}")


def _interrupt(_sig: int, _frame: object) -> None:
    raise KeyboardInterrupt  # so that the servers started here are stopped


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    args, _ = parser.parse_known_args()
    work = Path(tempfile.mkdtemp(prefix="privastead-bench-cluster-"))
    try:
        result = asyncio.run(main_async(args.seconds, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table(result)
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
