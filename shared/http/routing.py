"""The route type and path matching. The table itself is in `shared.http.routes`."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from shared.app.services import Services
from shared.domain.models import Actor
from shared.http.responses import ResponseDoc
from shared.http.sends import SendPort


@dataclass(frozen=True)
class Reply:
    data: Any = None
    status: int = 200
    meta: dict[str, Any] = field(default_factory=dict)
    bare: bool = False  # the body is `data` itself, not the {data, meta} envelope
    media_type: str | None = None  # `data` (str) is the body as is, with this type (the docs page)

    @classmethod
    def empty(cls) -> Reply:
        return cls(status=204)


@dataclass(frozen=True)
class Call:
    """Everything a handler gets: the caller, the parsed request, the services."""

    services: Services
    actor: Actor
    path: Mapping[str, str]
    query: Mapping[str, str]
    body: Any
    sends: SendPort  # how a message is stored: alone, or in the process's group commit (shared.http.sends)
    headers: Mapping[str, str] = field(default_factory=dict)  # case-insensitive (task targets read them)


Handler = Callable[[Call], Reply]
LoopHandler = Callable[[Call], Awaitable[Reply]]

_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class QueryParam:
    """A query parameter a route takes, as the OpenAPI document describes it (the handler parses it)."""

    name: str
    type: str = "string"  # JSON Schema type: string, integer, boolean
    description: str = ""
    format: str | None = None  # e.g. uuid, date-time
    minimum: int | None = None
    maximum: int | None = None
    default: Any = None
    required: bool = False


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    body_key: str | None = None  # bodies may also come nested under this key
    authenticated: bool = True
    status: int = 200
    query: tuple[QueryParam, ...] = ()  # the query parameters it takes: any other is a 400 (shared.http.api)
    # for the OpenAPI document (shared.http.openapi), which otherwise looks it up by handler:
    response: ResponseDoc | None = None  # the success body
    # the same as `handler`, awaited on the event loop instead of run in a worker thread (no
    # thread hop) when the caller's token is already verified: it must never block
    on_loop: LoopHandler | None = None
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = _PARAM.sub(lambda m: f"(?P<{m.group(1)}>[^/]+)", self.path)
        object.__setattr__(self, "pattern", re.compile(f"^{regex}/?$"))

    @property
    def params(self) -> list[str]:
        return _PARAM.findall(self.path)


def match(routes: list[Route], method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
    """The route for (method, path), its path parameters, and the methods the path allows.

    The most literal path wins: `/conversations/archived` is that path for every method (a PUT
    there is a 405), never `/conversations/{conversation_id}` with a bad id."""
    candidates = [(route, found) for route in routes if (found := route.pattern.match(path)) is not None]
    if not candidates:
        return None, {}, []
    best = min(len(route.params) for route, _ in candidates)
    same_path = [(route, found) for route, found in candidates if len(route.params) == best]
    for route, found in same_path:
        if route.method == method:
            return route, found.groupdict(), []
    return None, {}, [route.method for route, _ in same_path]


_SIMPLE_PATH = re.compile(r"(/([\w-]+|\{\w+\}))+")  # literal or whole-parameter segments only
_ANY = "{}"  # the bucket key of a route whose last segment is a parameter


def _shape(path: str) -> tuple[int, str]:
    """A request path's bucket: its number of segments and its last segment (one trailing
    slash is allowed, as the routes' patterns allow it)."""
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path.count("/"), path[path.rfind("/") + 1 :]


class RouteTable:
    """`match` over the routes, without trying every route's pattern on every request: routes
    are bucketed by segment count and last segment, and only the buckets a path can fall in
    are tried (in table order, so the answer is exactly `match(routes, ...)`'s). A route whose
    path is not made of plain segments is tried on every path."""

    def __init__(self, routes: list[Route]):
        self.routes = routes
        self._always: list[tuple[int, Route]] = []
        self._buckets: dict[tuple[int, str], list[tuple[int, Route]]] = {}
        for index, route in enumerate(routes):
            if not _SIMPLE_PATH.fullmatch(route.path):
                self._always.append((index, route))
                continue
            count, last = _shape(route.path)
            key = (count, _ANY if last.startswith("{") else last)
            self._buckets.setdefault(key, []).append((index, route))

    def candidates(self, path: str) -> list[Route]:
        count, last = _shape(path)
        found = [*self._buckets.get((count, last), ()), *self._buckets.get((count, _ANY), ()), *self._always]
        found.sort(key=lambda entry: entry[0])
        return [route for _, route in found]

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        return match(self.candidates(path), method, path)
