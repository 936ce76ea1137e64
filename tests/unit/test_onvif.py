"""ONVIF pieces on their own: WS-Security tokens, untrusted answers, profile choice."""

from __future__ import annotations

import datetime

import pytest

from privastead.media.onvif.client import Profile, pick_streams, pin
from privastead.media.onvif.discovery import parse_matches, parse_target, probe_message
from privastead.media.onvif.soap import (
    OnvifError,
    check_username_token,
    fault,
    find,
    is_auth_fault,
    parse,
    text,
    username_token,
)

NOW = datetime.datetime(2030, 5, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def _header(token: str) -> bytes:
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header>'
        f"{token}</s:Header><s:Body/></s:Envelope>"
    ).encode()


def test_username_token_verifies_only_with_the_right_password_and_time() -> None:
    header = find(parse(_header(username_token("admin", "pa<ss>", NOW))), "Header")
    assert check_username_token(header, "admin", "pa<ss>", NOW, 300)
    assert not check_username_token(header, "admin", "pass", NOW, 300)
    assert not check_username_token(header, "root", "pa<ss>", NOW, 300)
    later = NOW + datetime.timedelta(minutes=6)  # a replayed token goes stale
    assert not check_username_token(header, "admin", "pa<ss>", later, 300)
    assert not check_username_token(None, "admin", "pa<ss>", NOW, 300)


def test_each_token_has_a_fresh_nonce() -> None:
    a, b = username_token("u", "p", NOW), username_token("u", "p", NOW)
    assert a != b  # same password, same second: different digests


def _matches(relates: str, xaddrs: str, types: str = "dn:NetworkVideoTransmitter") -> bytes:
    return (
        '<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">'
        f"<s:Header><a:RelatesTo>{relates}</a:RelatesTo></s:Header><s:Body><d:ProbeMatches>"
        "<d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:1</a:Address>"
        f"</a:EndpointReference><d:Types>{types}</d:Types>"
        "<d:Scopes>onvif://www.onvif.org/name/Front%20Door onvif://www.onvif.org/hardware/X</d:Scopes>"
        f"<d:XAddrs>{xaddrs}</d:XAddrs></d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"
    ).encode()


def test_answers_are_pinned_to_the_address_that_sent_them() -> None:
    data = _matches("urn:uuid:probe", "http://10.9.9.9:8080/onvif/device_service ftp://x/ y")
    (device,) = parse_matches(data, "192.168.1.20", "urn:uuid:probe")
    # a device cannot point the hub (and its credentials) at another machine
    assert device.xaddrs == ("http://192.168.1.20:8080/onvif/device_service",)
    assert device.scope("name") == "Front Door"


def test_answers_to_another_probe_or_of_another_type_are_ignored() -> None:
    assert parse_matches(_matches("urn:uuid:other", "http://h/x"), "1.2.3.4", "urn:uuid:me") == []
    printer = _matches("urn:uuid:me", "http://h/x", types="wsdp:Device pr:Printer")
    assert parse_matches(printer, "1.2.3.4", "urn:uuid:me") == []


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
        b'"&lol;&lol;&lol;&lol;">]><s:Envelope xmlns:s="x">&lol2;</s:Envelope>',
        b'<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><a>&xxe;</a>',
        b"<a>" + b"x" * (1 << 20) + b"</a>",
        b"<a><b></a>",
    ],
    ids=["billion-laughs", "external-entity", "oversized", "malformed"],
)
def test_hostile_xml_is_refused_before_it_is_expanded(document: bytes) -> None:
    with pytest.raises(OnvifError):
        parse(document)
    with pytest.raises(OnvifError):
        parse_matches(document, "1.2.3.4", "urn:uuid:me")


def test_faults_say_what_the_camera_refused() -> None:
    data = (
        b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        b'xmlns:ter="http://www.onvif.org/ver10/error"><s:Body><s:Fault><s:Code>'
        b"<s:Value>s:Sender</s:Value><s:Subcode><s:Value>ter:NotAuthorized</s:Value>"
        b"</s:Subcode></s:Code><s:Reason><s:Text>Sender not Authorized</s:Text></s:Reason>"
        b"</s:Fault></s:Body></s:Envelope>"
    )
    reason = fault(parse(data))
    assert reason is not None and is_auth_fault(reason)
    assert not is_auth_fault("Sender / InvalidArgVal")


def test_probe_is_a_ws_discovery_probe_for_video_transmitters() -> None:
    root = parse(probe_message("urn:uuid:abc"))
    assert text(root, "Header", "MessageID") == "urn:uuid:abc"
    assert text(root, "Probe", "Types") == "dn:NetworkVideoTransmitter"


def test_targets_and_pinned_stream_uris() -> None:
    assert parse_target("10.0.0.7") == ("10.0.0.7", 3702)
    assert parse_target("10.0.0.7:4000") == ("10.0.0.7", 4000)
    assert parse_target("[fe80::1]:3702") == ("fe80::1", 3702)
    with pytest.raises(ValueError, match="host"):
        parse_target(":99999")
    uri = pin("rtsp://admin:secret@0.0.0.0:554/Streaming/101?x=1", "10.0.0.7", ("rtsp",))
    assert uri == "rtsp://10.0.0.7:554/Streaming/101?x=1"  # no credentials, the camera's host
    with pytest.raises(OnvifError):
        pin("file:///etc/passwd", "10.0.0.7", ("rtsp",))


def _profile(token: str, encoding: str, w: int, h: int, fps: float, uri: str = "u") -> Profile:
    return Profile(token, token, encoding, w, h, fps, 0, "", uri and f"rtsp://c/{token}")


def test_main_stream_is_the_largest_and_the_substream_the_smallest_usable() -> None:
    profiles = [
        _profile("jpeg", "JPEG", 3840, 2160, 1),
        _profile("main", "H265", 3840, 2160, 25),
        _profile("main15", "H264", 3840, 2160, 15),
        _profile("third", "H264", 176, 144, 10),  # too small to detect anything
        _profile("sub", "H264", 640, 360, 15),
        _profile("mid", "H264", 1280, 720, 15),
    ]
    main, sub = pick_streams(profiles)
    assert main is not None and sub is not None
    assert (main.token, sub.token) == ("main", "sub")
    only, none = pick_streams([_profile("one", "H264", 1920, 1080, 30)])
    assert only is not None and none is None
    assert pick_streams([_profile("m", "JPEG", 640, 480, 5)]) == (None, None)
