"""Bearer-token verification: the token's `sub` is the user, `deviceId` the device."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt

from shared.auth.keys import DEV_KID, JwksKeySource, KeySource, StaticKeySource, load_or_create_dev_key
from shared.config import Settings
from shared.domain.errors import Unauthorized
from shared.domain.models import Actor

LEEWAY_SECONDS = 5  # clock skew allowed on `exp` (and `nbf`, `iat`) unless configured (JWT_LEEWAY_SECONDS)


class VerifiedTokens:
    """A bounded memo of tokens that verified, keyed by the token string (and the audiences
    accepted), so that a client's every request does not pay an ES256 verification (~0.3 ms of
    CPU, held under the GIL). An entry is used only while the token is unexpired, as PyJWT
    judges it (`exp` plus the leeway), and for at most `max_age` seconds, so that a key
    withdrawn from the JWKS stops being honoured soon after. Only successes are remembered:
    a refused token is checked again every time. When full, the oldest entry goes."""

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_age: float = 300.0,
        clock: Callable[[], float] = time.time,
        leeway: float = LEEWAY_SECONDS,
    ):
        self._leeway = leeway
        self._max_entries = max_entries
        self._max_age = max_age
        self._clock = clock
        self._entries: dict[tuple[str, tuple[str, ...]], tuple[Actor, float]] = {}
        self._lock = threading.Lock()

    def get(self, token: str, audiences: tuple[str, ...]) -> Actor | None:
        key = (token, audiences)
        entry = self._entries.get(key)
        if entry is None:
            return None
        actor, valid_until = entry
        if self._clock() < valid_until:
            return actor
        with self._lock:
            self._entries.pop(key, None)
        return None

    def put(self, token: str, audiences: tuple[str, ...], actor: Actor) -> None:
        now = self._clock()
        expires = actor.claims.get("exp")
        if not isinstance(expires, (int, float)) or self._max_entries <= 0:
            return
        valid_until = min(float(expires) + self._leeway, now + self._max_age)
        with self._lock:
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]  # dicts keep insertion order: the oldest
            self._entries[(token, audiences)] = (actor, valid_until)

    def __len__(self) -> int:
        return len(self._entries)


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        algorithms: list[str],
        issuer: str = "",
        audience: str = "",
        cache: VerifiedTokens | None = None,
        leeway: float = LEEWAY_SECONDS,
    ):
        self.leeway = leeway  # seconds a token is still honoured past its `exp` (clock skew)
        self._keys = keys
        self._algorithms = algorithms
        self._issuer = issuer
        self._audience = audience
        self._cache = cache if cache is not None else VerifiedTokens(leeway=leeway)

    def verify(self, token: str, *, extra_audiences: tuple[str, ...] = ()) -> Actor:
        actor = self._cache.get(token, extra_audiences)
        if actor is None:
            actor = self._verify(token, extra_audiences)
            self._cache.put(token, extra_audiences, actor)
        return actor

    def remembered(self, token: str) -> Actor | None:
        """The actor of `token` if it verified recently (the memo), else None: no verification
        and no key fetch, so the event loop may ask (`verify` then runs in a worker thread)."""
        return self._cache.get(token, ())

    def _verify(self, token: str, extra_audiences: tuple[str, ...]) -> Actor:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("the token is malformed", code="invalid_token") from exc
        if header.get("alg") not in self._algorithms:
            raise Unauthorized("the token's algorithm is not allowed", code="invalid_token")
        key = self._keys.key_for(header.get("kid"))
        if key is None:
            raise Unauthorized("the token was signed by an unknown key", code="invalid_token")
        audiences = [a for a in (self._audience, *extra_audiences) if a]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=audiences or None,
                issuer=self._issuer or None,
                options={"require": ["exp", "sub"], "verify_aud": bool(audiences)},
                leeway=self.leeway,
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the token has expired", code="token_expired") from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:  # a key unfit for the algorithm raises ValueError
            raise Unauthorized(f"the token is not valid: {exc}", code="invalid_token") from exc
        try:
            user_id = str(uuid.UUID(str(claims["sub"])))
        except ValueError as exc:
            raise Unauthorized("the token's subject is not a user id", code="invalid_token") from exc
        device = claims.get("deviceId") or claims.get("device_id")
        return Actor(user_id=user_id, device_id=str(device) if device else None, claims=claims)


def build_verifier(settings: Settings) -> TokenVerifier:
    if settings.uses_jwks:
        # half the max age each: a withdrawn key is refused within WHISPR_JWKS_MAX_AGE_SECONDS
        source: KeySource = JwksKeySource(
            settings.jwt_jwks_url,
            min_refetch_interval=settings.jwks_refetch_interval_seconds,
            max_age=settings.jwks_max_age_seconds / 2,
        )
    else:
        source = StaticKeySource({DEV_KID: load_or_create_dev_key(settings.dev_key_path).public_key()})
    return TokenVerifier(
        source,
        algorithms=settings.algorithms,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        cache=VerifiedTokens(max_age=settings.jwks_max_age_seconds / 2, leeway=settings.jwt_leeway_seconds),
        leeway=settings.jwt_leeway_seconds,
    )


def mint_dev_token(settings: Settings, user_id: str, *, device_id: str | None = None, ttl_seconds: int = 86400) -> str:
    """A local-mode access token, signed with the dev key (ES256, like production)."""
    key = load_or_create_dev_key(settings.dev_key_path)
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(uuid.UUID(user_id)),
        "deviceId": device_id or str(uuid.uuid4()),
        "iat": now,
        "exp": now + ttl_seconds,
        "typ": "access",
    }
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": DEV_KID})
