"""The hub's data directory: every path the hub keeps, named in one place.

    <root>/                  0700, the hub's user only
        mls/<camera>-<group>.mls   one MLS state file per group (``state.groups``)
        groups.json          group ids, relay mailboxes and state file names
        devices.json         paired devices and their leaves (``state.registry``)
        outbox/              ciphertext waiting for the relay (``delivery.outbox``)
        open-clips/          clips being sent, so a restart can end them (``delivery.clip_journal``)
        rotation.json        when each group last got new keys (``delivery.rotation``)
        hub-cursors.json     how far the hub has read each control mailbox (``control.reader``)
        admin/hub.sock       the running hub's admin socket (``admin.wire``)
        holder.json          who holds the group state's locks now: pid, command (``state.service``)
        pairing/<id>.mls     the pairing group of a device pending the owner's confirmation
        clips/               recorded clips, thumbnails, sidecars (unless ``clips_dir`` is set)
        recordings/          continuous recording: <camera>/ segment files and index.sqlite

The client's ``DataDir`` is the same idea on the other side. Parts take the paths they need from
this object; none of them joins file names onto the root itself.
"""

from __future__ import annotations

from pathlib import Path

ADMIN_DIR = "admin"
ADMIN_SOCKET = "hub.sock"


class HubDataDir:
    def __init__(self, root: Path, clips_dir: Path | None = None) -> None:
        self.root = root
        self._clips_dir = clips_dir

    def __repr__(self) -> str:
        return f"HubDataDir({str(self.root)!r})"

    @property
    def mls(self) -> Path:
        return self.root / "mls"

    def group_state(self, file_name: str) -> Path:
        return self.mls / file_name

    @property
    def groups_manifest(self) -> Path:
        return self.root / "groups.json"

    @property
    def devices(self) -> Path:
        return self.root / "devices.json"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def open_clips(self) -> Path:
        return self.root / "open-clips"

    @property
    def rotation(self) -> Path:
        return self.root / "rotation.json"

    @property
    def cursors(self) -> Path:
        return self.root / "hub-cursors.json"

    @property
    def holder(self) -> Path:
        return self.root / "holder.json"

    @property
    def admin(self) -> Path:
        return self.root / ADMIN_DIR

    @property
    def pairing(self) -> Path:
        """Pairing groups of pending devices (0700): a restarted hub resumes waiting."""
        return self.root / "pairing"

    def pairing_state(self, pending_id: str) -> Path:
        return self.pairing / f"{pending_id}.mls"

    @property
    def admin_socket(self) -> Path:
        return self.admin / ADMIN_SOCKET

    @property
    def clips(self) -> Path:
        return self._clips_dir if self._clips_dir is not None else self.root / "clips"

    @property
    def recordings(self) -> Path:
        return self.root / "recordings"

    @property
    def recordings_index(self) -> Path:
        return self.recordings / "index.sqlite"

    def prepare(self) -> None:
        """Create the root and the MLS directory, owner-only (they hold keys)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.mls.mkdir(mode=0o700, parents=True, exist_ok=True)


def as_data_dir(data: HubDataDir | Path) -> HubDataDir:
    """``data`` itself, or a ``HubDataDir`` rooted at the path (tests and tools pass paths)."""
    return data if isinstance(data, HubDataDir) else HubDataDir(data)


__all__ = ["HubDataDir", "as_data_dir"]
