"""A third-party RTSP server for tests: GStreamer's, serving an Annex-B H.264 file in a loop.

Run with Debian's interpreter (it has python3-gi):
    /usr/bin/python3 gst_rtsp_server.py FILE.h264 PORT /path FPS
        [--auth basic|digest --user U --password-file F] [--audio pcmu|pcma|opus|aac]
Prints the URL once it listens. appsrc gets access units with explicit timestamps, which paces
the stream (multifilesrc would not: its buffers carry no pts). Clients choose RTP over TCP or
UDP as they like (GStreamer offers both). ``--audio`` adds a live sine tone encoded by
GStreamer's own encoders and payloaders, an implementation independent of camsim's.
"""

import argparse
import re

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

AUDIO = {
    "pcmu": "audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0",
    "pcma": "audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8",
    "opus": "audio/x-raw,rate=48000,channels=1 ! opusenc ! rtpopuspay name=pay1 pt=111",
    "aac": "audio/x-raw,rate=16000,channels=1 ! voaacenc ! rtpmp4gpay name=pay1 pt=97",
}


def access_units(data):
    """Split Annex-B into access units: a new unit starts at each slice with first_mb == 0
    approximated by: a new unit at every IDR/non-IDR slice that follows a slice, or SPS/AUD."""
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", data)]
    units, current, seen_slice = [], b"", False
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        nal = data[start:end]
        kind = nal[3] & 0x1F
        if (kind in (1, 5) and seen_slice) or (kind in (7, 9) and seen_slice):
            units.append(current)
            current, seen_slice = b"", False
        current += b"\x00" + nal
        seen_slice = seen_slice or kind in (1, 5)
    if current:
        units.append(current)
    return units


def make_auth(scheme, user, password, role="camera-user"):
    """An RTSPAuth that lets ``user`` in with ``scheme``, and the permissions of its role."""
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
    auth = GstRtspServer.RTSPAuth()
    if scheme == "basic":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(user, password, token)
    permissions = GstRtspServer.RTSPPermissions()
    rights = Gst.Structure.new_empty(role)
    rights.set_value(GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
    rights.set_value(GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
    permissions.add_role_from_structure(rights)
    return auth, permissions


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("port")
    p.add_argument("mount")
    p.add_argument("fps", type=float)
    p.add_argument("--auth", choices=["basic", "digest"])
    p.add_argument("--user")
    p.add_argument("--password-file")
    p.add_argument("--audio", choices=sorted(AUDIO))
    args = p.parse_args()
    Gst.init(None)
    with open(args.file, "rb") as f:
        units = access_units(f.read())
    duration = int(Gst.SECOND / args.fps)
    launch = (
        "( appsrc name=src is-live=true format=time "
        "caps=video/x-h264,stream-format=byte-stream,alignment=au "
        "! rtph264pay name=pay0 pt=96 config-interval=-1"
    )
    if args.audio:
        launch += (
            " audiotestsrc is-live=true wave=sine freq=440 volume=0.2 ! audioconvert "
            "! audioresample ! " + AUDIO[args.audio]
        )
    launch += " )"

    class Factory(GstRtspServer.RTSPMediaFactory):
        def do_create_element(self, url):
            return Gst.parse_launch(launch)

        def do_configure(self, media):
            src = media.get_element().get_child_by_name("src")
            state = {"n": 0}

            def need_data(appsrc, _length):
                n = state["n"]
                buf = Gst.Buffer.new_wrapped(units[n % len(units)])
                buf.pts = buf.dts = n * duration
                buf.duration = duration
                state["n"] = n + 1
                appsrc.emit("push-buffer", buf)

            src.connect("need-data", need_data)

    server = GstRtspServer.RTSPServer()
    server.set_service(args.port)
    factory = Factory()
    factory.set_shared(True)
    if args.auth:
        with open(args.password_file, encoding="utf-8") as f:
            password = f.read().strip()
        auth, permissions = make_auth(args.auth, args.user, password)
        server.set_auth(auth)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(args.mount, factory)
    server.attach(None)
    print(f"rtsp://127.0.0.1:{args.port}{args.mount}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
