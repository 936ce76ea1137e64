"""Enough of an ONVIF device for camsim to be found and set up like a real camera.

- WS-Discovery: answers Probes for ``NetworkVideoTransmitter`` (or for any type) with a
  ProbeMatch naming its device service, on a configurable UDP address: a unicast loopback
  port for tests, or the real multicast group 239.255.255.250:3702 (``multicast=True``).
- Device service (``/onvif/device_service``): GetSystemDateAndTime (no login, as ONVIF
  requires), GetCapabilities, GetDeviceInformation.
- Media service (``/onvif/media_service``): GetProfiles (one profile per served path, main
  stream first) and GetStreamUri (its ``rtsp://`` URL).

With a user, every call but the clock needs a valid WS-Security UsernameToken
(PasswordDigest, within 5 minutes of camsim's clock); wrong or missing tokens get the
``ter:NotAuthorized`` fault real cameras send.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
import typing
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from aiohttp import web

from privastead.camsim.server import RtspServer
from privastead.media.onvif.discovery import (
    ADDRESSING,
    DISCOVERY,
    MATCHES_ACTION,
    MULTICAST,
    ONVIF_NETWORK,
)
from privastead.media.onvif.soap import (
    OnvifError,
    check_username_token,
    envelope,
    find,
    local,
    message_id,
    parse,
    text,
)

DEVICE_PATH = "/onvif/device_service"
MEDIA_PATH = "/onvif/media_service"
_NS = (
    'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
    'xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
    'xmlns:tt="http://www.onvif.org/ver10/schema" '
    'xmlns:ter="http://www.onvif.org/ver10/error"'
)


@dataclass
class _Profile:
    token: str
    name: str
    path: str
    encoding: str
    width: int
    height: int
    fps: float
    audio: str


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, device: OnvifDevice) -> None:
        self.device = device
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast("asyncio.DatagramTransport", transport)  # uvloop's too

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            root = parse(data)
        except OnvifError:
            return
        probe = find(root, "Probe")
        types = text(probe, "Types") if probe is not None else ""
        if probe is None or (types and "NetworkVideoTransmitter" not in types):
            return
        relates = text(root, "Header", "MessageID")
        if self.transport is not None:
            self.device.probes += 1
            self.transport.sendto(self.device.probe_match(relates), addr)


class OnvifDevice:
    """The ONVIF face of an ``RtspServer`` (its paths become profiles)."""

    def __init__(
        self,
        rtsp: RtspServer,
        *,
        host: str = "127.0.0.1",
        http_port: int = 0,
        discovery: tuple[str, int] | None = None,
        multicast: bool = False,
        user: str | None = None,
        password: str | None = None,
        name: str = "camsim",
    ) -> None:
        self.rtsp, self.host, self.http_port = rtsp, host, http_port
        self.discovery = discovery if discovery is not None else (host, 0)
        self.multicast = multicast
        self.user, self.password, self.name = user, password, name
        self.endpoint = message_id()
        self.probes = 0  # probes answered
        self.refused = 0  # requests refused for a missing or wrong login
        self._runner: web.AppRunner | None = None
        self._udp: asyncio.DatagramTransport | None = None

    @property
    def device_url(self) -> str:
        return f"http://{self.host}:{self.http_port}{DEVICE_PATH}"

    def profiles(self) -> list[_Profile]:
        out = []
        for i, (path, mount) in enumerate(self.rtsp.mounts.items(), start=1):
            s = mount.stream
            audio = {"pcmu": "G711", "pcma": "G711", "aac": "AAC", "opus": "OPUS"}
            out.append(
                _Profile(
                    f"profile_{i}",
                    path.strip("/") or "main",
                    path,
                    "H264" if s.codec == "h264" else "H265",
                    s.width,
                    s.height,
                    float(s.fps),
                    audio[mount.audio.codec] if mount.audio is not None else "",
                )
            )
        return out

    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post(DEVICE_PATH, self._device)
        app.router.add_post(MEDIA_PATH, self._media)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.http_port)
        await site.start()
        if self.http_port == 0:
            server = site._server
            assert server is not None and server.sockets  # type: ignore[attr-defined]
            self.http_port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        await self._start_discovery()

    async def _start_discovery(self) -> None:
        loop = asyncio.get_running_loop()
        if self.multicast:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("", self.discovery[1] or MULTICAST[1]))
            membership = socket.inet_aton(MULTICAST[0]) + socket.inet_aton(self.host)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            transport, _ = await loop.create_datagram_endpoint(lambda: _Responder(self), sock=sock)
        else:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Responder(self), local_addr=self.discovery
            )
        self._udp = transport
        self.discovery = transport.get_extra_info("sockname")[:2]

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def probe_match(self, relates_to: str) -> bytes:
        scopes = " ".join(
            [
                "onvif://www.onvif.org/type/video_encoder",
                f"onvif://www.onvif.org/name/{self.name}",
                "onvif://www.onvif.org/hardware/privastead-camsim",
                "onvif://www.onvif.org/Profile/Streaming",
            ]
        )
        header = (
            f"<a:Action>{MATCHES_ACTION}</a:Action><a:MessageID>{message_id()}</a:MessageID>"
            f"<a:RelatesTo>{relates_to}</a:RelatesTo>"
            f"<a:To>{ADDRESSING}/role/anonymous</a:To>"
        )
        body = (
            "<d:ProbeMatches><d:ProbeMatch>"
            f"<a:EndpointReference><a:Address>{self.endpoint}</a:Address></a:EndpointReference>"
            "<d:Types>dn:NetworkVideoTransmitter</d:Types>"
            f"<d:Scopes>{scopes}</d:Scopes><d:XAddrs>{self.device_url}</d:XAddrs>"
            "<d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches>"
        )
        return envelope(
            body, header, f'xmlns:a="{ADDRESSING}" xmlns:d="{DISCOVERY}" xmlns:dn="{ONVIF_NETWORK}"'
        )

    # -- services ------------------------------------------------------------------------------
    async def _request(
        self, request: web.Request
    ) -> tuple[str, ET.Element, ET.Element | None] | web.Response:
        """(call name, call element, SOAP header) of a request, or the fault to answer."""
        data = await request.read()
        try:
            root = parse(data)
        except OnvifError as exc:
            return self._fault(400, "Sender", "WellFormed", str(exc))
        body = find(root, "Body")
        call = next(iter(body), None) if body is not None else None
        if call is None:
            return self._fault(400, "Sender", "WellFormed", "empty body")
        return local(call.tag), call, find(root, "Header")

    def _authorized(self, header: ET.Element | None) -> bool:
        if self.user is None:
            return True
        now = datetime.datetime.now(datetime.timezone.utc)
        ok = check_username_token(header, self.user, self.password or "", now, 300.0)
        self.refused += not ok
        return ok

    def _fault(self, status: int, code: str, subcode: str, reason: str) -> web.Response:
        body = (
            f"<s:Fault><s:Code><s:Value>s:{code}</s:Value><s:Subcode><s:Value>ter:{subcode}"
            "</s:Value></s:Subcode></s:Code>"
            f'<s:Reason><s:Text xml:lang="en">{reason}</s:Text></s:Reason></s:Fault>'
        )
        return web.Response(
            status=status, body=envelope(body, "", _NS), content_type="application/soap+xml"
        )

    def _ok(self, body: str) -> web.Response:
        return web.Response(body=envelope(body, "", _NS), content_type="application/soap+xml")

    async def _device(self, request: web.Request) -> web.Response:
        parsed = await self._request(request)
        if isinstance(parsed, web.Response):
            return parsed
        name, _call, header = parsed
        if name == "GetSystemDateAndTime":
            now = datetime.datetime.now(datetime.timezone.utc)
            return self._ok(
                "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
                "<tt:DateTimeType>NTP</tt:DateTimeType><tt:UTCDateTime>"
                f"<tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
                f"<tt:Second>{now.second}</tt:Second></tt:Time>"
                f"<tt:Date><tt:Year>{now.year}</tt:Year><tt:Month>{now.month}</tt:Month>"
                f"<tt:Day>{now.day}</tt:Day></tt:Date>"
                "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
            )
        if not self._authorized(header):
            return self._fault(400, "Sender", "NotAuthorized", "Sender not Authorized")
        if name == "GetCapabilities":
            media = f"http://{self.host}:{self.http_port}{MEDIA_PATH}"
            return self._ok(
                "<tds:GetCapabilitiesResponse><tds:Capabilities>"
                f"<tt:Device><tt:XAddr>{self.device_url}</tt:XAddr></tt:Device>"
                f"<tt:Media><tt:XAddr>{media}</tt:XAddr></tt:Media>"
                "</tds:Capabilities></tds:GetCapabilitiesResponse>"
            )
        if name == "GetDeviceInformation":
            return self._ok(
                "<tds:GetDeviceInformationResponse><tds:Manufacturer>Privastead</tds:Manufacturer>"
                "<tds:Model>camsim</tds:Model><tds:FirmwareVersion>1</tds:FirmwareVersion>"
                f"<tds:SerialNumber>{self.endpoint[-12:]}</tds:SerialNumber>"
                "<tds:HardwareId>camsim</tds:HardwareId></tds:GetDeviceInformationResponse>"
            )
        return self._fault(400, "Receiver", "ActionNotSupported", f"{name} is not supported")

    async def _media(self, request: web.Request) -> web.Response:
        parsed = await self._request(request)
        if isinstance(parsed, web.Response):
            return parsed
        name, call, header = parsed
        if not self._authorized(header):
            return self._fault(400, "Sender", "NotAuthorized", "Sender not Authorized")
        profiles = self.profiles()
        if name == "GetProfiles":
            return self._ok(
                "<trt:GetProfilesResponse>"
                + "".join(_profile_xml(p) for p in profiles)
                + "</trt:GetProfilesResponse>"
            )
        if name == "GetStreamUri":
            token = text(call, "ProfileToken")
            match = next((p for p in profiles if p.token == token), None)
            if match is None:
                return self._fault(400, "Sender", "NoProfile", f"no profile {token}")
            uri = f"rtsp://{self.rtsp.host}:{self.rtsp.port}{match.path}"
            return self._ok(
                f"<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>{uri}</tt:Uri>"
                "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
                "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout>"
                "</trt:MediaUri></trt:GetStreamUriResponse>"
            )
        return self._fault(400, "Receiver", "ActionNotSupported", f"{name} is not supported")


def _profile_xml(p: _Profile) -> str:
    audio = (
        f'<tt:AudioEncoderConfiguration token="audio_{p.token}"><tt:Name>audio</tt:Name>'
        f"<tt:Encoding>{p.audio}</tt:Encoding></tt:AudioEncoderConfiguration>"
        if p.audio
        else ""
    )
    return (
        f'<trt:Profiles token="{p.token}" fixed="true"><tt:Name>{p.name}</tt:Name>'
        f'<tt:VideoEncoderConfiguration token="video_{p.token}"><tt:Name>{p.name}</tt:Name>'
        f"<tt:Encoding>{p.encoding}</tt:Encoding><tt:Resolution><tt:Width>{p.width}</tt:Width>"
        f"<tt:Height>{p.height}</tt:Height></tt:Resolution><tt:Quality>5</tt:Quality>"
        f"<tt:RateControl><tt:FrameRateLimit>{p.fps:g}</tt:FrameRateLimit>"
        "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>4096</tt:BitrateLimit>"
        f"</tt:RateControl></tt:VideoEncoderConfiguration>{audio}</trt:Profiles>"
    )


__all__ = ["DEVICE_PATH", "MEDIA_PATH", "OnvifDevice"]
