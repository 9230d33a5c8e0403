"""One settings module: every limit and every adapter choice comes from the environment.

Names are `WHISPR_<FIELD>` in upper case (for example `WHISPR_MAX_CONTENT_BYTES`), except the
few the spec names itself (`DATABASE_URL`, `JWT_JWKS_URL`, `JWT_ISSUER`, `JWT_AUDIENCE`).

Every field is typed and bounded here, in one place: `Settings` and `Limits` are pydantic
dataclasses, so a value out of its bounds is refused wherever settings are built (from the
environment by `load_settings`, or in code and tests with `Settings(...)` /
`dataclasses.replace`), and `load_settings` turns the refusal into a `ConfigurationError` that
names each variable and its rule. Why pydantic dataclasses and not a pydantic-settings
`BaseSettings`: the code and the tests build and copy settings as dataclasses (`Settings(...)`,
`dataclasses.replace`) and must not read the environment when they do; and the limits keep
their flat `WHISPR_<LIMIT>` names although the code reads them as `settings.limits.<limit>`,
which BaseSettings would nest (`WHISPR_LIMITS__…`). Reading the environment is a dictionary
lookup per field (`load_settings`); pydantic, which pydantic-settings is built on, does the rest.
An unknown `WHISPR_*` variable is warned about with the nearest known name.

docs/configuration.md documents every variable; tests/infra/test_configuration_doc.py checks it
against these definitions (names both ways, and defaults).
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import field, fields
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass

log = logging.getLogger("whispr.config")

_SPEC_NAMES = {
    "database_url": "DATABASE_URL",
    "jwt_jwks_url": "JWT_JWKS_URL",
    "jwt_issuer": "JWT_ISSUER",
    "jwt_audience": "JWT_AUDIENCE",
    # what Terraform sets for every runtime component (terraform/main.tf, common_env)
    "user_service_grpc_endpoint": "USER_SERVICE_GRPC_ENDPOINT",
    "media_service_grpc_endpoint": "MEDIA_SERVICE_GRPC_ENDPOINT",
    "notification_service_grpc_endpoint": "NOTIFICATION_SERVICE_GRPC_ENDPOINT",
}

# WHISPR_* variables read directly by tools, not settings of the service (docs/configuration.md,
# "Set by the platform or for tools"): known, so not warned about.
TOOL_VARIABLES = frozenset(
    {
        "WHISPR_PG_BIN",
        "WHISPR_GCLOUD_SDK",
        "WHISPR_TEST_DATABASE_URL",
        "WHISPR_FUZZ_EXAMPLES",
        "WHISPR_SOAK",
        "WHISPR_AUDIT_STRICT",
        "WHISPR_CHROMIUM",
        "WHISPR_TEST_ARTIFACTS",
    }
)

# Fields whose value is never echoed in an error message.
_SECRET_FIELDS = frozenset({"database_url", "tasks_secret", "grpc_shared_secret", "sibling_shared_secret"})

# The kinds of value, with their bounds. `Count`: how many of something (at least one);
# `Seconds`: a duration (more than zero).
Count = Annotated[int, Field(ge=1)]
Bytes = Annotated[int, Field(ge=1)]
Seconds = Annotated[float, Field(gt=0)]
WholeSeconds = Annotated[int, Field(ge=0)]
NonEmpty = Annotated[str, Field(min_length=1)]


def _proxy_list(value: str) -> str:
    """Comma-separated IP addresses or networks (`10.0.0.0/8`), each one valid."""
    import ipaddress

    for entry in value.split(","):
        if entry.strip():
            ipaddress.ip_network(entry.strip(), strict=False)  # ValueError names the bad one
    return value


ProxyList = Annotated[str, AfterValidator(_proxy_list)]


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def normalise_database_url(url: str) -> str:
    """The one place a `DATABASE_URL` is read: a PostgreSQL URL without a driver
    (`postgresql://`, `postgres://`) means psycopg 3, the driver the service is measured with
    (docs/performance.md, "The database driver"); an explicit one (`postgresql+pg8000://`) is
    kept. Every engine (the service's, the migrations') is built from the result."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    for short in ("postgresql://", "postgres://"):
        if url.startswith(short):
            url = "postgresql+psycopg://" + url[len(short) :]
    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, ValueError) as exc:
        raise ValueError("not a SQLAlchemy URL (forms: docs/configuration.md)") from exc
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported database {backend!r}: sqlite or postgresql")
    return url


def _algorithms_allowed(value: str) -> str:
    names = [a.strip() for a in value.split(",") if a.strip()]
    if not names:
        raise ValueError("at least one algorithm")
    refused = [a for a in names if a.upper().startswith("HS") or a.lower() == "none"]
    if refused:
        raise ValueError(f"asymmetric algorithms only ({', '.join(refused)} refused)")
    return value


def _http_url_or_empty(value: str) -> str:
    if value and not value.startswith(("https://", "http://")):
        raise ValueError("an http(s) URL, or empty")
    return value


DatabaseUrl = Annotated[str, AfterValidator(normalise_database_url)]
LogLevel = Annotated[Literal["debug", "info", "warning", "error", "critical"], BeforeValidator(_lower)]
Component = Annotated[Literal["", "function", "relay", "grpc", "gateway"], BeforeValidator(_lower)]
SchedulerKind = Annotated[Literal["local", "cloudtasks", "none"], BeforeValidator(_lower)]
EventBusKind = Annotated[Literal["inprocess", "local", "pubsub"], BeforeValidator(_lower)]
StateStoreKind = Annotated[Literal["memory", "firestore"], BeforeValidator(_lower)]
HttpUrl = Annotated[str, AfterValidator(_http_url_or_empty)]
Algorithms = Annotated[str, AfterValidator(_algorithms_allowed)]

_STRICT = ConfigDict(extra="forbid")


@dataclass(frozen=True, config=_STRICT)
class Limits:
    """Business limits from rules.md. All configurable, enforced on every entry point."""

    max_content_bytes: Bytes = 64 * 1024
    max_metadata_bytes: Bytes = 16 * 1024
    # client JSON values (metadata...) nest at most this deep: at most 128, the depth stored
    # values are read back within (docs/reliability.md)
    max_json_depth: Annotated[int, Field(ge=1, le=128)] = 32
    max_request_bytes: Bytes = 256 * 1024
    max_group_name_chars: Count = 100
    max_custom_name_chars: Count = 50
    max_group_members: Annotated[int, Field(ge=2)] = 1024
    max_pinned_conversations: Count = 5
    max_pinned_messages: Count = 10
    edit_window_seconds: WholeSeconds = 15 * 60
    delete_for_everyone_window_seconds: WholeSeconds = 24 * 3600
    client_random_window_seconds: WholeSeconds = 24 * 3600
    history_default_limit: Count = 50
    history_max_limit: Count = 100
    messages_per_minute: Count = 100
    messages_burst: Count = 20
    key_changes_per_hour: Count = 30  # sender key changes per (user, device): logins, prekey replenishments
    key_change_burst: Count = 10
    replaced_key_grace_seconds: WholeSeconds = (
        24 * 3600
    )  # a replaced sender key still signs this long (queued messages)
    group_creations_per_day: Count = 10
    # reactions, drafts, attachments, forwarding
    max_reactions_per_user_per_message: Count = 5
    max_distinct_reactions_per_message: Count = 50
    max_draft_bytes: Bytes = 64 * 1024
    max_attachments_per_message: Count = 20
    max_forward_targets: Count = 20
    # search
    searches_per_hour: Count = 500
    search_default_limit: Count = 20
    search_max_limit: Count = 100
    max_search_query_chars: Count = 512
    # moderation
    reports_per_day: Count = 20
    report_cooldown_seconds: WholeSeconds = 24 * 3600
    max_report_reason_chars: Count = 1000
    max_sanction_seconds: Annotated[int, Field(ge=1)] = 365 * 24 * 3600
    # scheduled messages (rules.md: Scheduled; Abuse)
    scheduled_min_lead_seconds: WholeSeconds = 60
    scheduled_max_lead_seconds: Annotated[int, Field(ge=1)] = 365 * 24 * 3600
    max_pending_scheduled_per_user: Count = 50
    scheduled_per_hour: Count = 10
    # WebSocket relay (realtime.md): frames, idle sockets, per-connection and per-IP limits
    ws_max_pending_per_socket: Count = 256  # joins and pushes waiting or running, per socket
    ws_worker_slots_per_socket: Count = 4  # of those, how many use worker threads at once
    ws_max_frame_bytes: Bytes = 64 * 1024  # larger frames get an error reply, the socket stays
    ws_frame_hard_cap_bytes: Bytes = 4 * 1024 * 1024  # larger ones close the socket (1009)
    ws_idle_timeout_seconds: Seconds = 60.0
    ws_pushes_per_minute: Count = 200
    ws_push_burst: Count = 50
    ws_sockets_per_ip: Count = 10
    ws_send_queue_bytes: Bytes = 4 * 1024 * 1024
    ws_catch_up_max_messages: Count = 500
    typing_expiry_seconds: Seconds = 10.0
    presence_away_seconds: Seconds = 300.0  # rules.md: away after 5 minutes without activity
    ws_gap_fill_seconds: Seconds = 0.5  # a message event missing this long past a later one is read from the store

    @property
    def ws_frame_hard_cap(self) -> int:
        """The largest frame read at all (never below the frame limit)."""
        return max(self.ws_frame_hard_cap_bytes, self.ws_max_frame_bytes)


# Pool (size, overflow) per component. A function instance serves few requests at a time and
# there may be hundreds of instances: small pools keep Cloud SQL's max_connections within reach.
# The relay runs many sockets' pushes (and group commits) through one process: a larger pool.
_COMPONENT_POOLS: dict[str, tuple[int, int]] = {
    "function": (2, 2),
    "relay": (10, 20),
    "grpc": (5, 10),
    "gateway": (10, 10),
    "": (10, 10),
}


@dataclass(frozen=True, config=_STRICT)
class Settings:
    database_url: DatabaseUrl = "sqlite:///var/whispr.db"
    # SQLAlchemy pool per process; 0 / -1 (the defaults): sized for WHISPR_COMPONENT (see db_pool)
    db_pool_size: Annotated[int, Field(ge=0, le=1000)] = 0
    db_max_overflow: Annotated[int, Field(ge=-1, le=1000)] = -1
    component: Component = ""  # WHISPR_COMPONENT: function | relay | grpc | gateway (empty: gateway)
    # how long marks of published events are gathered before one transaction writes them all;
    # -1 (the default): by component (see publication_marks_delay)
    publication_marks_delay_ms: Annotated[float, Field(ge=-1, le=5000)] = -1
    jwt_jwks_url: HttpUrl = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_algorithms: Algorithms = "ES256"
    jwks_refetch_interval_seconds: Annotated[float, Field(ge=0)] = 30.0
    # a key withdrawn from the JWKS stops being accepted within this time: the key set is
    # refetched once half of it old, and a verified token is remembered at most half of it
    jwks_max_age_seconds: Annotated[float, Field(gt=0, le=86400)] = 600.0
    # clock skew allowed on a token's exp/nbf/iat; a socket is served until exp plus this
    jwt_leeway_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0  # WHISPR_JWT_LEEWAY_SECONDS
    dev_key_path: NonEmpty = "var/dev-signing-key.pem"
    cors_origins: str = "*"
    host: NonEmpty = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 4000
    dev_workers: Count = 1  # WHISPR_DEV_WORKERS: `dev` worker processes sharing the port (--workers)
    log_level: LogLevel = "info"
    # X-Forwarded-For is believed only as written by these proxies (shared/http/forwarded.py):
    # the last N entries (Cloud Run's front end: 1), and what the listed addresses appended
    trusted_proxy_hops: Annotated[int, Field(ge=0, le=16)] = 0  # WHISPR_TRUSTED_PROXY_HOPS
    trusted_proxies: ProxyList = ""  # WHISPR_TRUSTED_PROXIES: comma-separated addresses or networks
    # rate limits: memory (this process) or sql (shared by every instance, in PostgreSQL)
    rate_limiter: Annotated[Literal["memory", "sql"], BeforeValidator(_lower)] = "memory"
    # traces: none (off, no cost), gcp (Cloud Trace), otlp (OTEL_EXPORTER_OTLP_ENDPOINT)
    trace_exporter: Annotated[Literal["none", "gcp", "otlp"], BeforeValidator(_lower)] = "none"
    # per process: connections (HTTP and WebSocket) held at once, beyond which new ones get 503;
    # time a connection has to send its request's headers (slowloris), shared/http/connection_guard.py
    # worker threads (each may hold a pool connection) the relay's joins, pushes and upgrades use
    # at once; 0: half of this process's pool, so that REST requests always find threads and
    # connections of their own whatever the sockets' backlog (shared/relay/channels.py)
    relay_worker_threads: Annotated[int, Field(ge=0, le=1000)] = 0  # WHISPR_RELAY_WORKER_THREADS
    max_connections: Count = 10_000  # WHISPR_MAX_CONNECTIONS
    header_timeout_seconds: Seconds = 10.0  # WHISPR_HEADER_TIMEOUT_SECONDS
    # graceful shutdown (SIGTERM): sockets told to reconnect elsewhere over this window, then the
    # process exits; under Cloud Run's fixed 10 s grace (docs/operations.md, "Shutting down")
    drain_seconds: Annotated[float, Field(gt=0, le=300)] = 5.0  # WHISPR_DRAIN_SECONDS
    log_format: Annotated[Literal["auto", "json", "text"], BeforeValidator(_lower)] = "auto"  # auto: text on a terminal
    moderator_ids: str = ""  # WHISPR_MODERATOR_IDS: comma-separated user ids of global moderators
    # scheduler port: "local" (in-process timer over the store), "cloudtasks" (Cloud Tasks, one
    # task per item) or "none" (nothing fires here)
    scheduler: SchedulerKind = "local"
    scheduler_rescan_seconds: Seconds = 300.0  # the local timer also rereads the store this often
    scheduler_lease_seconds: Seconds = 60.0  # a claimed scheduled message not finished by then is retried
    tasks_secret: str = ""  # WHISPR_TASKS_SECRET: required by the /tasks/* routes (Cloud Tasks targets)
    # Cloud Tasks scheduler (WHISPR_SCHEDULER=cloudtasks)
    tasks_queue: str = ""  # projects/<project>/locations/<region>/queues/<queue>
    tasks_target_url: HttpUrl = ""  # base URL of the `tasks` function (or the local gateway)
    tasks_invoker_email: str = ""  # service account whose OIDC token the tasks carry (empty: none)
    tasks_audience: str = ""  # the OIDC token's audience (empty: tasks_target_url)
    tasks_emulator_host: str = ""  # host:port of a Cloud Tasks emulator (plain gRPC, no credentials)
    # items due further ahead wait for the sweep; Cloud Tasks takes at most 30 days
    tasks_horizon_seconds: Annotated[float, Field(gt=0, le=30 * 86400)] = 30 * 86400 - 3600
    # adapters (see docs/configuration.md): embedded defaults, or Google Cloud / its emulators
    event_bus: EventBusKind = "inprocess"  # WHISPR_EVENT_BUS: inprocess | local (dev --workers) | pubsub
    bus_socket: str = ""  # WHISPR_BUS_SOCKET: the local bus broker's Unix socket (event_bus=local)
    gcp_project: NonEmpty = "whispr-local"  # WHISPR_GCP_PROJECT
    pubsub_conversation_topic: NonEmpty = "messaging-conversation-events"
    pubsub_domain_topic: NonEmpty = "messaging-domain-events"
    pubsub_create_missing: bool = False  # create topics at start (emulator / local only)
    instance_id: str = ""  # names this process's Pub/Sub subscription; random when empty
    # group commit on the relay's send path (docs/performance.md, "Group commit"): socket sends
    # arriving within the window (from the first one waiting), up to `send_batch_max` of them,
    # share one transaction; at most `send_batch_parallel` batches are in flight at once (one:
    # two batch threads and the event loop fought for the GIL, docs/performance.md).
    send_batch_window_ms: Annotated[float, Field(ge=0)] = 1.0  # 0: no waiting, batch what queued up
    send_batch_max: Annotated[int, Field(ge=1, le=10_000)] = 64  # 1 turns group commit off
    send_batch_parallel: Annotated[int, Field(ge=1, le=64)] = 1
    # state store port (presence, device sessions): "memory" (this process) or "firestore"
    state_store: StateStoreKind = "memory"  # WHISPR_STATE_STORE: memory | firestore
    firestore_database: NonEmpty = "(default)"  # WHISPR_FIRESTORE_DATABASE (project: WHISPR_GCP_PROJECT)
    presence_heartbeat_seconds: Seconds = 15.0  # a relay instance proves its sessions alive this often
    presence_lease_seconds: Seconds = 45.0  # sessions of an instance silent this long are over
    presence_tick_seconds: Seconds = 5.0  # the relay's presence upkeep (away, lapsed instances)
    # gRPC shim (`whispr-messaging grpc`; docs/configuration.md, "gRPC shim"). Callers authenticate
    # with a shared secret in metadata and/or a Google ID token for `grpc_audience`; with
    # neither configured, calls are not authenticated (local mode, logged once at start).
    grpc_port: Annotated[int, Field(ge=0, le=65535)] = 9090  # `dev` serves gRPC here too; Cloud Run: PORT
    grpc_shared_secret: str = ""  # WHISPR_GRPC_SHARED_SECRET: metadata `x-whispr-service-secret`
    grpc_audience: str = ""  # WHISPR_GRPC_AUDIENCE: required `aud` of callers' ID tokens (enables them)
    grpc_jwks_url: HttpUrl = "https://www.googleapis.com/oauth2/v3/certs"  # keys of those ID tokens
    grpc_token_issuers: str = "https://accounts.google.com,accounts.google.com"  # accepted `iss`
    grpc_allowed_callers: str = ""  # WHISPR_GRPC_ALLOWED_CALLERS: token emails allowed (empty: any)
    grpc_shutdown_grace_seconds: Seconds = 10.0  # SIGTERM: in-flight calls get this long to finish
    # `grpc` and `relay` serve /metrics (Prometheus) on this port, for the Managed Prometheus
    # sidecar on Cloud Run (terraform/run.tf), and not on the port they take requests on; 0: the
    # relay answers /metrics on its own port, the gRPC shim does not serve it
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 0
    # sibling services (shared/adapters/grpc_siblings.py): empty endpoint = permissive local policy;
    # `host:port` plaintext (private network), `grpcs://host:port` TLS
    user_service_grpc_endpoint: str = ""
    media_service_grpc_endpoint: str = ""
    notification_service_grpc_endpoint: str = ""
    sibling_deadline_seconds: Seconds = 5.0  # a call's whole budget, retries included
    sibling_max_retries: Annotated[int, Field(ge=0, le=10)] = 3  # on UNAVAILABLE only, jittered backoff
    sibling_breaker_failures: Count = 5  # consecutive failures that open a service's circuit
    sibling_breaker_reset_seconds: Seconds = 30.0  # open this long, then one half-open probe
    block_cache_seconds: Annotated[float, Field(ge=0)] = 30.0  # CheckUserBlocks answers kept this long
    # pushes to offline members (shared/app/notifications.py): how often the worker looks at the
    # outbox and its queue, and how far it backs off while the notification service is down
    notifications_poll_seconds: Seconds = 1.0
    notifications_max_backoff_seconds: Seconds = 60.0
    # what calls to the siblings carry (shared/adapters/sibling_credentials.py): none, a Google
    # ID token for each service's audience (Cloud Run IAM), or the shared secret in metadata
    sibling_auth: Annotated[Literal["none", "id_token", "secret"], BeforeValidator(_lower)] = "none"
    sibling_shared_secret: str = ""  # WHISPR_SIBLING_SHARED_SECRET: sent as `x-whispr-service-secret`
    user_service_audience: str = ""  # WHISPR_USER_SERVICE_AUDIENCE (empty: the endpoint's https URL)
    media_service_audience: str = ""  # WHISPR_MEDIA_SERVICE_AUDIENCE
    notification_service_audience: str = ""  # WHISPR_NOTIFICATION_SERVICE_AUDIENCE
    limits: Limits = field(default_factory=Limits)
    # WHISPR_ENV=production (Terraform sets it) refuses the settings only fit for development
    env: Annotated[Literal["development", "production"], BeforeValidator(_lower)] = "development"

    @model_validator(mode="after")
    def _sibling_secret_given(self) -> Settings:
        if self.sibling_auth == "secret" and not self.sibling_shared_secret:
            raise ValueError("WHISPR_SIBLING_AUTH=secret needs WHISPR_SIBLING_SHARED_SECRET")
        return self

    @model_validator(mode="after")
    def _safe_in_production(self) -> Settings:
        if self.env != "production":
            return self
        checks = {
            "JWT_JWKS_URL is empty: tokens would be checked against the local dev signing key": not self.jwt_jwks_url,
            "JWT_ISSUER is empty: any issuer would be accepted": not self.jwt_issuer,
            "JWT_AUDIENCE is empty: tokens minted for any service would be accepted": not self.jwt_audience,
            "WHISPR_CORS_ORIGINS allows every origin (*)": "*" in self.cors_origins,
            "WHISPR_TASKS_SECRET is empty: the /tasks/* routes would have no shared secret": not self.tasks_secret,
            "WHISPR_GRPC_SHARED_SECRET and WHISPR_GRPC_AUDIENCE are empty: the gRPC shim would take any caller": (
                self.component == "grpc" and not self.grpc_shared_secret and not self.grpc_audience
            ),
        }
        unsafe = [problem for problem, failed in checks.items() if failed]
        if unsafe:
            raise ValueError("WHISPR_ENV=production refuses: " + "; ".join(unsafe))
        return self

    @property
    def db_pool(self) -> tuple[int, int]:
        """(pool_size, max_overflow) of this process's SQLAlchemy pool: the explicit
        WHISPR_DB_POOL_SIZE / WHISPR_DB_MAX_OVERFLOW, else what suits WHISPR_COMPONENT."""
        size, overflow = _COMPONENT_POOLS[self.component]
        return (
            self.db_pool_size if self.db_pool_size > 0 else size,
            self.db_max_overflow if self.db_max_overflow >= 0 else overflow,
        )

    @property
    def publication_marks_delay(self) -> float:
        """Seconds marks of published events wait to be written together
        (`shared.app.publication_marks`): WHISPR_PUBLICATION_MARKS_DELAY_MS, else 0 (each unit
        marks its own) in a function, whose CPU is throttled between requests so a thread of its
        own could not be counted on, and 50 ms in the long-running components."""
        if self.publication_marks_delay_ms >= 0:
            return self.publication_marks_delay_ms / 1000.0
        return 0.0 if self.component == "function" else 0.05

    @property
    def relay_workers(self) -> int:
        """Worker threads for the relay's calls: WHISPR_RELAY_WORKER_THREADS, else half the pool."""
        return self.relay_worker_threads or max(2, sum(self.db_pool) // 2)

    @property
    def algorithms(self) -> list[str]:
        return [a.strip() for a in self.jwt_algorithms.split(",") if a.strip()]

    @property
    def uses_jwks(self) -> bool:
        return bool(self.jwt_jwks_url)

    @property
    def grpc_callers(self) -> frozenset[str]:
        return frozenset(e.strip().lower() for e in self.grpc_allowed_callers.split(",") if e.strip())

    @property
    def grpc_issuers(self) -> list[str]:
        return [i.strip() for i in self.grpc_token_issuers.split(",") if i.strip()]

    @property
    def moderators(self) -> frozenset[str]:
        return frozenset(u.strip().lower() for u in self.moderator_ids.split(",") if u.strip())


class ConfigurationError(ValueError):
    """Settings the service refuses to start with; the message names every variable and rule."""


def env_name(name: str) -> str:
    """The environment variable of a field of `Settings` or `Limits`."""
    return _SPEC_NAMES.get(name, f"WHISPR_{name.upper()}")


_env_name = env_name  # the name tests/infra/test_configuration_doc.py imported first


def known_variables() -> frozenset[str]:
    """Every variable this code reads: one per setting and limit, and the tools' own."""
    names = {env_name(f.name) for f in fields(Settings) if f.name != "limits"}
    names |= {env_name(f.name) for f in fields(Limits)}
    return frozenset(names | TOOL_VARIABLES)


def unknown_variables(env: dict[str, str]) -> list[tuple[str, str | None]]:
    """`WHISPR_*` variables set but read by nothing, each with the nearest known name (or None)."""
    known = known_variables()
    by_suffix = {name.removeprefix("WHISPR_"): name for name in known}  # compare what follows WHISPR_
    found = []
    for name in sorted(env):
        if name.startswith("WHISPR_") and name not in known:
            nearest = difflib.get_close_matches(name.removeprefix("WHISPR_"), by_suffix, n=1, cutoff=0.75)
            found.append((name, by_suffix[nearest[0]] if nearest else None))
    return found


def _describe(error: dict[str, Any], raw: dict[str, str]) -> str:
    field_name = next((str(part) for part in reversed(error["loc"]) if isinstance(part, str)), "")
    rule = str(error["msg"]).removeprefix("Value error, ")
    if not field_name:  # a rule over several settings names them itself
        return rule
    variable = env_name(field_name)
    if field_name in _SECRET_FIELDS or variable not in raw:
        return f"{variable}: {rule}"
    return f"{variable}={raw[variable]!r}: {rule}"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build settings from environment variables (or an explicit mapping, for tests).

    Raises ConfigurationError naming each bad variable and its rule; warns (logger
    `whispr.config`) about each unknown `WHISPR_*` variable with the nearest known name."""
    env = dict(os.environ) if env is None else env
    for name, nearest in unknown_variables(env):
        hint = f"; did you mean {nearest}?" if nearest else ""
        log.warning("unknown setting %s is ignored%s", name, hint)
    limits = {f.name: env[env_name(f.name)] for f in fields(Limits) if env_name(f.name) in env}
    values: dict[str, Any] = {
        f.name: env[env_name(f.name)] for f in fields(Settings) if f.name != "limits" and env_name(f.name) in env
    }
    raw = {env_name(name): value for name, value in (values | limits).items()}
    values["limits"] = limits
    try:
        return Settings(**values)  # pydantic parses the strings (and the limits' mapping)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(dict(error), raw) for error in exc.errors())
        raise ConfigurationError(f"refusing to start with these settings:\n  {problems}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
