"""Where token-verification keys come from: a JWKS URL (production) or a local key file."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.request
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger(__name__)

DEV_KID = "whispr-dev"


class KeySource(Protocol):
    def key_for(self, kid: str | None) -> Any | None:
        """The public key for `kid`, or None if unknown."""
        ...


class JwksKeySource:
    """Keys from the auth-service JWKS, cached. An unknown `kid` triggers one refetch, at most
    once per `min_refetch_interval` seconds, so forged kids cannot hammer the auth service.
    Keys older than `max_age` are refetched too (same pacing), so a key withdrawn from the
    JWKS stops being honoured; if the JWKS cannot be fetched then, the keys held stay in use
    (the auth service being down must not log every user out)."""

    def __init__(self, url: str, *, min_refetch_interval: float = 30.0, max_age: float = 300.0, timeout: float = 5.0):
        self._url = url
        self._interval = min_refetch_interval
        self._max_age = max_age
        self._timeout = timeout
        self._keys: dict[str | None, Any] = {}
        self._fetched_at = float("-inf")  # last attempt
        self._loaded_at = float("-inf")  # last success
        self._lock = threading.Lock()

    def key_for(self, kid: str | None) -> Any | None:
        with self._lock:
            now = time.monotonic()
            wanted = kid not in self._keys or now - self._loaded_at >= self._max_age
            if wanted and now - self._fetched_at >= self._interval:
                self._refresh()
            return self._keys.get(kid)

    def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            with urllib.request.urlopen(self._url, timeout=self._timeout) as response:
                document = json.load(response)
        except (OSError, ValueError) as exc:
            log.warning("could not fetch JWKS from %s: %s", self._url, exc)
            return
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):  # a broken document: keep the keys we have
            log.warning("the JWKS from %s has no list of keys", self._url)
            return
        keys: dict[str | None, Any] = {}
        for jwk in entries:
            if not isinstance(jwk, dict):
                log.warning("skipping a JWKS entry that is not an object")
                continue
            try:
                keys[jwk.get("kid")] = jwt.PyJWK.from_dict(jwk).key
            except (jwt.PyJWKError, jwt.InvalidKeyError, KeyError, ValueError, TypeError) as exc:
                log.warning("skipping unusable JWK %s: %s", jwk.get("kid"), exc)
        self._keys, self._loaded_at = keys, self._fetched_at


class StaticKeySource:
    def __init__(self, keys: dict[str | None, Any]):
        self._keys = keys

    def key_for(self, kid: str | None) -> Any | None:
        return self._keys.get(kid)


def load_or_create_dev_key(path: str) -> ec.EllipticCurvePrivateKey:
    """The local-mode ES256 signing key, made on first use (never used when a JWKS is set)."""
    if os.path.exists(path):
        with open(path, "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} is not an EC private key")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key
