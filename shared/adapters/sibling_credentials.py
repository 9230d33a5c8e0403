"""What outgoing sibling calls carry to prove who is calling (`WHISPR_SIBLING_AUTH`), the
counterpart of the shim's own caller check (shared/rpc/auth.py):

- `id_token`: a Google ID token for the sibling's audience in `authorization: Bearer …`, what a
  Cloud Run service behind IAM (`roles/run.invoker`) requires, and what a Whispr-style shim
  with `WHISPR_GRPC_AUDIENCE` accepts. Fetched with google-auth
  (`google.oauth2.id_token.fetch_id_token_credentials`): from the metadata server on Cloud Run
  and GCE (which `GCE_METADATA_HOST` / `GCE_METADATA_IP` redirect), or from the service-account
  key `GOOGLE_APPLICATION_CREDENTIALS` names;
- `secret`: the shared secret in `x-whispr-service-secret`, the header the shim accepts;
- `none`: nothing (local mode, plaintext endpoints).

A token is kept until shortly before it expires. Once it is close to expiring, one fetch runs
in the background while calls go on with the current token; only a call that finds no usable
token waits for a fetch, and no longer than its own budget. A call that gets no credentials
fails like an unreachable sibling (its circuit counts it). Tokens are never logged.
"""

from __future__ import annotations

import calendar
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Protocol
from urllib.parse import urlsplit

from shared.rpc.auth import SECRET_HEADER

log = logging.getLogger(__name__)

Metadata = tuple[tuple[str, str], ...]


class CredentialsUnavailable(Exception):
    """No credentials could be had for a call (the token source failed or took too long)."""


class CallCredentials(Protocol):
    def metadata(self, timeout: float) -> Metadata:
        """The metadata for the next call, within `timeout` seconds, or CredentialsUnavailable."""
        ...

    def rejected(self) -> None:
        """The sibling answered UNAUTHENTICATED: what was sent is not to be sent again."""
        ...


class NoCredentials:
    def metadata(self, timeout: float) -> Metadata:
        return ()

    def rejected(self) -> None:
        pass


class SharedSecret:
    def __init__(self, secret: str):
        self._metadata: Metadata = ((SECRET_HEADER, secret),)

    def metadata(self, timeout: float) -> Metadata:
        return self._metadata

    def rejected(self) -> None:
        pass  # nothing else to send: the secret is wrong until the configuration changes

    def __repr__(self) -> str:
        return "SharedSecret(***)"


def fetch_google_id_token(audience: str) -> tuple[str, float]:
    """A Google ID token for `audience` and when it expires (epoch seconds), the way google-auth
    gets one: the service-account key of GOOGLE_APPLICATION_CREDENTIALS, else the metadata
    server (`instance/service-accounts/default/identity?audience=…`)."""
    import google.auth.transport.requests
    from google.oauth2 import id_token

    request = google.auth.transport.requests.Request()
    credentials = id_token.fetch_id_token_credentials(audience, request=request)  # type: ignore[no-untyped-call]
    credentials.refresh(request)
    if not credentials.token or credentials.expiry is None:
        raise CredentialsUnavailable("the token source returned no token")
    return str(credentials.token), float(calendar.timegm(credentials.expiry.utctimetuple()))


def audience_of(endpoint: str) -> str:
    """The default audience of a sibling: its https URL (`grpcs://x.run.app:443` ->
    `https://x.run.app`), what Cloud Run expects of an ID token for the service."""
    address = endpoint.split("://", 1)[-1]
    parts = urlsplit(f"//{address}")
    host = parts.hostname or address
    if ":" in host:  # IPv6
        host = f"[{host}]"
    port = parts.port
    return f"https://{host}" if port in (None, 443) else f"https://{host}:{port}"


class GoogleIdToken:
    """`authorization: Bearer <ID token for audience>`, cached.

    A token is used until `expiry_margin` seconds before its expiry; from `refresh_ahead` seconds
    before it, a call starts one background fetch (at most one every `refresh_every` seconds)
    and goes on with the current token. Without a usable token a call waits for the one fetch in
    flight, at most its own timeout."""

    def __init__(
        self,
        audience: str,
        *,
        fetch: Callable[[str], tuple[str, float]] = fetch_google_id_token,
        refresh_ahead: float = 300.0,
        expiry_margin: float = 60.0,
        refresh_every: float = 30.0,
        clock: Callable[[], float] = time.time,
    ):
        self.audience = audience
        self.fetch = fetch
        self.refresh_ahead = refresh_ahead
        self.expiry_margin = expiry_margin
        self.refresh_every = refresh_every
        self.clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._fetching: Future[str] | None = None
        self._next_refresh = 0.0

    def metadata(self, timeout: float) -> Metadata:
        now = self.clock()
        with self._lock:
            token = self._token
            if token is not None and now < self._expires_at - self.expiry_margin:
                if now >= self._expires_at - self.refresh_ahead and now >= self._next_refresh:
                    self._next_refresh = now + self.refresh_every
                    self._start_fetch()  # this call goes on with the current token
                return (("authorization", f"Bearer {token}"),)
            fetching = self._start_fetch()
        try:
            token = fetching.result(timeout)
        except FutureTimeout:
            raise CredentialsUnavailable(f"no ID token for {self.audience} within {timeout:.1f}s") from None
        except Exception as error:
            raise CredentialsUnavailable(f"no ID token for {self.audience}: {error}") from error
        return (("authorization", f"Bearer {token}"),)

    def rejected(self) -> None:
        with self._lock:
            self._token = None  # the next call fetches a new one

    def _start_fetch(self) -> Future[str]:
        """The fetch in flight, or a new one (under the lock)."""
        if self._fetching is None:
            fetching: Future[str] = Future()
            self._fetching = fetching
            threading.Thread(target=self._run_fetch, args=(fetching,), name="id-token", daemon=True).start()
        return self._fetching

    def _run_fetch(self, fetching: Future[str]) -> None:
        try:
            token, expires_at = self.fetch(self.audience)
        except Exception as error:  # google-auth raises several kinds; none carries a token
            log.warning("no ID token for audience %s: %s", self.audience, error)
            with self._lock:
                self._fetching = None
            fetching.set_exception(error)
            return
        with self._lock:
            self._token, self._expires_at, self._fetching = token, expires_at, None
        log.info("ID token for audience %s fetched (expires in %.0fs)", self.audience, expires_at - self.clock())
        fetching.set_result(token)
