"""The reliability suite (issue 10) uses the relay tests' servers: limits raised so that tests
open many sockets and push freely, and `serve_with` for a server with some limits changed.
`own_service`: the service as its own process, for tests whose input might bring it down (a
crash then fails the test, not the run)."""

from collections.abc import Iterator

import pytest

from shared.bootstrap import build_services
from shared.devtools.postgres import free_port
from tests.relay.conftest import FREE, phoenix_js, relay, serve_with
from tests.support import RunningServer, fresh_database, make_settings, service_env, service_process

__all__ = ["own_service", "phoenix_js", "relay", "serve_with"]


@pytest.fixture(scope="module")
def own_service(
    request: pytest.FixtureRequest, pg_url: str, key_path: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """`python -m shared.cli dev` on a database of the test module's own, with the relay tests'
    free limits; `.proc` is the process (the test checks that it is alive)."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    database_url = fresh_database(pg_url, f"whispr_{name}", key_path)
    port = free_port()
    env = service_env(database_url, key_path, port, FREE, WHISPR_SEARCHES_PER_HOUR="1000000")
    services = build_services(make_settings(database_url, key_path, **FREE))  # tokens
    try:
        with service_process(env, port, tmp_path_factory.mktemp(name) / "service.log") as proc:
            running = RunningServer(f"http://127.0.0.1:{port}", services)
            running.proc = proc  # type: ignore[attr-defined]
            yield running
    finally:
        services.close()
