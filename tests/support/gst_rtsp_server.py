"""A third-party RTSP server for tests: GStreamer's, serving an Annex-B H.264 file in a loop.

Run with Debian's interpreter (it has python3-gi):
    /usr/bin/python3 gst_rtsp_server.py FILE.h264 PORT /path FPS
Prints the URL once it listens. appsrc gets access units with explicit timestamps, which paces
the stream (multifilesrc would not: its buffers carry no pts).
"""

import re
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


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


def main():
    path, port, mount, fps = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    Gst.init(None)
    with open(path, "rb") as f:
        units = access_units(f.read())
    duration = int(Gst.SECOND / fps)

    class Factory(GstRtspServer.RTSPMediaFactory):
        def do_create_element(self, url):
            return Gst.parse_launch(
                "appsrc name=src is-live=true format=time "
                "caps=video/x-h264,stream-format=byte-stream,alignment=au "
                "! rtph264pay name=pay0 pt=96 config-interval=-1"
            )

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
    server.set_service(port)
    factory = Factory()
    factory.set_shared(True)
    server.get_mount_points().add_factory(mount, factory)
    server.attach(None)
    print(f"rtsp://127.0.0.1:{port}{mount}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
