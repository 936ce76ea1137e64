"""An ONVIF camera's device and media services: who it is, its profiles, their RTSP URIs.

The calls ``privastead-hub discover`` needs (ONVIF Profile S, media service ver10):
``GetSystemDateAndTime`` (unauthenticated: the camera's clock, for the UsernameToken),
``GetCapabilities`` (where the media service is), ``GetDeviceInformation``, ``GetProfiles``
and ``GetStreamUri``. Requests carry a WS-Security UsernameToken; a camera that answers HTTP
401 with a Digest challenge instead gets the same request with HTTP Digest authentication.

Every URL a camera reports (media service, stream URIs) is pinned to the address that
answered the discovery probe, and user information in a stream URI is dropped: credentials
live in the hub's secret files, never in a URL of ``hub.toml``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from privastead.media.onvif.discovery import Device
from privastead.media.onvif.soap import (
    MAX_MESSAGE,
    OnvifAuthError,
    OnvifError,
    children,
    envelope,
    fault,
    find,
    is_auth_fault,
    local,
    parse,
    text,
    username_token,
)

DEVICE_NS = "http://www.onvif.org/ver10/device/wsdl"
MEDIA_NS = "http://www.onvif.org/ver10/media/wsdl"
SCHEMA_NS = "http://www.onvif.org/ver10/schema"
VIDEO_CODECS = {"H264": "h264", "H265": "h265", "HEVC": "h265"}


@dataclass(frozen=True)
class Profile:
    """One media profile: a video encoder configuration and, once asked, its RTSP URI."""

    token: str
    name: str
    encoding: str  # as the camera says: H264, H265, JPEG ...
    width: int
    height: int
    fps: float
    bitrate_kbps: int
    audio: str = ""  # the profile's audio encoding (G711, AAC ...), "" without audio
    uri: str = ""

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def summary(self) -> str:
        audio = f", audio {self.audio}" if self.audio else ""
        return f"{self.encoding} {self.width}x{self.height} @ {self.fps:g} fps{audio}"


@dataclass(frozen=True)
class CameraInfo:
    device: Device
    manufacturer: str
    model: str
    serial: str
    profiles: tuple[Profile, ...]


def pin(url: str, host: str, schemes: tuple[str, ...]) -> str:
    """``url`` on ``host`` (port and path kept), without user information."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in schemes or not parts.hostname:
        raise OnvifError(f"the camera reported an unusable address {url!r}")
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))


class OnvifCamera:
    """The ONVIF services of one discovered device."""

    def __init__(
        self,
        device: Device,
        session: aiohttp.ClientSession,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.device, self.session = device, session
        self.user, self.password = user, password
        self.device_url = device.xaddrs[0]
        self._offset = datetime.timedelta(0)  # camera clock minus ours
        self._media_url: str | None = None

    async def _post(self, url: str, message: bytes, digest: bool = False) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
        middlewares: tuple[aiohttp.DigestAuthMiddleware, ...] = ()
        if digest and self.user is not None:
            middlewares = (aiohttp.DigestAuthMiddleware(self.user, self.password or ""),)
        try:
            async with self.session.post(
                url, data=message, headers=headers, middlewares=middlewares, allow_redirects=False
            ) as response:
                body = await response.content.read(MAX_MESSAGE + 1)
                challenge = response.headers.get("WWW-Authenticate", "")
                status = response.status
        except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError) as exc:
            # (on Python 3.10 aiohttp's timeouts are asyncio.TimeoutError, not the builtin)
            raise OnvifError(f"{self.device.address}: ONVIF request failed: {exc}") from None
        if status == 401 and not digest and challenge.lower().startswith("digest"):
            return await self._post(url, message, digest=True)
        return status, body

    async def call(self, url: str, body: str, namespaces: str, *, auth: bool = True) -> ET.Element:
        """POST one request; the answer's Body (``OnvifError``/``OnvifAuthError`` if refused)."""
        header = ""
        if auth and self.user is not None:
            now = datetime.datetime.now(datetime.timezone.utc) + self._offset
            header = username_token(self.user, self.password or "", now)
        status, data = await self._post(url, envelope(body, header, namespaces))
        if status in {401, 403}:
            raise OnvifAuthError(f"{self.device.address}: the camera refused the login ({status})")
        try:
            root = parse(data)
        except OnvifError as exc:
            raise OnvifError(f"{self.device.address}: HTTP {status}: {exc}") from None
        reason = fault(root)
        if reason is not None:
            kind = OnvifAuthError if is_auth_fault(reason) else OnvifError
            raise kind(f"{self.device.address}: {reason}")
        answer = find(root, "Body")
        if answer is None or status >= 300:
            raise OnvifError(f"{self.device.address}: HTTP {status} without a SOAP body")
        return answer

    async def sync_clock(self) -> None:
        """Read the camera's UTC time, so tokens are made on its clock."""
        body = await self.call(
            self.device_url,
            "<tds:GetSystemDateAndTime/>",
            f'xmlns:tds="{DEVICE_NS}"',
            auth=False,
        )
        utc = find(body, "UTCDateTime")
        try:
            camera = datetime.datetime(
                int(text(utc, "Date", "Year")),
                int(text(utc, "Date", "Month")),
                int(text(utc, "Date", "Day")),
                int(text(utc, "Time", "Hour")),
                int(text(utc, "Time", "Minute")),
                int(text(utc, "Time", "Second")),
                tzinfo=datetime.timezone.utc,
            )
        except ValueError:
            return  # no usable clock: use ours
        self._offset = camera - datetime.datetime.now(datetime.timezone.utc)

    async def information(self) -> tuple[str, str, str]:
        """(manufacturer, model, serial number); empty strings where the camera is silent."""
        try:
            body = await self.call(
                self.device_url, "<tds:GetDeviceInformation/>", f'xmlns:tds="{DEVICE_NS}"'
            )
        except OnvifAuthError:
            raise
        except OnvifError:
            return "", "", ""
        return text(body, "Manufacturer"), text(body, "Model"), text(body, "SerialNumber")

    async def media_url(self) -> str:
        if self._media_url is None:
            body = await self.call(
                self.device_url,
                "<tds:GetCapabilities><tds:Category>Media</tds:Category></tds:GetCapabilities>",
                f'xmlns:tds="{DEVICE_NS}"',
            )
            xaddr = text(body, "Media", "XAddr")
            if not xaddr:
                raise OnvifError(f"{self.device.address}: the camera has no media service")
            self._media_url = pin(xaddr, self.device.address, ("http", "https"))
        return self._media_url

    async def profiles(self) -> list[Profile]:
        body = await self.call(
            await self.media_url(), "<trt:GetProfiles/>", f'xmlns:trt="{MEDIA_NS}"'
        )
        found = []
        for node in body.iter():
            if local(node.tag) != "Profiles":
                continue
            video = next(children(node, "VideoEncoderConfiguration"), None)
            if video is None:
                continue
            audio = next(children(node, "AudioEncoderConfiguration"), None)
            try:
                found.append(
                    Profile(
                        node.get("token", ""),
                        text(node, "Name") or node.get("token", ""),
                        text(video, "Encoding").upper(),
                        int(text(video, "Resolution", "Width") or 0),
                        int(text(video, "Resolution", "Height") or 0),
                        float(text(video, "RateControl", "FrameRateLimit") or 0),
                        int(text(video, "RateControl", "BitrateLimit") or 0),
                        text(audio, "Encoding").upper() if audio is not None else "",
                    )
                )
            except ValueError as exc:
                raise OnvifError(f"{self.device.address}: unreadable profile: {exc}") from None
        return found

    async def stream_uri(self, profile: Profile) -> str:
        body = await self.call(
            await self.media_url(),
            "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream>"
            "<tt:Transport><tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup>"
            f"<trt:ProfileToken>{_xml(profile.token)}</trt:ProfileToken></trt:GetStreamUri>",
            f'xmlns:trt="{MEDIA_NS}" xmlns:tt="{SCHEMA_NS}"',
        )
        uri = text(body, "MediaUri", "Uri")
        if not uri:
            raise OnvifError(f"{self.device.address}: no stream URI for profile {profile.token}")
        return pin(uri, self.device.address, ("rtsp", "rtsps"))


def _xml(value: str) -> str:
    from xml.sax.saxutils import escape

    return escape(value)


def pick_streams(profiles: list[Profile]) -> tuple[Profile | None, Profile | None]:
    """The main stream to record (the largest H.264/H.265 picture, then the highest frame
    rate) and a substream for detection (the smallest smaller one at least 320 pixels wide),
    or None."""
    video = [p for p in profiles if p.encoding in VIDEO_CODECS and p.uri]
    if not video:
        return None, None
    main = max(video, key=lambda p: (p.pixels, p.fps, -len(p.token)))
    smaller = [p for p in video if p.pixels < main.pixels and p.width >= 320]
    sub = min(smaller, key=lambda p: (p.pixels, -p.fps)) if smaller else None
    return main, sub


async def describe(
    device: Device,
    session: aiohttp.ClientSession,
    user: str | None = None,
    password: str | None = None,
) -> CameraInfo:
    """Ask one discovered device for its identity, profiles and their stream URIs."""
    camera = OnvifCamera(device, session, user, password)
    with contextlib.suppress(OnvifAuthError):  # some want a login even for it: use our clock
        await camera.sync_clock()
    manufacturer, model, serial = await camera.information()
    profiles = [
        replace(p, uri=await camera.stream_uri(p)) if p.encoding in VIDEO_CODECS else p
        for p in await camera.profiles()
    ]
    return CameraInfo(device, manufacturer, model, serial, tuple(profiles))


__all__ = [
    "CameraInfo",
    "OnvifCamera",
    "Profile",
    "describe",
    "pick_streams",
    "pin",
]
