"""The relay alone (the Cloud Run service) answers the probes Terraform gives it: liveness at
/health, readiness at /health/ready naming what failed, and /metrics."""

from __future__ import annotations

from starlette.testclient import TestClient

from shared.auth.tokens import build_verifier
from shared.bootstrap import build_services
from shared.relay.server import create_relay_app
from tests.support import BASE, make_settings


def test_the_relay_serves_liveness_readiness_and_metrics(pg_url: str, key_path: str) -> None:
    settings = make_settings(pg_url, key_path)
    services = build_services(settings)
    try:
        with TestClient(create_relay_app(services, build_verifier(settings))) as client:
            assert client.get(f"{BASE}/health").status_code == 200
            ready = client.get(f"{BASE}/health/ready")
            assert ready.status_code == 200, ready.text
            assert "whispr_sockets_open" in client.get("/metrics").text

            def bus_down() -> None:
                raise ConnectionError("no bus")

            services.bus.ping = bus_down  # type: ignore[method-assign]
            refused = client.get(f"{BASE}/health/ready")
            assert refused.status_code == 503
            assert refused.json()["code"] == "not_ready" and refused.json()["details"]["failed"] == ["bus"]
    finally:
        services.close()
