"""One settings module: every limit and every adapter choice comes from the environment.

Names are `WHISPR_<FIELD>` in upper case (for example `WHISPR_MAX_CONTENT_BYTES`), except the
few the spec names itself (`DATABASE_URL`, `JWT_JWKS_URL`, `JWT_ISSUER`, `JWT_AUDIENCE`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any

_SPEC_NAMES = {
    "database_url": "DATABASE_URL",
    "jwt_jwks_url": "JWT_JWKS_URL",
    "jwt_issuer": "JWT_ISSUER",
    "jwt_audience": "JWT_AUDIENCE",
}


@dataclass(frozen=True)
class Limits:
    """Business limits from rules.md. All configurable, enforced on every entry point."""

    max_content_bytes: int = 64 * 1024
    max_metadata_bytes: int = 16 * 1024
    max_json_depth: int = 32  # client JSON values (metadata...) nest at most this deep (at most 128)
    max_request_bytes: int = 256 * 1024
    max_group_name_chars: int = 100
    max_custom_name_chars: int = 50
    max_group_members: int = 1024
    max_pinned_conversations: int = 5
    max_pinned_messages: int = 10
    edit_window_seconds: int = 15 * 60
    delete_for_everyone_window_seconds: int = 24 * 3600
    client_random_window_seconds: int = 24 * 3600
    history_default_limit: int = 50
    history_max_limit: int = 100
    messages_per_minute: int = 100
    messages_burst: int = 20
    key_changes_per_hour: int = 30  # sender key changes per (user, device): logins, prekey replenishments
    key_change_burst: int = 10
    replaced_key_grace_seconds: int = 24 * 3600  # a replaced sender key still signs this long (queued messages)
    group_creations_per_day: int = 10
    # reactions, drafts, attachments, forwarding
    max_reactions_per_user_per_message: int = 5
    max_distinct_reactions_per_message: int = 50
    max_draft_bytes: int = 64 * 1024
    max_attachments_per_message: int = 20
    max_forward_targets: int = 20
    # search
    searches_per_hour: int = 500
    search_default_limit: int = 20
    search_max_limit: int = 100
    max_search_query_chars: int = 512
    # moderation
    reports_per_day: int = 20
    report_cooldown_seconds: int = 24 * 3600
    max_report_reason_chars: int = 1000
    max_sanction_seconds: int = 365 * 24 * 3600
    # scheduled messages (rules.md: Scheduled; Abuse)
    scheduled_min_lead_seconds: int = 60
    scheduled_max_lead_seconds: int = 365 * 24 * 3600
    max_pending_scheduled_per_user: int = 50
    scheduled_per_hour: int = 10
    # WebSocket relay (realtime.md): frames, idle sockets, per-connection and per-IP limits
    ws_max_frame_bytes: int = 64 * 1024
    ws_idle_timeout_seconds: float = 60.0
    ws_pushes_per_minute: int = 200
    ws_push_burst: int = 50
    ws_sockets_per_ip: int = 10
    ws_send_queue_bytes: int = 4 * 1024 * 1024
    ws_catch_up_max_messages: int = 500
    typing_expiry_seconds: float = 10.0
    presence_away_seconds: float = 300.0  # rules.md: away after 5 minutes without activity
    ws_gap_fill_seconds: float = 0.5  # a message event missing this long past a later one is read from the store


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


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///var/whispr.db"
    # SQLAlchemy pool per process; 0 / -1 (the defaults): sized for WHISPR_COMPONENT (see db_pool)
    db_pool_size: int = 0
    db_max_overflow: int = -1
    component: str = ""  # WHISPR_COMPONENT: function | relay | grpc | gateway (empty: gateway)
    jwt_jwks_url: str = ""
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_algorithms: str = "ES256"
    jwks_refetch_interval_seconds: float = 30.0
    dev_key_path: str = "var/dev-signing-key.pem"
    cors_origins: str = "*"
    host: str = "127.0.0.1"
    port: int = 4000
    log_level: str = "info"
    moderator_ids: str = ""  # WHISPR_MODERATOR_IDS: comma-separated user ids of global moderators
    # scheduler port: "local" (in-process timer over the store), "cloudtasks" (Cloud Tasks, one
    # task per item) or "none" (nothing fires here)
    scheduler: str = "local"
    scheduler_rescan_seconds: float = 300.0  # the local timer also rereads the store this often
    scheduler_lease_seconds: float = 60.0  # a claimed scheduled message not finished by then is retried
    tasks_secret: str = ""  # WHISPR_TASKS_SECRET: required by the /tasks/* routes (Cloud Tasks targets)
    # Cloud Tasks scheduler (WHISPR_SCHEDULER=cloudtasks)
    tasks_queue: str = ""  # projects/<project>/locations/<region>/queues/<queue>
    tasks_target_url: str = ""  # base URL of the `tasks` function (or the local gateway)
    tasks_invoker_email: str = ""  # service account whose OIDC token the tasks carry (empty: none)
    tasks_audience: str = ""  # the OIDC token's audience (empty: tasks_target_url)
    tasks_emulator_host: str = ""  # host:port of a Cloud Tasks emulator (plain gRPC, no credentials)
    tasks_horizon_seconds: float = 30 * 86400 - 3600  # items due further ahead wait for the sweep
    # adapters (see docs/configuration.md): embedded defaults, or Google Cloud / its emulators
    event_bus: str = "inprocess"  # WHISPR_EVENT_BUS: inprocess | pubsub
    gcp_project: str = "whispr-local"  # WHISPR_GCP_PROJECT
    pubsub_conversation_topic: str = "messaging-conversation-events"
    pubsub_domain_topic: str = "messaging-domain-events"
    pubsub_create_missing: bool = False  # create topics at start (emulator / local only)
    instance_id: str = ""  # names this process's Pub/Sub subscription; random when empty
    # group commit on the relay's send path (docs/performance.md, "Group commit"): socket sends
    # arriving within the window (from the first one waiting), up to `send_batch_max` of them,
    # share one transaction; at most `send_batch_parallel` batches are in flight at once.
    send_batch_window_ms: float = 1.0  # WHISPR_SEND_BATCH_WINDOW_MS; 0: no waiting, batch what queued up
    send_batch_max: int = 64  # WHISPR_SEND_BATCH_MAX; 1 turns group commit off
    send_batch_parallel: int = 2  # WHISPR_SEND_BATCH_PARALLEL
    # state store port (presence, device sessions): "memory" (this process) or "firestore"
    state_store: str = "memory"  # WHISPR_STATE_STORE: memory | firestore
    firestore_database: str = "(default)"  # WHISPR_FIRESTORE_DATABASE (project: WHISPR_GCP_PROJECT)
    presence_heartbeat_seconds: float = 15.0  # a relay instance proves its sessions alive this often
    presence_lease_seconds: float = 45.0  # sessions of an instance silent this long are over
    presence_tick_seconds: float = 5.0  # the relay's presence upkeep (away, lapsed instances)
    limits: Limits = field(default_factory=Limits)

    @property
    def db_pool(self) -> tuple[int, int]:
        """(pool_size, max_overflow) of this process's SQLAlchemy pool: the explicit
        WHISPR_DB_POOL_SIZE / WHISPR_DB_MAX_OVERFLOW, else what suits WHISPR_COMPONENT."""
        size, overflow = _COMPONENT_POOLS.get(self.component.strip().lower(), _COMPONENT_POOLS[""])
        return (
            self.db_pool_size if self.db_pool_size > 0 else size,
            self.db_max_overflow if self.db_max_overflow >= 0 else overflow,
        )

    @property
    def algorithms(self) -> list[str]:
        return [a.strip() for a in self.jwt_algorithms.split(",") if a.strip()]

    @property
    def uses_jwks(self) -> bool:
        return bool(self.jwt_jwks_url)

    @property
    def moderators(self) -> frozenset[str]:
        return frozenset(u.strip().lower() for u in self.moderator_ids.split(",") if u.strip())


def _coerce(raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


def _env_name(name: str) -> str:
    return _SPEC_NAMES.get(name, f"WHISPR_{name.upper()}")


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build settings from environment variables (or an explicit mapping, for tests)."""
    env = dict(os.environ) if env is None else env
    limit_values: dict[str, Any] = {}
    for f in fields(Limits):
        raw = env.get(_env_name(f.name))
        if raw is not None:
            limit_values[f.name] = _coerce(raw, getattr(Limits(), f.name))
    values: dict[str, Any] = {"limits": Limits(**limit_values)}
    defaults = Settings()
    for f in fields(Settings):
        if f.name == "limits":
            continue
        raw = env.get(_env_name(f.name))
        if raw is not None:
            values[f.name] = _coerce(raw, getattr(defaults, f.name))
    return Settings(**values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
