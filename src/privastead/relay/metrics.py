"""Prometheus text exposition for the relay, without a client library.

Labels never carry mailbox ids, accounts or addresses: an operator learns load, not who.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

Labels = tuple[tuple[str, str], ...]


class Metrics:
    """Counters and gauges keyed by (name, labels); ``render()`` gives the text format."""

    def __init__(self) -> None:
        self._help: dict[str, tuple[str, str]] = {}
        self._values: dict[str, dict[Labels, float]] = defaultdict(dict)
        self._gauges: dict[str, Callable[[], float]] = {}

    def describe(self, name: str, kind: str, text: str) -> None:
        self._help[name] = (kind, text)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        series = self._values[name]
        series[key] = series.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        self._values[name][tuple(sorted(labels.items()))] = value

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time."""
        self._gauges[name] = read

    def value(self, name: str, **labels: str) -> float:
        return self._values.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        names = sorted(set(self._values) | set(self._gauges))
        for name in names:
            kind, text = self._help.get(name, ("untyped", ""))
            if text:
                lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            if name in self._gauges:
                lines.append(f"{name} {_num(self._gauges[name]())}")
                continue
            for labels, value in sorted(self._values[name].items()):
                if labels:
                    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                    lines.append(f"{name}{{{inner}}} {_num(value)}")
                else:
                    lines.append(f"{name} {_num(value)}")
        return "\n".join(lines) + "\n"


def standard() -> Metrics:
    m = Metrics()
    m.describe("relay_requests_total", "counter", "HTTP requests by route and status")
    m.describe("relay_received_bytes_total", "counter", "message body bytes accepted")
    m.describe("relay_sent_bytes_total", "counter", "message body bytes served")
    m.describe("relay_presigned_total", "counter", "blob downloads handed to the object store")
    m.describe(
        "relay_sendfile_bytes_total", "counter", "served bytes the kernel sent from the file"
    )
    m.describe("relay_messages_stored_total", "counter", "messages stored (not duplicates)")
    m.describe("relay_messages_duplicate_total", "counter", "uploads answered as duplicates")
    m.describe("relay_messages_evicted_total", "counter", "messages evicted by account quota")
    m.describe("relay_messages_expired_total", "counter", "messages removed by TTL")
    m.describe("relay_push_total", "counter", "wake-up pushes by channel and outcome")
    m.describe("relay_live_frames_dropped_total", "counter", "live frames dropped for slow viewers")
    m.describe("relay_ws_events_dropped_total", "counter", "subscription events replaced by resync")
    m.describe("relay_auth_failures_total", "counter", "rejected tokens")
    m.describe("relay_front_uploads_total", "counter", "uploads the native front stored itself")
    m.describe("relay_front_downloads_total", "counter", "downloads the native front answered")
    m.describe(
        "relay_front_backend_connections_total",
        "counter",
        "connections the native front opened to forward requests to the relay",
    )
    m.describe("relay_mailbox_messages", "gauge", "messages stored, all mailboxes")
    m.describe("relay_mailbox_bytes", "gauge", "bytes stored, all mailboxes")
    m.describe("relay_mailbox_depth_max", "gauge", "messages in the deepest mailbox")
    m.describe("relay_websockets", "gauge", "open WebSockets (subscriptions and live)")
    m.describe("relay_live_queued_bytes", "gauge", "live frame bytes waiting for viewers")
    m.describe("relay_live_sessions", "gauge", "live sessions with a publisher or viewers")
    return m


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


__all__ = ["Metrics", "standard"]
