"""`whispr-messaging`: run everything locally, apply migrations, mint local tokens."""

from __future__ import annotations

import argparse
import logging
import sys
import uuid

from shared.config import ConfigurationError, get_settings
from shared.telemetry.logs import setup_logging

log = logging.getLogger("whispr.cli")


def _dev(args: argparse.Namespace) -> int:
    import uvicorn
    from sqlalchemy.engine import make_url

    from shared.auth.tokens import build_verifier
    from shared.bootstrap import build_services, settle_interpreter
    from shared.http.gateway import create_gateway
    from shared.relay.server import uvicorn_options
    from shared.relay.shutdown import serve
    from shared.storage.migrate import upgrade

    settings = get_settings()
    host, port = args.host or settings.host, args.port or settings.port
    if not args.worker:
        upgrade(settings)
        store = make_url(settings.database_url).render_as_string(hide_password=True)
        log.info("Whispr messaging on http://%s:%s/messaging/api/v1 (store: %s)", host, port, store)
        log.info("Mint a token: whispr-messaging token <user-uuid>")
    workers = args.workers or settings.dev_workers
    if workers > 1 and not args.worker:
        from shared.devtools.workers import Supervisor

        log.info("%d worker processes on the port, events between them through a local bus", workers)
        log.info("gRPC is not served with --workers: run `whispr-messaging grpc` beside them")
        return Supervisor(host, port, workers, drain_seconds=settings.drain_seconds).run()
    services = build_services(settings)
    app = create_gateway(services, build_verifier(settings))
    services.scheduler.start()
    grpc_server = None
    if services.notifications is not None:  # pushes (every process: they share the work, SKIP LOCKED)
        services.notifications.start()
    if not args.worker:  # the third face: the gRPC shim on one more port
        from shared.rpc.server import BackgroundGrpc

        grpc_port = args.grpc_port if args.grpc_port is not None else settings.grpc_port
        try:
            grpc_server = BackgroundGrpc(services, host, grpc_port)
        except (OSError, RuntimeError) as exc:  # the HTTP faces still serve
            log.warning("gRPC not served: cannot listen on %s:%s (%s); set --grpc-port", host, grpc_port, exc)
        else:
            log.info("gRPC for sibling services on %s:%s (README: 'Calling the gRPC shim')", host, grpc_server.port)
    try:
        options = {
            "log_config": None,  # uvicorn logs through the one handler, at its levels (shared/telemetry/logs.py)
            "log_level": None,
            "access_log": False,
            **uvicorn_options(settings),
        }
        relay = app.state.relay  # SIGTERM drains its sockets first (shared/relay/shutdown.py)
        settle_interpreter()  # built: what startup made is out of the collector's way
        if args.worker:  # one of `dev --workers N`: the port is shared (SO_REUSEPORT)
            from shared.devtools.workers import reuse_port_socket

            serve(uvicorn.Config(app, **options), relay, [reuse_port_socket(host, port)])
        else:
            serve(uvicorn.Config(app, host=host, port=port, **options), relay)
    finally:
        if grpc_server is not None:
            grpc_server.stop()
        services.close()
    return 0


def _grpc(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from shared.bootstrap import build_services, settle_interpreter
    from shared.rpc.server import serve_until_signalled

    settings = get_settings()
    # Cloud Run says which port through PORT; WHISPR_GRPC_PORT elsewhere
    port = args.port or int(os.environ.get("PORT") or settings.grpc_port)
    services = build_services(settings)
    settle_interpreter()
    try:
        asyncio.run(serve_until_signalled(services, args.host or settings.host, port))
    finally:
        services.close()
    return 0


def _relay(args: argparse.Namespace) -> int:
    from shared.relay.server import run

    run(args.host, args.port)
    return 0


def _bench(args: argparse.Namespace) -> int:
    try:
        from bench.runner import main as bench_main  # imported only here: the package is at the repo root
    except ImportError:
        print("the benchmark runs from a checkout of the repository (the bench/ package)", file=sys.stderr)
        return 2
    return bench_main(args.bench_args)


def _cloud_local(args: argparse.Namespace) -> int:
    from shared.devtools.cloud_local import options_from, run

    return run(options_from(args))


def _migrate(args: argparse.Namespace) -> int:
    from shared.storage.migrate import upgrade

    upgrade(get_settings(), args.revision)
    print(f"migrated to {args.revision}")
    return 0


def _token(args: argparse.Namespace) -> int:
    from shared.auth.tokens import mint_dev_token

    settings = get_settings()
    if settings.uses_jwks:
        print("JWT_JWKS_URL is set: tokens come from the auth service, not from here", file=sys.stderr)
        return 2
    try:
        user_id = str(uuid.UUID(args.user_id))
    except ValueError:
        print(f"not a UUID: {args.user_id}", file=sys.stderr)
        return 2
    print(mint_dev_token(settings, user_id, device_id=args.device, ttl_seconds=args.ttl))
    return 0


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # the benchmark parses its own flags (bench/runner.py)
        return _bench(argparse.Namespace(bench_args=argv[1:]))
    parser = argparse.ArgumentParser(prog="whispr-messaging", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run the gateway locally (SQLite under ./var, migrations applied)")
    dev.add_argument("--host")
    dev.add_argument("--port", type=int)
    dev.add_argument(
        "--workers", type=int, help="worker processes sharing the port, a local bus between them (WHISPR_DEV_WORKERS)"
    )
    dev.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # started by --workers
    dev.add_argument("--grpc-port", type=int, help="the gRPC shim's port (WHISPR_GRPC_PORT, 9090; 0: a free one)")
    dev.set_defaults(run=_dev)

    grpc = sub.add_parser("grpc", help="run the gRPC shim alone (the Cloud Run service; PORT or WHISPR_GRPC_PORT)")
    grpc.add_argument("--host")
    grpc.add_argument("--port", type=int)
    grpc.set_defaults(run=_grpc)

    relay = sub.add_parser("relay", help="run the WebSocket relay alone (the Cloud Run service)")
    relay.add_argument("--host")
    relay.add_argument("--port", type=int)
    relay.set_defaults(run=_relay)

    bench = sub.add_parser(
        "bench",
        add_help=False,
        help="run the benchmark (docs/performance.md): B1-B6, Synapse, ceilings; --help for flags",
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(run=_bench)

    cloud_local = sub.add_parser(
        "cloud-local", help="the Google Cloud layout on this machine: emulators, PostgreSQL, gateway, two relays"
    )
    cloud_local.add_argument("--gateway-port", type=int, default=4000, help="REST gateway (0: a free port)")
    cloud_local.add_argument("--relay-ports", default="4001,4002", help="the two relays' ports (0,0: free ports)")
    cloud_local.add_argument(
        "--events-port", type=int, default=4003, help="the events function, pushed to by Pub/Sub (0: a free port)"
    )
    cloud_local.add_argument(
        "--sweep-seconds",
        type=float,
        default=60.0,
        help="how often POST /tasks/sweep runs, as Cloud Scheduler does (0: never)",
    )
    cloud_local.add_argument("--info-file", default="", help="once ready, write URLs, environment and pids here (JSON)")
    cloud_local.add_argument("--keep-logs", action="store_true", help="keep the state directory (logs, key) at exit")
    cloud_local.set_defaults(run=_cloud_local)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(run=_migrate)

    token = sub.add_parser("token", help="print a local access token for a user")
    token.add_argument("user_id")
    token.add_argument("--device", help="device id (default: a new random one)")
    token.add_argument("--ttl", type=int, default=86400, help="lifetime in seconds")
    token.set_defaults(run=_token)

    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigurationError as exc:  # refuse to start, naming each bad variable and its rule
        log.critical("whispr-messaging %s: %s", args.command, exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
