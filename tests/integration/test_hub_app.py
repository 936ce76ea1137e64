"""The hub's composition root (hub/app.py) in this process, with every part real: a relay
process, a camsim camera, the MLS groups with a member device, the outbox and uploader, the
camera pipeline. Motion in the scene becomes an encrypted notification and clip that the
device decrypts from the relay, the heartbeat carries the camera's health (the wiring that used
to be lost), the metrics endpoint serves the same health, and the loop guard (tests/conftest.py)
holds every hub callback of the run under 100 ms."""

from __future__ import annotations

import asyncio
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "relay"))

from relay_harness import make_process

from privastead.clock import SystemClock
from privastead.crypto import Identity
from privastead.errors import CryptoError
from privastead.hub.app import Hub
from privastead.hub.config import (
    CameraConfig,
    HubConfig,
    HubSection,
    MetricsSection,
    RelaySection,
)
from privastead.hub.delivery.outbox import Outbox
from privastead.hub.delivery.uploader import Uploader
from privastead.hub.state.groups import HubGroups
from privastead.media.ingest import IngestSettings
from privastead.media.settings import EventSettings
from privastead.ports import free_port
from privastead.protocol.codec import Message, decode_message
from privastead.protocol.messages import ClipFragment, Heartbeat, Notification
from privastead.relay.client import RelayClient
from support.procs import camsim

FAST = IngestSettings(open_timeout=5.0, read_timeout=5.0, backoff_initial=0.2, backoff_max=1.0)


@dataclass
class Phone:
    relay: RelayClient
    idents: dict[str, tuple[Identity, bytes, str]]  # group -> (identity, group id, mailbox)
    cursors: dict[str, int]


async def _add_phone(config: HubConfig, relay_url: str, owner: str, root: Path) -> Phone:
    """A member device in every group of the camera, added before the hub starts."""
    paths = config.hub.paths()
    outbox = Outbox(paths.outbox, quota_bytes=1 << 26)
    groups = HubGroups(paths, outbox, ["porch"])
    hub_relay = RelayClient(relay_url, owner)
    try:
        device = await hub_relay.create_device()
        phone = RelayClient(relay_url, device.token)
        idents = {}
        for group in groups:
            await hub_relay.create_mailbox(group.mailbox)
            await phone.register(group.mailbox)
            ident = Identity.create(root / f"phone-{group.group}.mls", b"phone")
            added = group.add_device(ident.key_package())
            ident.join(added.result.welcome, inviter_signature_key=group.identity.signature_key)
            idents[group.group] = (ident, group.group_id, group.mailbox)
        uploader = Uploader(outbox, hub_relay, clock=SystemClock())
        for group in groups:
            await uploader.drain(group.mailbox)
        cursors = {}
        for name, (_ident, _gid, mailbox) in idents.items():
            cursors[name] = (await phone.list_messages(mailbox)).last_seq  # past its own add
        return Phone(phone, idents, cursors)
    finally:
        await hub_relay.close()
        groups.close()


async def _read(phone: Phone, name: str) -> list[Message]:
    ident, group_id, mailbox = phone.idents[name]
    relay = phone.relay
    page = await relay.list_messages(mailbox, after=phone.cursors[name], limit=1000)
    out = []
    for info in page.messages:
        body = await relay.body_of(mailbox, info)
        try:
            received = ident.process(group_id, body)
        except CryptoError:
            continue
        if received.kind == "application":
            out.append(decode_message(received.data))
    return out


@pytest.mark.slow
async def test_the_root_runs_a_whole_hub_whose_messages_a_member_decrypts(tmp_path: Path) -> None:
    relay = make_process(tmp_path / "relay")
    token = tmp_path / "owner-token"
    token.write_text(relay.owner_token + "\n")
    metrics_port = free_port()
    phone: Phone | None = None
    try:
        # demo scene, 14 s loop: a person walks through from 4.5 s to 11.5 s
        with camsim(
            free_port(), tmp_path / "cache", scene="demo", size="320x180", fps=10, duration=14
        ) as cam:
            camera = CameraConfig(
                name="porch",
                url=cam.urls[0],
                decode="keyframes",
                events=EventSettings(pre_roll=1.0, post_roll=1.0),
            )
            config = HubConfig(
                HubSection(data_dir=tmp_path / "hub", status_interval=0),
                (camera,),
                RelaySection(url=relay.url, token_file=token, heartbeat_interval=1.0),
                MetricsSection(enabled=True, listen=f"127.0.0.1:{metrics_port}"),
            )
            phone = await _add_phone(config, relay.url, relay.owner_token, tmp_path)
            async with Hub.open(config, ingest_settings=FAST) as hub:
                run = asyncio.create_task(hub.run())
                clips = 0
                for _ in range(450):  # up to 45 s: the walk, its clip, the upload
                    await asyncio.sleep(0.1)
                    cam_obj = hub.runner.cameras.get("porch")
                    clips = cam_obj.stats.clips if cam_obj is not None else 0
                    if clips:
                        break
                text = await asyncio.to_thread(
                    lambda: (
                        urllib.request.urlopen(
                            f"http://127.0.0.1:{metrics_port}/metrics", timeout=10
                        )
                        .read()
                        .decode()
                    )
                )
                hub.stop()
                await asyncio.wait_for(run, 60)
            assert clips >= 1, "no clip recorded"
        events = await _read(phone, "events")
        control = await _read(phone, "control")
    finally:
        if phone is not None:
            await phone.relay.close()
            for ident, _gid, _mailbox in phone.idents.values():
                ident.close()
        relay.kill9()
    notes = [m for m in events if isinstance(m, Notification)]
    fragments = [m for m in events if isinstance(m, ClipFragment)]
    assert notes and all(len(n.event_id) == 32 for n in notes)  # one id form everywhere
    assert fragments and fragments[0].is_init and fragments[-1].final
    assert {f.event_id for f in fragments} <= {n.event_id for n in notes}
    beats = [m for m in control if isinstance(m, Heartbeat)]
    assert beats, "no heartbeat reached the member"
    facts = beats[-1].cameras["porch"]
    assert facts["connected"] is True and facts["last_frame"] > 0 and facts["fps"] > 0
    assert 'privastead_hub_camera_connected{camera="porch"} 1' in text
    assert "privastead_hub_sent_fragments_total" in text
    assert "privastead_hub_delivery_batches_total" in text
    assert "privastead_hub_delivery_calls_failed_total 0" in text
