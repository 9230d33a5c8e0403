"""`python -m shared.rpc.probe`: exit 0 if the gRPC shim on this machine answers SERVING to the
standard health check, 1 otherwise. The image's HEALTHCHECK (Cloud Run probes with its own
gRPC health check, on the same service)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def probe(address: str, timeout: float = 5.0) -> bool:
    with grpc.insecure_channel(address) as channel:
        stub: Any = health_pb2_grpc.HealthStub(channel)  # its typing stubs do not declare the methods
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.rpc.probe", description=__doc__.split("\n")[0])
    default_port = os.environ.get("PORT") or os.environ.get("WHISPR_GRPC_PORT") or "9090"
    parser.add_argument("--port", type=int, default=int(default_port), help="default: PORT, WHISPR_GRPC_PORT, 9090")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    serving = probe(f"{args.host}:{args.port}")
    print("SERVING" if serving else "NOT SERVING")
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
