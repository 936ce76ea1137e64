"""The OpenAPI description: it matches the routes table, the relay serves it, and
schemathesis fuzzes the HTTP API from it against a real relay process (bounded in time)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, settings
from relay_harness import RelayProcess, make_process
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from privastead.relay.routes import ROUTES

SPEC = Path(__file__).resolve().parents[2] / "src" / "privastead" / "relay" / "openapi.yaml"
WEBSOCKET_ROUTES = {"/v1/ws", "/v1/live/{session}"}  # described in relay-api.md instead


def test_every_route_is_documented_and_nothing_else() -> None:
    doc = yaml.safe_load(SPEC.read_text())
    documented = {
        (method.upper(), path)
        for path, ops in doc["paths"].items()
        for method in ops
        if method != "parameters"
    }
    routed = {(r.method, r.path) for r in ROUTES if r.path not in WEBSOCKET_ROUTES}
    assert documented == routed
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method == "parameters" or path == "/healthz":
                continue
            errors = [code for code in op["responses"] if code.startswith(("4", "5"))]
            for code in errors:
                assert op["responses"][code] == {"$ref": "#/components/responses/Error"}


def test_the_relay_serves_its_description(tmp_path: Path) -> None:
    relay = make_process(tmp_path)
    try:
        r = requests.get(
            relay.url + "/v1/openapi.yaml",
            headers={"Authorization": f"Bearer {relay.owner_token}"},
            timeout=10,
        )
        assert r.status_code == 200
        assert r.text == SPEC.read_text()
        assert requests.get(relay.url + "/v1/openapi.yaml", timeout=10).status_code == 401
    finally:
        relay.kill9()


schema = schemathesis.openapi.from_path(str(SPEC))
MAILBOX = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def fuzz_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RelayProcess, str]]:
    # Fuzzing sends many unauthenticated requests on purpose: no lockout here.
    relay = make_process(tmp_path_factory.mktemp("fuzz"), "[auth]\nmax_failures = 1000000000\n")
    box = "0f" * 16
    requests.put(
        f"{relay.url}/v1/mailboxes/{box}",
        timeout=10,
        headers={"Authorization": f"Bearer {relay.owner_token}"},
    ).raise_for_status()
    try:
        yield relay, box
    finally:
        relay.kill9()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_fuzz_http_api(case: Any, fuzz_relay: tuple[RelayProcess, str]) -> None:
    relay, box = fuzz_relay
    params = case.path_parameters or {}
    if isinstance(params.get("mailbox"), str) and MAILBOX.match(params["mailbox"]):
        params["mailbox"] = box  # reach a real mailbox, not only 404s
    headers = {"Authorization": f"Bearer {relay.owner_token}"}
    if case.operation.path == "/metrics":
        headers = {"Authorization": "Bearer operator-token-for-tests-0123456789"}
    response = case.call_and_validate(
        base_url=relay.url,
        headers=headers,
        timeout=30,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
    )
    if response.status_code >= 400:
        assert response.json()["error"]["code"]  # the one error shape, always
