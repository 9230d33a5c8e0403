"""The web chat of the local run: a page at /messaging/chat/ that signs in as a dev user and
chats over the REST API and the Phoenix socket, like any client would.

It exists only while the service signs its own tokens with the dev key (`make run`, tests): with
`JWT_JWKS_URL` set (production) none of these routes is mounted, so the token route cannot be
reached where real users are. The page loads nothing from elsewhere: the official `phoenix`
client (npm, shipped in shared/web/vendor) and its own script and styles.

Dev users are names: `alice` is the same user id (a UUID derived from the name) on every
browser and every run, so two windows can chat without copying ids around.
"""

from __future__ import annotations

import re
import threading
import uuid
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from shared.app.services import Services
from shared.auth.tokens import mint_dev_token

WEB = Path(__file__).resolve().parents[1] / "web"
PREFIX = "/messaging/chat"
NAMESPACE = uuid.UUID("6b3f9d2e-2f4b-4a57-9f1e-7c0a5d3e8b21")  # dev user ids: uuid5(NAMESPACE, name)
NAME = re.compile(r"^[\w .@'-]{1,40}$")
TOKEN_TTL_SECONDS = 12 * 3600
FILES = {
    "": ("chat.html", "text/html; charset=utf-8"),
    "chat.js": ("chat.js", "text/javascript; charset=utf-8"),
    "chat.css": ("chat.css", "text/css; charset=utf-8"),
    "phoenix.min.js": ("vendor/phoenix/phoenix.min.js", "text/javascript; charset=utf-8"),
}


def dev_user_id(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name.strip().lower()))


class DevUsers:
    """The names the chat has seen in this process, so that it can show names instead of ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, str] = {}

    def add(self, name: str) -> str:
        user_id = dev_user_id(name)
        with self._lock:
            self._names.setdefault(user_id, name.strip())
        return user_id

    def all(self) -> list[dict[str, str]]:
        with self._lock:
            return [{"user_id": user_id, "name": name} for user_id, name in sorted(self._names.items())]


async def _name_of(request: Request) -> str | JSONResponse:
    try:
        body = await request.json()
    except ValueError:
        body = None
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not NAME.match(name.strip()):
        return JSONResponse(
            {"error": "name: 1 to 40 letters, digits, spaces or . @ ' -", "code": "validation_failed", "details": {}},
            status_code=422,
        )
    return name.strip()


def chat_routes(services: Services) -> list[BaseRoute]:
    """The chat's routes; an empty list unless the service signs its own (dev) tokens."""
    if services.settings.uses_jwks:
        return []
    users = DevUsers()

    async def page(request: Request) -> Response:
        found = FILES.get(request.path_params.get("file", ""))
        if found is None:
            return JSONResponse({"error": "no such file", "code": "route_not_found", "details": {}}, 404)
        return FileResponse(WEB / found[0], media_type=found[1], headers={"Cache-Control": "no-cache"})

    async def session(request: Request) -> Response:
        """A dev token for a name (the user is created by being named)."""
        name = await _name_of(request)
        if isinstance(name, JSONResponse):
            return name
        user_id = users.add(name)
        token = mint_dev_token(services.settings, user_id, device_id="web-chat", ttl_seconds=TOKEN_TTL_SECONDS)
        return JSONResponse({"user_id": user_id, "name": name, "token": token})

    async def add_user(request: Request) -> Response:
        """The id of a name, to start a conversation with them before they ever signed in."""
        name = await _name_of(request)
        if isinstance(name, JSONResponse):
            return name
        return JSONResponse({"user_id": users.add(name), "name": name})

    async def list_users(request: Request) -> Response:
        return JSONResponse(users.all())

    async def home(request: Request) -> Response:
        return RedirectResponse(PREFIX + "/")

    return [
        Route("/", home, methods=["GET"]),
        Route(PREFIX, home, methods=["GET"]),
        Route(PREFIX + "/session", session, methods=["POST"]),
        Route(PREFIX + "/users", list_users, methods=["GET"]),
        Route(PREFIX + "/users", add_user, methods=["POST"]),
        Route(PREFIX + "/{file:path}", page, methods=["GET"]),
    ]
