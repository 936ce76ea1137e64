"""A local stand-in for Google's OAuth and FCM v1 endpoints, for tests of the relay's pushes.

Google's real endpoints (oauth2.googleapis.com, fcm.googleapis.com) cannot be reached from
the test machines, so the stand-in plays both: it hands out an OAuth token for the signed JWT
of a throw-away service account, then accepts FCM v1 ``messages:send`` calls and records them.
Point the relay's ``push.fcm_endpoint`` and the key file's ``token_uri`` at it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

PROJECT = "privastead-test"


class GoogleStandIn:
    def __init__(self) -> None:
        self.token_requests = 0
        self.sends: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []  # sends FCM would answer 400 (bad addressee)
        self.auth_headers: list[str] = []
        self.fail_next = 0  # answer 429 (quota) this many times first
        app = web.Application()
        app.router.add_post("/token", self.token)
        app.router.add_post("/v1/projects/{project}/messages:send", self.send)
        self.server = TestServer(app, host="127.0.0.1")

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        self.token_requests += 1
        return web.json_response(
            {"access_token": "stand-in-access-token", "expires_in": 3600, "token_type": "Bearer"}
        )

    async def send(self, request: web.Request) -> web.Response:
        assert request.match_info["project"] == PROJECT
        body = await request.json()
        refusal = _check_target(body.get("message", {}))
        if refusal is not None:
            self.refused.append(body)
            return web.json_response(
                {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": refusal}},
                status=400,
            )
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response(
                {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "slow down"}},
                status=429,
            )
        if target(body["message"]) == "gone-device":
            return web.json_response(
                {
                    "error": {
                        "code": 404,
                        "status": "NOT_FOUND",
                        "message": "unregistered",
                        "details": [
                            {
                                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                "errorCode": "UNREGISTERED",
                            }
                        ],
                    }
                },
                status=404,
            )
        self.auth_headers.append(request.headers.get("Authorization", ""))
        self.sends.append(body)
        return web.json_response({"name": f"projects/{PROJECT}/messages/{len(self.sends)}"})


TARGET_FIELDS = ("token", "fid", "topic", "condition")


def _check_target(message: dict[str, Any]) -> str | None:
    """Why FCM would refuse this message's addressee, or None.

    FCM v1's ``Message`` has one union field ``target``: ``token`` (the registration token an
    app gets from ``FirebaseMessaging.getToken()`` / ``onNewToken``, the default on Android and
    iOS), ``fid`` (a Firebase Installation ID, only for apps that opted into FID registration),
    ``topic`` or ``condition``. Relay devices register registration tokens, so FCM reads them
    from ``token``; the same string sent as ``fid`` names no installation.
    """
    given = [field for field in TARGET_FIELDS if field in message]
    if len(given) != 1:
        return f"exactly one of {', '.join(TARGET_FIELDS)} must be set, got {given}"
    if given[0] != "token":
        return f"{given[0]} {message[given[0]]!r} is not a registered {given[0]}"
    if not isinstance(message["token"], str) or not message["token"]:
        return "the registration token must be a non-empty string"
    return None


def target(message: dict[str, Any]) -> str:
    """The registration token a (valid) message was sent to."""
    return str(message["token"])


def service_account(path: Path, token_uri: str) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "k1",
                "private_key": pem,
                "client_email": f"relay@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": token_uri,
            }
        )
    )
