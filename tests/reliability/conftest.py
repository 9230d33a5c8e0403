"""The reliability suite (issue 10) uses the relay tests' servers: limits raised so that tests
open many sockets and push freely, and `serve_with` for a server with some limits changed."""

from tests.relay.conftest import phoenix_js, relay, serve_with

__all__ = ["phoenix_js", "relay", "serve_with"]
