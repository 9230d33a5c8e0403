"""Bearer tokens (api.md, "Conventions"): what is refused with 401 and the error body, and JWKS
mode against a real JWKS server (ES256, iss/aud, one rate-limited refetch on an unknown kid)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.auth.keys import DEV_KID, load_or_create_dev_key
from shared.devtools.postgres import free_port
from tests.support import BASE, RunningServer, assert_error, make_settings, new_id, serve

ISSUER = "https://auth.whispr.test"
AUDIENCE = "whispr-messaging"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {"sub": new_id(), "deviceId": new_id(), "iat": now, "exp": now + 600}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def es256(key: ec.EllipticCurvePrivateKey, kid: str | None, **overrides: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**overrides), key, algorithm="ES256", headers=headers)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()), b64url(signature)])


def hs256(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """Built by hand: PyJWT refuses to HMAC with a PEM key, which is the attack being tried."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


HTTP = httpx.Client(timeout=30)


def get(url: str, token: str | None = None, **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return HTTP.get(url + BASE + "/conversations", headers=headers)


def dev_key(server: RunningServer) -> ec.EllipticCurvePrivateKey:
    return load_or_create_dev_key(server.services.settings.dev_key_path)


# --- local mode: what is refused ---------------------------------------------------------------


def test_a_valid_token_is_accepted(server: RunningServer) -> None:
    response = get(server.url, es256(dev_key(server), DEV_KID))
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


@pytest.mark.parametrize("header", [None, "", "Bearer", "bearer", "Basic dXNlcjpwYXNz", "Token abc"])
def test_no_token_is_401(server: RunningServer, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = HTTP.get(server.url + BASE + "/conversations", headers=headers)
    assert_error(response, 401, "missing_token")


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "a.b",
        "....",
        "eyJhbGciOiJFUzI1NiJ9.e30.",
        "Bearer x",
        "e30.e30.e30",
        b64url(b"\xff\xfe") + ".e30.e30",
    ],
)
def test_garbage_token_is_401(server: RunningServer, token: str) -> None:
    assert_error(get(server.url, token), 401, "invalid_token")


def test_a_token_that_is_not_ascii_is_401(server: RunningServer) -> None:
    response = HTTP.get(
        server.url + BASE + "/conversations", headers=[(b"Authorization", "Bearer é.é.é".encode("latin-1"))]
    )
    assert_error(response, 401)


def test_tampered_token_is_401(server: RunningServer) -> None:
    token = es256(dev_key(server), DEV_KID)
    header, payload, signature = token.split(".")
    forged_payload = b64url(json.dumps(claims()).encode())
    assert get(server.url, token).status_code == 200
    assert_error(get(server.url, f"{header}.{forged_payload}.{signature}"), 401, "invalid_token")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    assert_error(get(server.url, f"{header}.{payload}.{flipped}"), 401, "invalid_token")


def test_expired_token_is_401(server: RunningServer) -> None:
    now = int(time.time())
    expired = es256(dev_key(server), DEV_KID, iat=now - 3600, exp=now - 60)
    assert_error(get(server.url, expired), 401, "token_expired")


def test_token_signed_by_another_key_is_401(server: RunningServer) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    assert_error(get(server.url, es256(other, DEV_KID)), 401, "invalid_token")
    assert_error(get(server.url, es256(other, None)), 401, "invalid_token")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_401(server: RunningServer, alg: str) -> None:
    token = unsigned({"alg": alg, "typ": "JWT", "kid": DEV_KID}, claims())
    assert_error(get(server.url, token), 401, "invalid_token")
    # with the signature of a genuine token pasted on
    genuine = es256(dev_key(server), DEV_KID).split(".")[2]
    assert_error(get(server.url, token + genuine), 401, "invalid_token")


def test_alg_none_made_by_pyjwt_is_401(server: RunningServer) -> None:
    token = jwt.encode(claims(), "", algorithm="none", headers={"kid": DEV_KID})
    assert_error(get(server.url, token), 401, "invalid_token")


def test_hs256_is_401_even_keyed_with_the_public_key(server: RunningServer) -> None:
    public_pem = (
        dev_key(server)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": DEV_KID}
    for secret in (b"secret", public_pem, public_pem.strip()):
        assert_error(get(server.url, hs256(secret, header, claims())), 401, "invalid_token")


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": None},
        {"sub": "not-a-uuid"},
        {"sub": 42},
        {"exp": None},
        {"exp": "tomorrow"},
        {"nbf": int(time.time()) + 3600},
    ],
    ids=["no-sub", "sub-not-uuid", "sub-number", "no-exp", "exp-string", "not-yet-valid"],
)
def test_tokens_missing_or_with_bad_claims_are_401(server: RunningServer, overrides: dict[str, Any]) -> None:
    token = es256(dev_key(server), DEV_KID, **overrides)
    assert_error(get(server.url, token), 401)


def test_the_token_subject_is_the_caller(server: RunningServer) -> None:
    user = str(uuid.uuid4())
    response = HTTP.post(
        server.url + BASE + "/conversations",
        json={"type": "group", "name": "mine", "user_ids": [new_id()]},
        headers={"Authorization": f"Bearer {es256(dev_key(server), DEV_KID, sub=user.upper())}"},
    )
    assert response.status_code == 201, response.text
    members = response.json()["data"]["members"]
    assert [m["user_id"] for m in members if m["role"] == "owner"] == [user]


# --- JWKS mode, against a real JWKS server --------------------------------------------------------


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 that counts its requests; `keys` can be changed (rotation)."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.raw: bytes | None = None  # served as is when set (broken documents)
        self.hits = 0
        self.hit_times: list[float] = []  # time.monotonic() of each request (same process as the gateway)
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer.hits += 1
                    outer.hit_times.append(time.monotonic())
                    body = outer.raw if outer.raw is not None else json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def publish(self, *pairs: tuple[str, Any]) -> None:
        with self._lock:
            self.keys = [public_jwk(key, kid) for kid, key in pairs]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def public_jwk(key: Any, kid: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig", "alg": "ES256"}


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    server.start()
    try:
        yield server
    finally:
        server.close()


@contextmanager
def jwks_gateway(
    pg_url: str, key_path: str, jwks_url: str, *, interval: float = 30.0, issuer: str = ISSUER, audience: str = AUDIENCE
) -> Iterator[RunningServer]:
    settings = dataclasses.replace(
        make_settings(pg_url, key_path),
        jwt_jwks_url=jwks_url,
        jwt_issuer=issuer,
        jwt_audience=audience,
        jwks_refetch_interval_seconds=interval,
    )
    with serve(settings) as running:
        yield running


def good(key: ec.EllipticCurvePrivateKey, kid: str, **overrides: Any) -> str:
    return es256(key, kid, **{"iss": ISSUER, "aud": AUDIENCE, **overrides})


def test_jwks_es256_tokens_are_verified_and_the_jwks_is_cached(pg_url: str, key_path: str, jwks: JwksServer) -> None:
    k1 = ec.generate_private_key(ec.SECP256R1())
    jwks.publish(("k1", k1))
    with jwks_gateway(pg_url, key_path, jwks.url) as gateway:
        assert jwks.hits == 0
        for _ in range(3):
            response = get(gateway.url, good(k1, "k1"))
            assert response.status_code == 200, response.text
        assert jwks.hits == 1
        # in JWKS mode the local dev key means nothing
        dev = es256(load_or_create_dev_key(key_path), DEV_KID, iss=ISSUER, aud=AUDIENCE)
        assert_error(get(gateway.url, dev), 401, "invalid_token")
        # right kid, wrong key
        impostor = ec.generate_private_key(ec.SECP256R1())
        assert_error(get(gateway.url, good(impostor, "k1")), 401, "invalid_token")
        assert_error(get(gateway.url, good(k1, "k1", exp=int(time.time()) - 60)), 401, "token_expired")


def test_jwks_checks_audience_and_issuer_when_configured(pg_url: str, key_path: str, jwks: JwksServer) -> None:
    k1 = ec.generate_private_key(ec.SECP256R1())
    jwks.publish(("k1", k1))
    with jwks_gateway(pg_url, key_path, jwks.url) as gateway:
        assert get(gateway.url, good(k1, "k1")).status_code == 200
        assert get(gateway.url, good(k1, "k1", aud=["other", AUDIENCE])).status_code == 200
        for overrides in (
            {"aud": "another-service"},
            {"aud": None},
            {"aud": ["a", "b"]},
            {"iss": "https://evil.example"},
            {"iss": None},
        ):
            response = get(gateway.url, good(k1, "k1", **overrides))
            assert_error(response, 401, "invalid_token")
    with jwks_gateway(pg_url, key_path, jwks.url, issuer="", audience="") as unchecked:
        # not configured: not checked
        assert get(unchecked.url, good(k1, "k1", aud=None, iss=None)).status_code == 200
        assert get(unchecked.url, good(k1, "k1", iss="https://anyone")).status_code == 200


@pytest.fixture(scope="module")
def refetching_pair(pg_url: str, key_path: str) -> Iterator[tuple[JwksServer, RunningServer]]:
    jwks = JwksServer()
    jwks.start()
    try:
        with jwks_gateway(pg_url, key_path, jwks.url, interval=0) as gateway:
            yield jwks, gateway
    finally:
        jwks.close()


@pytest.fixture
def refetching(refetching_pair: tuple[JwksServer, RunningServer]) -> tuple[JwksServer, RunningServer]:
    """A gateway that refetches on every unknown kid (interval 0), with an empty JWKS. Shared by
    the tests of this module: each uses kids of its own and counts hits from where it starts."""
    jwks, gateway = refetching_pair
    jwks.raw, jwks.keys = None, []
    return jwks, gateway


def kid(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}"


def test_jwks_mode_refuses_algorithms_off_the_allow_list(refetching: tuple[JwksServer, RunningServer]) -> None:
    jwks, gateway = refetching
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    k1 = ec.generate_private_key(ec.SECP256R1())
    ec_kid, rsa_kid = kid("ec"), kid("rsa")
    jwks.publish((ec_kid, k1), (rsa_kid, rsa_key))
    assert get(gateway.url, good(k1, ec_kid)).status_code == 200
    hits = jwks.hits
    rs256 = jwt.encode(claims(iss=ISSUER, aud=AUDIENCE), rsa_key, algorithm="RS256", headers={"kid": rsa_kid})
    assert_error(get(gateway.url, rs256), 401, "invalid_token")
    none = unsigned({"alg": "none", "kid": kid("forged")}, claims(iss=ISSUER, aud=AUDIENCE))
    assert_error(get(gateway.url, none), 401, "invalid_token")
    public_pem = k1.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    confused = hs256(public_pem, {"alg": "HS256", "kid": ec_kid}, claims(iss=ISSUER, aud=AUDIENCE))
    assert_error(get(gateway.url, confused), 401, "invalid_token")
    hs_forged = hs256(b"secret", {"alg": "HS256", "kid": kid("forged")}, claims(iss=ISSUER, aud=AUDIENCE))
    assert_error(get(gateway.url, hs_forged), 401, "invalid_token")
    # refused on the header alone: no trip to the auth service for them
    assert jwks.hits == hits


def test_unknown_kid_refetches_exactly_once_and_a_rotated_key_is_accepted(
    refetching: tuple[JwksServer, RunningServer],
) -> None:
    jwks, gateway = refetching
    k1, k2 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    kid1, kid2 = kid("k1"), kid("k2")
    jwks.publish((kid1, k1))
    start = jwks.hits
    assert get(gateway.url, good(k1, kid1)).status_code == 200
    assert jwks.hits == start + 1
    jwks.publish((kid2, k2))  # the auth service rotates
    response = get(gateway.url, good(k2, kid2))
    assert response.status_code == 200, response.text
    assert jwks.hits == start + 2  # exactly one refetch
    assert get(gateway.url, good(k2, kid2)).status_code == 200
    assert jwks.hits == start + 2  # and cached again
    # kid1 was withdrawn: one refetch, then refused
    assert_error(get(gateway.url, good(k1, kid1)), 401, "invalid_token")
    assert jwks.hits == start + 3
    assert_error(get(gateway.url, good(k1, kid("forged"))), 401, "invalid_token")
    assert jwks.hits == start + 4


def test_a_key_withdrawn_from_the_jwks_is_refused_within_the_max_age(
    pg_url: str, key_path: str, jwks: JwksServer
) -> None:
    k1, k2 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    jwks.publish(("k1", k1))
    settings = dataclasses.replace(
        make_settings(pg_url, key_path),
        jwt_jwks_url=jwks.url,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwks_refetch_interval_seconds=0.2,
        jwks_max_age_seconds=1.0,
    )
    token = good(k1, "k1")
    with serve(settings) as gateway:
        assert get(gateway.url, token).status_code == 200
        jwks.publish(("k2", k2))  # k1 withdrawn: the same, still unexpired token must stop working
        withdrawn_at = time.monotonic()
        while get(gateway.url, token).status_code == 200:
            assert time.monotonic() - withdrawn_at < 30, "the withdrawn key is still accepted"
            time.sleep(0.05)
        assert_error(get(gateway.url, token), 401, "invalid_token")
        assert get(gateway.url, good(k2, "k2")).status_code == 200  # the new key, from the same refetch
        hits = jwks.hits
        assert_error(get(gateway.url, good(k1, "forged")), 401, "invalid_token")  # unknown kid: one refetch
        assert jwks.hits <= hits + 1


def test_unknown_kids_do_not_refetch_more_often_than_the_interval(pg_url: str, key_path: str, jwks: JwksServer) -> None:
    interval = 1.0
    k1, k2 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    jwks.publish(("k1", k1))
    with jwks_gateway(pg_url, key_path, jwks.url, interval=interval) as gateway:
        assert get(gateway.url, good(k1, "k1")).status_code == 200
        assert jwks.hits == 1
        checked = 0
        for i in range(20):
            assert_error(get(gateway.url, good(k1, f"forged-{i}")), 401, "invalid_token")
            if time.monotonic() - jwks.hit_times[0] >= interval:
                break
            assert jwks.hits == 1, f"refetched within the interval after {i + 1} unknown kids"
            checked += 1
        assert checked >= 5, "the machine is too slow for this test's interval"
        # once the interval has passed, an unknown kid refetches again (once), and a rotated key is found
        time.sleep(max(0.0, jwks.hit_times[-1] + interval - time.monotonic()) + 0.05)
        jwks.publish(("k1", k1), ("k2", k2))
        assert get(gateway.url, good(k2, "k2")).status_code == 200
        assert jwks.hits == 2
        for i in range(10):
            assert_error(get(gateway.url, good(k1, f"forged-again-{i}")), 401, "invalid_token")
            if time.monotonic() - jwks.hit_times[1] >= interval:
                break
            assert jwks.hits == 2, f"refetched within the interval after {i + 1} unknown kids"
        assert get(gateway.url, good(k1, "k1")).status_code == 200


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b"[]",
        b'"keys"',
        b"null",
        b'{"keys": "nope"}',
        b'{"keys": [42, "x", null]}',
        b'{"keys": [{"kty": "EC"}]}',
        b"",
    ],
    ids=["not-json", "list", "string", "null", "keys-string", "keys-not-objects", "incomplete-key", "empty"],
)
def test_a_broken_jwks_document_means_401_not_500(
    refetching: tuple[JwksServer, RunningServer], document: bytes
) -> None:
    jwks, gateway = refetching
    k1, kid1 = ec.generate_private_key(ec.SECP256R1()), kid("k1")
    jwks.raw = document
    start = jwks.hits
    assert_error(get(gateway.url, good(k1, kid1)), 401, "invalid_token")
    assert jwks.hits == start + 1
    # the auth service recovers: the next unknown kid finds the key
    jwks.raw = None
    jwks.publish((kid1, k1))
    assert get(gateway.url, good(k1, kid1)).status_code == 200


def test_a_key_unfit_for_the_algorithm_is_401_not_500(refetching: tuple[JwksServer, RunningServer]) -> None:
    jwks, gateway = refetching
    k1, kid1 = ec.generate_private_key(ec.SECP256R1()), kid("oct")
    jwks.raw = json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": kid1}]}).encode()  # a symmetric key
    assert_error(get(gateway.url, good(k1, kid1)), 401, "invalid_token")
    confused = hs256(b"secret", {"alg": "HS256", "kid": kid1}, claims(iss=ISSUER, aud=AUDIENCE))
    assert_error(get(gateway.url, confused), 401, "invalid_token")


def test_one_unusable_key_does_not_spoil_the_others(refetching: tuple[JwksServer, RunningServer]) -> None:
    jwks, gateway = refetching
    k1, kid1 = ec.generate_private_key(ec.SECP256R1()), kid("k1")
    broken = {"kty": "EC", "kid": kid("broken"), "crv": "P-256", "x": "AAAA", "y": "AAAA"}
    jwks.raw = json.dumps({"keys": [broken, 7, public_jwk(k1, kid1)]}).encode()
    assert get(gateway.url, good(k1, kid1)).status_code == 200


def test_an_unreachable_jwks_means_401_not_500(pg_url: str, key_path: str) -> None:
    closed = f"http://127.0.0.1:{free_port()}/jwks.json"
    k1 = ec.generate_private_key(ec.SECP256R1())
    with jwks_gateway(pg_url, key_path, closed) as gateway:
        assert_error(get(gateway.url, good(k1, "k1")), 401, "invalid_token")
