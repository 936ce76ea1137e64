"""What the client's commands ask, answered from an open data directory.

Each answer is a JSON-able dict, so the same function serves a command that opened the data
directory itself and the running ``listen``/``ui`` that answers on its local socket
(``client.local_socket``): the command prints the same lines either way.
"""

from __future__ import annotations

from typing import Any

from privastead.client.app import Client
from privastead.client.clip_retention import usage
from privastead.client.device import DataDir
from privastead.client.eventlog import EventLog, EventRecord
from privastead.crypto import Identity
from privastead.errors import PrivasteadError


def status(client: Client) -> dict[str, Any]:
    """The hub's health as this device judges it, with what a status report lists."""
    info = client.info
    report = client.health.report()
    state, detail = report.state.value, report.detail
    if client.relay_error and state != "removed":
        # One look, no grace period: the last round could not reach the relay.
        state, detail = "relay_unreachable", f"the relay did not answer: {client.relay_error}"
    return {
        "hub_name": info.hub_name,
        "relay_url": info.relay_url,
        "state": state,
        "detail": detail,
        "groups": list(report.groups),
        "lost": dict(sorted(client.watch.announced.lost.items())),
        "resync": client.resync.to_dict() if client.resync is not None else {},
        "safety_code": info.safety_code,
        "cameras": {name: _camera(client, name) for name in info.cameras()},
        "clip_store": usage(client.clips.root / "clips").as_dict(client.clip_keeping),
    }


def _camera(client: Client, name: str) -> dict[str, Any]:
    """A camera as the hub last reported it (empty until a heartbeat said)."""
    state = client.health.cameras.get(name)
    if state is None:
        return {}
    facts = state.facts
    return {
        "connected": state.connected,
        "offline_since": client.health.camera_offline_since(name),
        "fps": facts.get("fps"),
        "reconnects": facts.get("reconnects"),
        "decode_errors": facts.get("decode_errors"),
        "recording": facts.get("recording"),
        "disk": facts.get("disk"),
        "disk_detail": facts.get("disk_detail"),
    }


def devices(client: Client) -> dict[str, Any]:
    """This device and, per group, how many other devices share it and its epoch."""
    return {
        "device_name": client.info.device_name,
        "device_id": client.info.device_id,
        "safety_code": client.info.safety_code,
        "groups": [_group(g.entry.key, g.identity, g.entry.group_id) for g in client.groups],
    }


def devices_closed(data: DataDir) -> dict[str, Any]:
    """``devices`` without a running client: each group's state opened for a moment."""
    info = data.load()
    groups = []
    for entry in info.groups:
        try:
            with Identity.open(data.mls / entry.state) as ident:
                groups.append(_group(entry.key, ident, entry.group_id))
        except PrivasteadError as e:
            groups.append({"key": entry.key, "error": f"{type(e).__name__}: {e}"})
    return {
        "device_name": info.device_name,
        "device_id": info.device_id,
        "safety_code": info.safety_code,
        "groups": groups,
    }


def _group(key: str, identity: Identity, group_id: bytes) -> dict[str, Any]:
    try:
        members = len(identity.members(group_id)) - 1  # without the hub
        return {"key": key, "members": members, "epoch": identity.epoch(group_id)}
    except PrivasteadError as e:
        return {"key": key, "error": f"{type(e).__name__}: {e}"}


def events(log: EventLog, camera: str | None, limit: int) -> dict[str, Any]:
    """Received events, newest first."""
    return {"events": [_event(r) for r in log.events(camera=camera, limit=limit)]}


def clip(log: EventLog, event_or_clip_id: str) -> dict[str, Any]:
    """Where an event's decrypted clip is and how complete ({} if there is no such event)."""
    record = log.find(event_or_clip_id)
    return {} if record is None else _event(record)


def _event(r: EventRecord) -> dict[str, Any]:
    return {
        "event_id": r.event_id,
        "camera": r.camera,
        "at": r.at,
        "received_at": r.received_at,
        "score": r.score,
        "clip_state": r.clip_state.value,
        "clip_path": None if r.clip_path is None else str(r.clip_path),
    }


async def sync(client: Client) -> dict[str, Any]:
    """One round over every mailbox; how many messages, how many new."""
    before = client.received
    handled = await client.sync_once()
    return {
        "hub_name": client.info.hub_name,
        "handled": handled,
        "received": client.received - before,
        "removed": client.removed,
        "relay_error": client.relay_error,
    }


async def resync(
    client: Client, camera: str | None, groups: list[str], wait: float
) -> dict[str, Any]:
    """Ask the hub to re-add this device to ``groups`` of ``camera`` (every camera when None)
    and read the mailboxes until it did or ``wait`` seconds passed."""
    cameras = [camera] if camera else client.info.cameras()
    wanted = {f"{c}/{g}" for c in cameras for g in groups}
    for name in cameras:
        await client.request_readd(name, groups, "resync requested by the owner")
    deadline = client.clock.monotonic() + wait
    while not wanted <= set(client.readded) and client.clock.monotonic() < deadline:
        await client.sync_once()
        await client.clock.sleep(0.5)
    return {"wanted": sorted(wanted), "missing": sorted(wanted - set(client.readded))}


__all__ = ["clip", "devices", "devices_closed", "events", "resync", "status", "sync"]
