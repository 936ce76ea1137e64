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


def target(message: dict[str, Any]) -> str:
    # firebase-admin 7 names the registration token "fid" (older releases: "token").
    return str(message.get("fid") or message.get("token"))


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
