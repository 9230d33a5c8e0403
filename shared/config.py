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
    group_creations_per_day: int = 10


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///var/whispr.db"
    db_pool_size: int = 10
    db_max_overflow: int = 10
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
    limits: Limits = field(default_factory=Limits)

    @property
    def algorithms(self) -> list[str]:
        return [a.strip() for a in self.jwt_algorithms.split(",") if a.strip()]

    @property
    def uses_jwks(self) -> bool:
        return bool(self.jwt_jwks_url)


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
