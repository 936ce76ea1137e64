"""The client's timing defaults, in one place (threat_model.md states them).

They assume the hub's default heartbeat interval of 60 s (hub.toml, ``[relay]
heartbeat_interval``): the owner learns that the hub went dark (``OFFLINE_AFTER``) or that the
relay withholds messages (a heartbeat reveals them, then ``WITHHELD_AFTER``) within 3 minutes.
"""

from __future__ import annotations

#: Hub offline when the newest heartbeat is this old by the hub's clock: two missed
#: heartbeats plus the clock-skew allowance.
DEFAULT_OFFLINE_AFTER = 150.0
#: How far the hub's clock may be off ours before that is its own state (``hub_clock``).
DEFAULT_SKEW_ALLOWANCE = 30.0
#: Messages a heartbeat says were sent count as withheld once still missing this long after
#: we first asked for them.
DEFAULT_WITHHELD_AFTER = 60.0
#: Seconds between two resend requests for the same group.
DEFAULT_RESEND_EVERY = 15.0
#: Relay unreachable after this long without an answer.
DEFAULT_RELAY_GRACE = 120.0
#: Fresh leaf keys at most once an hour per device, whenever any command runs: a thief holding
#: a copy of this device's state is locked out within the hour after it next runs.
DEFAULT_UPDATE_INTERVAL = 3600.0

__all__ = [
    "DEFAULT_OFFLINE_AFTER",
    "DEFAULT_RELAY_GRACE",
    "DEFAULT_RESEND_EVERY",
    "DEFAULT_SKEW_ALLOWANCE",
    "DEFAULT_UPDATE_INTERVAL",
    "DEFAULT_WITHHELD_AFTER",
]
