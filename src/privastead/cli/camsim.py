"""`privastead-camsim`: an RTSP camera simulator serving generated scenes or a looped file.

    privastead-camsim --port 8554 --scene demo --size 1920x1080 --fps 15 --codec h264 \\
        [--sub 640x360] [--file clip.mp4] [--user U --password-file F [--auth basic]]
        [--audio aac|pcmu|pcma|opus] [--no-udp | --udp-loss P] [--seed N] [--stamp]
        [--onvif-port N [--onvif-discovery HOST:PORT | --onvif-multicast]]

serves ``rtsp://HOST:PORT/main`` (and ``/sub`` with ``--sub``) over RTSP (RTP over TCP or UDP)
until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from privastead.errors import MediaError

EPILOG = """\
Scenes are rendered and encoded once, then cached (key = scene parameters) in
~/.cache/privastead/camsim (or --cache-dir), and looped with continuous timestamps.
Every client starts at the first keyframe of the loop.

RTP goes over TCP (interleaved) or UDP, as the client asks in SETUP; --no-udp answers UDP
with 461 like a camera behind NAT, --udp-loss drops a share of the UDP packets.

--onvif-port makes it an ONVIF device too (WS-Discovery answers, GetProfiles, GetStreamUri;
the same --user/--password-file as WS-Security login), for `privastead-hub discover`.

examples:
  privastead-camsim --scene demo --size 1920x1080 --fps 15 --sub 640x360
  privastead-camsim --sub 640x360 --onvif-port 8080 --onvif-discovery 127.0.0.1:3702
  privastead-camsim --file garden.mp4 --user admin --password-file cam.pass --auth basic
  privastead-camsim --audio pcmu --udp-loss 0.05
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="privastead-camsim",
        description="RTSP camera simulator (H.264/H.265, AAC/G.711/Opus, RTP over TCP or UDP).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8554, help="TCP port (default 8554; 0 = any free)")
    p.add_argument("--scene", default="demo", help="generated scene name (default demo)")
    p.add_argument("--size", default="1280x720", help="main stream WxH (default 1280x720)")
    p.add_argument("--fps", type=float, default=15.0, help="frame rate (default 15)")
    p.add_argument("--codec", choices=["h264", "h265"], default="h264")
    p.add_argument("--sub", metavar="WxH", help="also serve /sub at this size (same scene)")
    p.add_argument("--duration", type=float, help="loop length in seconds (default: the scene's)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (deterministic output)")
    p.add_argument("--gop", type=float, default=1.0, help="keyframe interval, seconds (default 1)")
    p.add_argument("--bitrate", type=int, help="bits/s (default: camera-like for the size)")
    p.add_argument("--file", type=Path, help="loop this H.264/H.265 video file instead of a scene")
    p.add_argument(
        "--audio",
        nargs="?",
        const="aac",
        choices=["aac", "pcmu", "pcma", "opus"],
        help="add a microphone track (a tone) to every path: aac (the default), pcmu or pcma "
        "(G.711 mu-law/A-law, 8 kHz) or opus",
    )
    p.add_argument(
        "--stamp",
        action="store_true",
        help="put the send time (Unix microseconds) in an SEI message of every frame "
        "(for latency benchmarks; see privastead.camsim.stamp)",
    )
    p.add_argument("--user", help="require RTSP authentication for this user")
    p.add_argument("--password-file", type=Path, help="file holding the password for --user")
    p.add_argument(
        "--auth",
        choices=["digest", "basic"],
        default="digest",
        help="authentication scheme with --user (default digest)",
    )
    udp = p.add_mutually_exclusive_group()
    udp.add_argument(
        "--no-udp", action="store_true", help="refuse RTP over UDP (461), TCP interleaved only"
    )
    udp.add_argument(
        "--udp-loss",
        type=float,
        default=0.0,
        metavar="P",
        help="drop each RTP packet sent over UDP with probability P (tests)",
    )
    p.add_argument(
        "--corrupt",
        type=float,
        default=0.0,
        metavar="P",
        help="corrupt each access unit with probability P (tests)",
    )
    p.add_argument(
        "--onvif-port",
        type=int,
        metavar="N",
        help="also be an ONVIF device: device and media services on this HTTP port (0 = any)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--onvif-discovery",
        metavar="HOST:PORT",
        help="answer WS-Discovery probes sent to this UDP address (default: --host, any port)",
    )
    where.add_argument(
        "--onvif-multicast",
        action="store_true",
        help="answer WS-Discovery probes on the multicast group 239.255.255.250:3702",
    )
    p.add_argument("--cache-dir", type=Path, help="where encoded scenes are cached")
    p.add_argument("--no-cache", action="store_true", help="encode the scene afresh, store nothing")
    return p


def _progress(label: str):  # type: ignore[no-untyped-def]
    def report(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            print(
                f"privastead-camsim: encoding {label}: {done}/{total} frames",
                file=sys.stderr,
                flush=True,
            )

    return report


async def _serve(args: argparse.Namespace) -> int:
    from privastead.camsim.auth import make_auth
    from privastead.camsim.encoder import EncodedStream
    from privastead.camsim.server import RtspServer
    from privastead.camsim.streams import default_cache_dir, parse_size, scene_stream

    auth = None
    password = None
    if args.user:
        if not args.password_file:
            print("privastead-camsim: --user needs --password-file FILE", file=sys.stderr)
            return 2
        password = args.password_file.read_text().strip()
        auth = make_auth(args.auth, args.user, password)
    mounts: dict[str, EncodedStream] = {}
    if args.file:
        from privastead.camsim.filesource import load_file

        mounts["/main"] = load_file(args.file, args.fps if "--fps" in sys.argv else None)
    else:
        cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
        sizes = [("/main", parse_size(args.size))]
        if args.sub:
            sizes.append(("/sub", parse_size(args.sub)))
        for path, (w, h) in sizes:
            mounts[path] = await asyncio.to_thread(
                scene_stream,
                args.scene,
                width=w,
                height=h,
                fps=args.fps,
                codec=args.codec,
                seed=args.seed,
                duration=args.duration,
                gop_seconds=args.gop,
                bitrate=args.bitrate,
                cache_dir=cache,
                progress=_progress(f"{path} {w}x{h}"),
            )
    audio = None
    if args.audio:
        from privastead.camsim.audio import tone

        audio = tone(codec=args.audio)
    server = RtspServer(
        mounts,
        host=args.host,
        port=args.port,
        auth=auth,
        corrupt=args.corrupt,
        seed=args.seed,
        audio=audio,
        stamp=args.stamp,
        udp=not args.no_udp,
        udp_loss=args.udp_loss,
    )
    await server.start()
    for url, mount in zip(server.urls(), server.mounts.values(), strict=True):
        s = mount.stream
        print(
            f"{url}  {s.codec} {s.width}x{s.height} {float(s.fps):g} fps "
            f"{s.bitrate / 1e6:.2f} Mbit/s, loop {s.frame_count} frames",
            flush=True,
        )
    onvif = None
    if args.onvif_port is not None:
        from privastead.camsim.onvif import OnvifDevice
        from privastead.media.onvif.discovery import parse_target

        discovery = parse_target(args.onvif_discovery, 3702) if args.onvif_discovery else None
        onvif = OnvifDevice(
            server,
            host=args.host,
            http_port=args.onvif_port,
            discovery=discovery,
            multicast=args.onvif_multicast,
            user=args.user,
            password=password,
        )
        await onvif.start()
        host, port = onvif.discovery
        print(f"onvif {onvif.device_url}  WS-Discovery on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    serving = asyncio.create_task(server.serve_forever())
    await stop.wait()
    serving.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    if onvif is not None:
        await onvif.close()
    await server.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_serve(args))
    except (MediaError, ValueError, OSError) as exc:
        print(f"privastead-camsim: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


__all__ = ["build_parser", "main"]


if __name__ == "__main__":
    sys.exit(main())
