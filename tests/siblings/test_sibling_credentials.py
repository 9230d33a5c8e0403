"""What calls to the sibling services carry (WHISPR_SIBLING_AUTH): a Google ID token for each
service's audience, the shared secret, or nothing.

Neither the siblings nor a Google metadata server exist here: real gRPC servers on a port
stand in for user-, media- and notification-service and record the metadata of every call; a
real HTTP server on a port stands in for the metadata server (tests/siblings_support.py),
minting RS256 ID tokens, found by google-auth through GCE_METADATA_HOST / GCE_METADATA_IP."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jwt
import pytest

from shared.adapters.grpc_siblings import CircuitBreaker, GrpcMediaLibrary, GrpcUserDirectory, SiblingClient
from shared.adapters.sibling_credentials import GoogleIdToken, audience_of
from shared.bootstrap import build_services
from shared.config import ConfigurationError, Settings, load_settings
from shared.devtools.postgres import free_port
from shared.ports.siblings import SiblingUnavailable
from shared.rpc.auth import CallerCheck
from tests.siblings_support import (
    MetadataServer,
    Siblings,
    google_auth_pointed_at,
    metadata_env,
    metadata_server,
    refusing_front_end,
    sibling_servers,
)
from tests.support import RunningServer, assert_error, make_settings, new_id, serve, service_env, service_process

MEDIA_AUDIENCE = "https://media-service.example.test"


@pytest.fixture(scope="module")
def siblings() -> Iterator[Siblings]:
    with sibling_servers() as running:
        yield running


@pytest.fixture
def metadata() -> Iterator[MetadataServer]:
    with metadata_server() as server, google_auth_pointed_at(server):
        yield server


def _bearer(received: dict[str, str]) -> str:
    scheme, _, token = received.get("authorization", "").partition(" ")
    assert scheme == "Bearer" and token, f"no ID token in {sorted(received)}"
    return token


def _verified_audience(token: str, metadata: MetadataServer) -> str:
    """The token's `aud`, once its signature checks against the metadata stand-in's key."""
    claims = jwt.decode(token, metadata.key.public_key(), algorithms=["RS256"], options={"verify_aud": False})
    return str(claims["aud"])


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.05)


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_process_set_for_id_tokens_sends_each_sibling_a_token_for_its_audience(
    pg_url: str, key_path: str, siblings: Siblings, tmp_path: Path
) -> None:
    """The service as its own process, its environment set the way Terraform sets it on Cloud
    Run (plus the two variables that send google-auth to the stand-in instead of the real
    metadata server)."""
    with metadata_server() as metadata:
        port = free_port()
        env = service_env(
            pg_url,
            key_path,
            port,
            WHISPR_LOG_LEVEL="info",
            WHISPR_SIBLING_AUTH="id_token",
            USER_SERVICE_GRPC_ENDPOINT=siblings.endpoint,
            MEDIA_SERVICE_GRPC_ENDPOINT=siblings.endpoint,
            WHISPR_MEDIA_SERVICE_AUDIENCE=MEDIA_AUDIENCE,
            **metadata_env(metadata),
        )
        env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
        services = build_services(make_settings(pg_url, key_path))  # tokens; the process serves
        server = RunningServer(f"http://127.0.0.1:{port}", services)
        log = tmp_path / "service.log"
        try:
            with service_process(env, port, log):
                alice, bob, carol = server.client(), server.client(), server.client()
                users_audience = audience_of(siblings.endpoint)  # https://127.0.0.1:<port>
                alice.direct_with(bob)
                first = _bearer(siblings.users.behaviour.metadata[-1])
                assert _verified_audience(first, metadata) == users_audience
                alice.direct_with(carol)  # the same token, not fetched again
                assert _bearer(siblings.users.behaviour.metadata[-1]) == first
                assert metadata.fetches(users_audience) == 1

                group = alice.group_with(bob)
                message = alice.send(group["id"])
                linked = alice.post(
                    f"/messages/{message['id']}/attachments", {"media_id": new_id(), "media_type": "image"}
                )
                assert linked.status_code == 201, linked.text
                media_token = _bearer(siblings.media.behaviour.metadata[-1])
                assert _verified_audience(media_token, metadata) == MEDIA_AUDIENCE
                assert metadata.refused == 0  # every request carried Metadata-Flavor: Google
        finally:
            services.close()
        text = log.read_text()
        assert f"user-service calls carry a Google ID token for {users_audience}" in text
        assert f"media-service calls carry a Google ID token for {MEDIA_AUDIENCE}" in text
        assert not [token for token in metadata.tokens if token in text], "a token was logged"


def test_a_whispr_style_shim_accepts_what_each_mode_sends(siblings: Siblings, metadata: MetadataServer) -> None:
    """Two Whispr-style services can talk: what the client sends passes the shim's own caller
    check (shared/rpc/auth.py), configured for that secret or that audience."""
    base = Settings()
    sent: dict[str, dict[str, str]] = {}
    for mode, extra in (("none", {}), ("secret", {"sibling_shared_secret": "s3cret-value"}), ("id_token", {})):
        settings = dataclasses.replace(base, sibling_auth=mode, **extra)
        client = SiblingClient.from_settings("user-service", siblings.endpoint, settings, "https://users.example.test")
        try:
            GrpcUserDirectory(client, cache_seconds=0).is_blocked(new_id(), new_id())
        finally:
            client.close()
        sent[mode] = siblings.users.behaviour.metadata[-1]

    assert "authorization" not in sent["none"] and "x-whispr-service-secret" not in sent["none"]
    assert sent["secret"]["x-whispr-service-secret"] == "s3cret-value"
    assert "authorization" not in sent["secret"]
    assert _verified_audience(_bearer(sent["id_token"]), metadata) == "https://users.example.test"

    by_secret = CallerCheck(dataclasses.replace(base, grpc_shared_secret="s3cret-value"))
    assert by_secret.refusal(sent["secret"]) is None
    assert CallerCheck(dataclasses.replace(base, grpc_shared_secret="another")).refusal(sent["secret"])
    by_token = dataclasses.replace(base, grpc_audience="https://users.example.test", grpc_jwks_url=metadata.jwks_url)
    assert CallerCheck(by_token).refusal(sent["id_token"]) is None
    other_audience = dataclasses.replace(by_token, grpc_audience="https://someone-else.example.test")
    assert "invalid ID token" in str(CallerCheck(other_audience).refusal(sent["id_token"]))


def test_a_token_is_reused_until_near_its_expiry_then_fetched_once_and_refreshed_ahead_off_the_call(
    siblings: Siblings, metadata: MetadataServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    audience = "https://users.example.test"
    clock = metadata.clock = Clock(time.time())  # the same time on both sides, moved by the test
    tokens = GoogleIdToken(audience, clock=clock, refresh_ahead=300, expiry_margin=60)
    client = SiblingClient("user-service", siblings.endpoint, deadline=5.0, credentials=tokens)
    users = GrpcUserDirectory(client, cache_seconds=0)

    def call() -> str:
        users.is_blocked(new_id(), new_id())
        return _bearer(siblings.users.behaviour.metadata[-1])

    def expiry(token: str) -> float:
        return float(jwt.decode(token, options={"verify_signature": False})["exp"])

    try:
        first = call()
        assert [call() for _ in range(3)] == [first] * 3
        assert metadata.fetches(audience) == 1

        clock.now = expiry(first) - 30  # within the last minute: no longer used
        second = call()
        assert second != first and metadata.fetches(audience) == 2
        assert [call() for _ in range(3)] == [second] * 3
        assert metadata.fetches(audience) == 2

        # four minutes before it expires: a call starts one fetch in the background and goes on
        # with the current token, while the metadata server holds that fetch unanswered
        metadata.hold.clear()
        clock.now = expiry(second) - 240
        assert call() == second
        assert call() == second
        metadata.hold.set()
        wait_until(lambda: metadata.fetches(audience) == 3, "the background refresh lands")
        wait_until(lambda: call() != second, "calls use the refreshed token")
        assert siblings.users.behaviour.metadata[-1]["authorization"] == f"Bearer {metadata.tokens[-1]}"
        assert metadata.fetches(audience) == 3
    finally:
        metadata.hold.set()
        client.close()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert f"ID token for audience {audience} fetched" in logged
    assert not [token for token in metadata.tokens if token in logged], "a token was logged"


@pytest.fixture
def gateway(pg_url: str, key_path: str, siblings: Siblings, metadata: MetadataServer) -> Iterator[RunningServer]:
    settings = dataclasses.replace(
        make_settings(pg_url, key_path),
        user_service_grpc_endpoint=siblings.endpoint,
        sibling_auth="id_token",
        sibling_deadline_seconds=1.0,
        sibling_breaker_failures=2,
        sibling_breaker_reset_seconds=0.5,
        scheduler="none",
    )
    with serve(settings) as running:
        yield running


def test_metadata_server_down_refuses_new_direct_conversations_and_opens_then_closes_the_circuit(
    gateway: RunningServer, siblings: Siblings, metadata: MetadataServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    users = gateway.services.users
    assert isinstance(users, GrpcUserDirectory)
    reached = siblings.users.behaviour.calls
    alice, bob = gateway.client(), gateway.client()
    new_direct = {"type": "direct", "other_user_id": bob.user_id}
    metadata.down = True
    for _ in range(2):  # sibling_breaker_failures
        body = assert_error(alice.post("/conversations", new_direct), 503, "sibling_unavailable")
        assert body["details"]["service"] == "user-service"
    assert users.client.breaker.state == CircuitBreaker.OPEN
    assert siblings.users.behaviour.calls == reached  # no call left without a token
    with pytest.raises(SiblingUnavailable, match="circuit open"):
        users.is_blocked(alice.user_id, bob.user_id)
    assert alice.get("/conversations").json()["data"] == []  # nothing created
    logged = "\n".join(record.getMessage() for record in caplog.records)
    circuit_opened = (
        f"user-service circuit opened after no credentials: no ID token for {audience_of(siblings.endpoint)}"
    )
    assert circuit_opened in logged

    metadata.down = False  # back: a probe gets a token through and closes the circuit

    def opened() -> bool:
        response = alice.post("/conversations", new_direct)
        if response.status_code != 201:
            assert_error(response, 503, "sibling_unavailable")
        return response.status_code == 201

    wait_until(opened, "the circuit closes once tokens can be had")
    assert users.client.breaker.state == CircuitBreaker.CLOSED
    assert _verified_audience(_bearer(siblings.users.behaviour.metadata[-1]), metadata) == audience_of(
        siblings.endpoint
    )


def test_a_refusal_by_cloud_runs_iam_in_front_of_a_sibling_counts_as_the_sibling_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cloud Run refuses an identity that may not invoke the service with a bare HTTP 403, which
    grpc reports as PERMISSION_DENIED: not the sibling's own refusal (a media id denied), but
    the sibling out of reach, so 503 and the circuit, never a denial nor a 500."""
    caplog.set_level(logging.INFO)
    with refusing_front_end(403) as endpoint:
        users_client = SiblingClient("user-service", endpoint, deadline=2.0, breaker=CircuitBreaker(2, 60.0))
        media_client = SiblingClient("media-service", endpoint, deadline=2.0)
        try:
            users = GrpcUserDirectory(users_client, cache_seconds=0)
            for _ in range(2):
                with pytest.raises(SiblingUnavailable):
                    users.is_blocked(new_id(), new_id())
            assert users_client.breaker.state == CircuitBreaker.OPEN
            with pytest.raises(SiblingUnavailable):
                GrpcMediaLibrary(media_client).validate_access(new_id(), new_id(), new_id())
        finally:
            users_client.close()
            media_client.close()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "user-service circuit opened after PERMISSION_DENIED, Received http2 header with status: 403" in logged


def test_default_audience_is_the_endpoints_https_url_and_secret_mode_needs_its_secret() -> None:
    assert audience_of("grpcs://user-service-abc-ew.a.run.app:443") == "https://user-service-abc-ew.a.run.app"
    assert audience_of("grpcs://user-service-abc-ew.a.run.app") == "https://user-service-abc-ew.a.run.app"
    assert audience_of("10.0.0.7:9090") == "https://10.0.0.7:9090"
    with pytest.raises(ConfigurationError, match="WHISPR_SIBLING_SHARED_SECRET"):
        load_settings({"WHISPR_SIBLING_AUTH": "secret"})
    assert load_settings({"WHISPR_SIBLING_AUTH": "ID_TOKEN"}).sibling_auth == "id_token"
    with pytest.raises(ConfigurationError, match="WHISPR_SIBLING_AUTH"):
        load_settings({"WHISPR_SIBLING_AUTH": "oauth"})
