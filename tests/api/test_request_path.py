"""The request path's shortcuts behave like what they shortcut: the memo of verified tokens
(never past a token's expiry, never for a refused token) and the bucketed route table."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.auth.keys import StaticKeySource
from shared.auth.tokens import LEEWAY_SECONDS, TokenVerifier, VerifiedTokens
from shared.domain.errors import Unauthorized
from shared.domain.models import Actor
from shared.http.routes import ROUTES
from shared.http.routing import RouteTable, match

KEY = ec.generate_private_key(ec.SECP256R1())


class CountingKeys(StaticKeySource):
    """The test key, counting how often a verification asked for it."""

    def __init__(self) -> None:
        super().__init__({"k": KEY.public_key()})
        self.asked = 0

    def key_for(self, kid: str | None) -> Any | None:
        self.asked += 1
        return super().key_for(kid)


def token(**claims: Any) -> str:
    now = int(time.time())
    values = {"sub": str(uuid.uuid4()), "iat": now, "exp": now + 600, **claims}
    return jwt.encode(values, KEY, algorithm="ES256", headers={"kid": "k"})


def verifier(cache: VerifiedTokens | None = None) -> tuple[TokenVerifier, CountingKeys]:
    keys = CountingKeys()
    return TokenVerifier(keys, algorithms=["ES256"], cache=cache), keys


def test_a_token_is_verified_once_then_served_from_the_memo() -> None:
    check, keys = verifier()
    bearer = token()
    first, second = check.verify(bearer), check.verify(bearer)
    assert first == second and keys.asked == 1


def test_an_expired_token_is_refused_even_after_it_was_remembered() -> None:
    # expired 3 s ago: still inside PyJWT's leeway, so accepted (and remembered) now, and
    # refused once the leeway has passed too
    expires = int(time.time()) - 3
    bearer = token(exp=expires)
    check, _ = verifier()
    assert check.verify(bearer).claims["exp"] == expires
    while time.time() <= expires + LEEWAY_SECONDS + 0.05:
        time.sleep(0.1)
    with pytest.raises(Unauthorized) as refused:
        check.verify(bearer)
    assert refused.value.code == "token_expired"


def test_the_memo_forgets_a_token_at_its_expiry_and_after_max_age() -> None:
    now = [1_000.0]
    memo = VerifiedTokens(max_age=60, clock=lambda: now[0])
    actor = Actor(user_id="u", claims={"exp": 1_030})
    memo.put("t", (), actor)
    assert memo.get("t", ()) is actor
    now[0] = 1_030 + LEEWAY_SECONDS  # PyJWT refuses from exp + leeway on
    assert memo.get("t", ()) is None and len(memo) == 0
    memo.put("t2", (), Actor(user_id="u", claims={"exp": 10_000}))
    now[0] += 60
    assert memo.get("t2", ()) is None


def test_the_memo_is_bounded_and_keyed_by_the_audiences_accepted() -> None:
    memo = VerifiedTokens(max_entries=2, clock=lambda: 0.0)
    actors = [Actor(user_id=str(i), claims={"exp": 100}) for i in range(3)]
    for i, actor in enumerate(actors):
        memo.put(f"t{i}", (), actor)
    assert len(memo) == 2 and memo.get("t0", ()) is None and memo.get("t2", ()) is actors[2]
    assert memo.get("t2", ("socket",)) is None
    memo.put("t3", (), Actor(user_id="3"))  # no exp (cannot verify anyway): not remembered
    assert memo.get("t3", ()) is None


def test_a_refused_token_is_not_remembered() -> None:
    check, keys = verifier()
    forged = token()[:-4] + "AAAA"
    for _ in range(2):
        with pytest.raises(Unauthorized):
            check.verify(forged)
    assert keys.asked == 2


PATHS = [
    "/",
    "//",
    "/health",
    "/health/",
    "/ready",
    "/conversations",
    "/conversations/",
    "/conversations//",
    "/conversations/archived",
    "/conversations/search/",
    "/conversations/x",
    "/conversations/x/messages",
    "/conversations/x/messages/",
    "/conversations//messages",
    "/conversations/x/members/y/role",
    "/messages/scheduled/x",
    "/messages/x/reactions/%F0%9F%91%8D",
    "/api/openapi.json",
    "/api/openapiXjson",
    "/api/docs",
    "/tasks/sweep",
    "/reports/queue",
    "/reports/x/resolve",
    "/sync/",
    "/nope",
    "/a/b/c/d/e/f",
]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_the_route_table_matches_exactly_like_trying_every_route(method: str) -> None:
    table = RouteTable(list(ROUTES))
    from_routes = {route.path.replace("{", "").replace("}", "") for route in ROUTES}
    for path in itertools.chain(PATHS, from_routes, (p + "/" for p in from_routes)):
        assert table.match(method, path) == match(list(ROUTES), method, path), path
