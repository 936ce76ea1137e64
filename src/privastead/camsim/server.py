"""An asyncio RTSP server: RTP over TCP interleaved or over UDP, paced at the frame rate.

It speaks the subset of RTSP 1.0 (RFC 2326) that FFmpeg, GStreamer and cameras use: OPTIONS,
DESCRIBE (SDP with the parameter sets), SETUP (``RTP/AVP/TCP`` interleaved, or ``RTP/AVP``
unicast UDP to the client's ports; with ``udp=False`` UDP gets 461 like a camera behind NAT),
PLAY, GET_PARAMETER/SET_PARAMETER (keep-alive) and TEARDOWN, with optional digest or Basic
authentication. Every client gets its own session that starts at the first keyframe of the loop
and runs with continuous RTP timestamps across loops, so runs are deterministic for a given
scene and seed. ``udp_loss`` drops that share of the UDP packets (a lossy network, for tests of
the hub's transport fallback), drawn from the seeded per-connection random source.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import random
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from privastead.camsim.audio import EncodedAudio
from privastead.camsim.auth import Authenticator
from privastead.camsim.encoder import EncodedStream
from privastead.camsim.rtp import (
    CLOCK_RATE,
    DEFAULT_MAX_PAYLOAD,
    PAYLOAD_TYPE,
    Codec,
    Payloads,
    audio_payload,
    interleaved,
    payload_access_unit,
    rtp_packets,
)
from privastead.camsim.stamp import is_vcl_payload, sei_nal

log = logging.getLogger(__name__)

_METHODS = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    461: "Unsupported Transport",
}
_MAX_HEADER = 16 * 1024
_CLIENT_PORTS = re.compile(r"client_port=(\d+)(?:-(\d+))?")


@dataclass
class Mount:
    """One served path: the stream and its access units payloaded once for every client."""

    path: str
    stream: EncodedStream
    max_payload: int = DEFAULT_MAX_PAYLOAD
    audio: EncodedAudio | None = None
    payloads: list[Payloads] = field(init=False)

    def __post_init__(self) -> None:
        self.payloads = [
            payload_access_unit(self.stream.codec, u.data, self.max_payload)
            for u in self.stream.units
        ]

    def sdp(self, host: str) -> str:
        s = self.stream
        sets = [base64.b64encode(p).decode() for p in s.parameter_sets]
        if s.codec == "h264":
            sps = s.parameter_sets[0]
            fmtp = (
                f"packetization-mode=1;profile-level-id={sps[1:4].hex()};"
                f"sprop-parameter-sets={','.join(sets)}"
            )
            rtpmap = "H264"
        else:
            fmtp = f"sprop-vps={sets[0]};sprop-sps={sets[1]};sprop-pps={sets[2]}"
            rtpmap = "H265"
        lines = [
            "v=0",
            f"o=- {secrets.randbits(31)} 1 IN IP4 {host}",
            "s=privastead-camsim",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "a=control:*",
            "a=range:npt=0-",
            f"m=video 0 RTP/AVP {PAYLOAD_TYPE}",
            f"a=rtpmap:{PAYLOAD_TYPE} {rtpmap}/{CLOCK_RATE}",
            f"a=fmtp:{PAYLOAD_TYPE} {fmtp}",
            f"a=framerate:{float(s.fps):g}",
            f"a=x-dimensions:{s.width},{s.height}",
            "a=control:trackID=0",
        ]
        if self.audio is not None:
            lines += self.audio.sdp("trackID=1")
        return "\r\n".join(lines) + "\r\n"


class _Udp(asyncio.DatagramProtocol):
    """A server port of one UDP track; what the client sends to it (RTCP receiver reports,
    FFmpeg's NAT hole-punching packets) is read and dropped."""


@dataclass
class _Route:
    """Where one track's packets go: an interleaved channel, or a UDP port pair."""

    channel: int
    udp: tuple[asyncio.DatagramTransport, asyncio.DatagramTransport] | None = None
    address: tuple[str, int] | None = None  # the client's RTP port

    def close(self) -> None:
        if self.udp is not None:
            for transport in self.udp:
                transport.close()


@dataclass
class _Track:
    seq: int
    rtptime: int
    ssrc: int
    route: _Route


@dataclass
class _Request:
    method: str
    url: str
    headers: dict[str, str]

    @property
    def cseq(self) -> str:
        return self.headers.get("cseq", "0")


class RtspServer:
    """Serves ``mounts`` (path -> stream) on ``host:port`` until closed."""

    def __init__(
        self,
        mounts: dict[str, EncodedStream],
        *,
        host: str = "127.0.0.1",
        port: int = 8554,
        auth: Authenticator | None = None,
        corrupt: float = 0.0,
        seed: int = 0,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        audio: EncodedAudio | None = None,
        stamp: bool = False,
        udp: bool = True,
        udp_loss: float = 0.0,
    ) -> None:
        if not 0.0 <= udp_loss <= 1.0:
            raise ValueError("udp_loss is a probability between 0 and 1")
        self.stamp = stamp  # an SEI send-time stamp in every access unit (camsim.stamp)
        self.udp, self.udp_loss = udp, udp_loss
        self.plays: list[Literal["tcp", "udp"]] = []  # the transport of every session played
        self.mounts = {
            "/" + p.strip("/"): Mount("/" + p.strip("/"), s, max_payload, audio)
            for p, s in mounts.items()
        }
        self.host, self.port, self.auth = host, port, auth
        self.corrupt, self.seed = corrupt, seed
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._open: set[_Connection] = set()
        self._connections = itertools.count()

    def urls(self) -> list[str]:
        return [f"rtsp://{self.host}:{self.port}{path}" for path in self.mounts]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        # Close the sockets and let the handlers return on their own: cancelling a handler task
        # makes asyncio's stream protocol log the CancelledError as an error.
        for conn in list(self._open):
            await conn.stop_streaming()
            conn.writer.close()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=2.0)
            for task in pending:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = _Connection(self, reader, writer, next(self._connections))
        self._open.add(conn)
        try:
            await conn.run()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            await conn.stop_streaming()
            conn.close_routes()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
            self._tasks.discard(task)
            self._open.discard(conn)


class _Connection:
    def __init__(
        self,
        server: RtspServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        number: int,
    ) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.session = secrets.token_hex(8)
        self.mount: Mount | None = None
        self.routes: dict[int, _Route] = {}  # track -> where its packets go
        self.streaming: asyncio.Task[None] | None = None
        # Deterministic per connection (test reproducibility), not security relevant.
        self.random = random.Random(server.seed * 1_000_003 + number)  # noqa: S311

    async def run(self) -> None:
        while True:
            first = await self.reader.readexactly(1)
            if first == b"$":  # interleaved RTCP from the client (receiver reports): skip
                header = await self.reader.readexactly(3)
                await self.reader.readexactly(int.from_bytes(header[1:3], "big"))
                continue
            head = first + await self.reader.readuntil(b"\r\n\r\n")
            if len(head) > _MAX_HEADER:
                return
            request = self._parse(head.decode("latin-1"))
            body_len = int(request.headers.get("content-length", "0") or 0)
            if body_len:
                await self.reader.readexactly(body_len)
            await self._dispatch(request)

    @staticmethod
    def _parse(text: str) -> _Request:
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        method, url = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return _Request(method.upper(), url, headers)

    def _reply(
        self, request: _Request, status: int, headers: dict[str, str] | None = None, body: str = ""
    ) -> None:
        lines = [
            f"RTSP/1.0 {status} {_REASONS.get(status, 'Error')}",
            f"CSeq: {request.cseq}",
            "Server: privastead-camsim",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            lines.append(f"Content-Length: {len(body.encode())}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n" + body).encode())

    def _find_mount(self, url: str) -> Mount | None:
        return self._find_track(url)[0]

    def _find_track(self, url: str) -> tuple[Mount | None, int]:
        path = urlsplit(url).path.rstrip("/") or "/"
        head, _, tail = path.rpartition("/")
        track = 0
        if tail.startswith("trackID="):
            path, track = head or "/", int(tail[len("trackID=") :] or 0)
        return self.server.mounts.get(path), track

    async def _dispatch(self, request: _Request) -> None:
        method = request.method
        auth = self.server.auth
        if (
            method != "OPTIONS"
            and auth
            and not auth.check(method, request.headers.get("authorization"))
        ):
            self._reply(request, 401, {"WWW-Authenticate": auth.challenge()})
            return
        if method == "OPTIONS":
            self._reply(request, 200, {"Public": _METHODS})
        elif method == "DESCRIBE":
            mount = self._find_mount(request.url)
            if mount is None:
                self._reply(request, 404)
                return
            base = request.url.rstrip("/") + "/"
            self._reply(
                request,
                200,
                {"Content-Type": "application/sdp", "Content-Base": base},
                mount.sdp(self.server.host),
            )
        elif method == "SETUP":
            await self._setup(request)
        elif method == "PLAY":
            self._play(request)
        elif method in ("GET_PARAMETER", "SET_PARAMETER"):
            self._reply(request, 200, {"Session": self.session})
        elif method in ("TEARDOWN", "PAUSE"):
            await self.stop_streaming()
            self._reply(request, 200, {"Session": self.session})
        else:
            self._reply(request, 405, {"Allow": _METHODS})

    async def _setup(self, request: _Request) -> None:
        mount, track = self._find_track(request.url)
        if mount is None or track not in ((0, 1) if mount.audio else (0,)):
            self._reply(request, 404)
            return
        transport = request.headers.get("transport", "")
        spec = transport.upper()
        if "RTP/AVP/TCP" in spec:
            channel = 2 * track
            for part in transport.split(";"):
                if part.strip().startswith("interleaved="):
                    channel = int(part.split("=", 1)[1].split("-")[0])
            route = _Route(channel)
            answer = f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1}"
        else:
            ports = _CLIENT_PORTS.search(transport)
            if not self.server.udp or "RTP/AVP" not in spec or ports is None:
                self._reply(request, 461)  # like a camera that only streams over TCP
                return
            route = await self._udp_route(int(ports.group(1)))
            assert route.udp is not None
            rtp, rtcp = route.udp
            server_ports = f"{rtp.get_extra_info('sockname')[1]}-"
            server_ports += f"{rtcp.get_extra_info('sockname')[1]}"
            answer = f"RTP/AVP;unicast;client_port={ports.group(1)}-{ports.group(2) or ''}"
            answer = answer.rstrip("-") + f";server_port={server_ports}"
        old = self.routes.pop(track, None)
        if old is not None:
            old.close()
        self.routes[track] = route
        self.mount = mount
        self._reply(request, 200, {"Transport": answer, "Session": f"{self.session};timeout=60"})

    async def _udp_route(self, client_port: int) -> _Route:
        """A server port pair (RTP, RTCP) sending to the client's RTP port at its address."""
        loop = asyncio.get_running_loop()
        peer = self.writer.get_extra_info("peername")[0]
        local = self.writer.get_extra_info("sockname")[0]
        rtp, _ = await loop.create_datagram_endpoint(_Udp, local_addr=(local, 0))
        rtcp, _ = await loop.create_datagram_endpoint(_Udp, local_addr=(local, 0))
        return _Route(-1, (rtp, rtcp), (peer, client_port))

    def _play(self, request: _Request) -> None:
        if self.mount is None:
            self._reply(request, 455)
            return
        if self.streaming is not None:
            self._reply(request, 200, {"Session": self.session})
            return
        tracks = {
            t: _Track(
                self.random.randrange(1 << 16),
                self.random.randrange(1 << 32),
                self.random.randrange(1 << 32),
                route,
            )
            for t, route in sorted(self.routes.items())
        }
        udp = any(route.udp is not None for route in self.routes.values())
        self.server.plays.append("udp" if udp else "tcp")
        base = request.url.rstrip("/")
        info = ",".join(
            f"url={base}/trackID={t};seq={k.seq};rtptime={k.rtptime}" for t, k in tracks.items()
        )
        self._reply(
            request, 200, {"Session": self.session, "Range": "npt=0.000-", "RTP-Info": info}
        )
        self.streaming = asyncio.create_task(self._stream(self.mount, tracks))

    async def stop_streaming(self) -> None:
        task, self.streaming = self.streaming, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task

    def close_routes(self) -> None:
        for route in self.routes.values():
            route.close()
        self.routes.clear()

    def _send(self, track: _Track, packets: list[bytes], out: list[bytes]) -> None:
        """Interleaved packets join ``out`` (one socket write per frame); UDP ones leave now,
        less the share a lossy network would drop."""
        route = track.route
        if route.udp is None:
            out.extend(interleaved(route.channel, p) for p in packets)
            return
        loss = self.server.udp_loss
        for packet in packets:
            if loss and self.random.random() < loss:
                continue
            route.udp[0].sendto(packet, route.address)

    async def _stream(self, mount: Mount, tracks: dict[int, _Track]) -> None:
        """Send access unit n at start + n / fps with timestamp rtptime + pts(n) * 90k / fps,
        and with it every audio frame that starts before the next video frame."""
        loop = asyncio.get_running_loop()
        stream = mount.stream
        fps = float(stream.fps)
        count = len(stream.units)
        ticks = CLOCK_RATE / fps
        video, audio = tracks.get(0), tracks.get(1)
        sent_audio = 0
        start = loop.time()
        for n in itertools.count():
            lap, index = divmod(n, count)
            unit = mount.payloads[index]
            if self.server.corrupt and self.random.random() < self.server.corrupt:
                unit = self._corrupt(unit)
            delay = start + n / fps - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.server.stamp:
                unit = _stamped(stream.codec, unit, time.time())
            out: list[bytes] = []
            if video is not None:
                timestamp = video.rtptime + round((lap * count + stream.units[index].pts) * ticks)
                packets = rtp_packets(unit, seq=video.seq, timestamp=timestamp, ssrc=video.ssrc)
                self._send(video, list(packets), out)
                video.seq += len(unit.payloads)
            if audio is not None and mount.audio is not None:
                a = mount.audio
                until = (n + 1) / fps * a.sample_rate
                while sent_audio * a.frame_samples < until:
                    frame = a.frames[sent_audio % len(a.frames)]
                    payload = audio_payload(a.codec, frame)
                    packets = rtp_packets(
                        Payloads((payload,), len(payload)),
                        seq=audio.seq,
                        ssrc=audio.ssrc,
                        timestamp=audio.rtptime + sent_audio * a.frame_samples,
                        payload_type=a.payload_type,
                    )
                    self._send(audio, list(packets), out)
                    audio.seq += 1
                    sent_audio += 1
            if out:
                self.writer.write(b"".join(out))
            await self.writer.drain()

    def _corrupt(self, unit: Payloads) -> Payloads:
        """Flip bytes inside one payload (never the NAL/FU headers), like a lossy link would."""
        payloads = list(unit.payloads)
        i = self.random.randrange(len(payloads))
        data = bytearray(payloads[i])
        for _ in range(8):
            if len(data) > 4:
                data[self.random.randrange(3, len(data))] ^= 0xFF
        payloads[i] = bytes(data)
        return Payloads(tuple(payloads), unit.size)


def _stamped(codec: Codec, unit: Payloads, now: float) -> Payloads:
    """``unit`` with a send-time SEI in front of its first slice (after the parameter sets,
    where H.264 7.4.1.2.3 and H.265 7.4.2.4.4 want SEI messages)."""
    first_slice = next(
        (i for i, p in enumerate(unit.payloads) if is_vcl_payload(codec, p)), len(unit.payloads)
    )
    sei = sei_nal(codec, now)
    payloads = (*unit.payloads[:first_slice], sei, *unit.payloads[first_slice:])
    return Payloads(payloads, unit.size + len(sei))


__all__ = ["Mount", "RtspServer"]
