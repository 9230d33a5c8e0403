"""Settings are typed and bounded (shared/config.py): a bad value stops the service from
starting with a message naming the variable and its rule; an unknown WHISPR_* variable is
warned about with the nearest known name."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys

import pytest

from shared.config import ConfigurationError, Limits, Settings, load_settings
from tests.support import ROOT


@pytest.mark.parametrize(
    ("variable", "value", "rule"),
    [
        ("WHISPR_PORT", "eighty", "valid integer"),  # not an int
        ("WHISPR_MESSAGES_BURST", "1.5", "valid integer"),  # a limit: not an int either
        ("WHISPR_PORT", "70000", "less than or equal to 65535"),  # out of range
        ("WHISPR_MAX_JSON_DEPTH", "500", "less than or equal to 128"),
        ("WHISPR_SEND_BATCH_MAX", "0", "greater than or equal to 1"),
        ("WHISPR_PRESENCE_LEASE_SECONDS", "-1", "greater than 0"),
        ("WHISPR_EVENT_BUS", "kafka", "Input should be 'inprocess', "),  # not one of the choices
        ("WHISPR_LOG_LEVEL", "loud", "'debug', 'info', 'warning', 'error' or 'critical'"),
        ("WHISPR_PUBSUB_CREATE_MISSING", "maybe", "valid boolean"),
        ("WHISPR_JWT_ALGORITHMS", "ES256,HS256", "asymmetric algorithms only"),
        ("JWT_JWKS_URL", "auth.example/jwks", "http(s) URL"),
        ("DATABASE_URL", "mysql://whispr@db/whispr", "sqlite or postgresql"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable_and_the_rule(variable: str, value: str, rule: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings({variable: value})
    assert f"{variable}" in str(refused.value)
    assert rule in str(refused.value)


def test_every_bad_variable_is_named_at_once_and_secrets_are_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings({"WHISPR_PORT": "x", "WHISPR_SCHEDULER": "cron", "DATABASE_URL": "oracle://u:hunter2@db/x"})
    message = str(refused.value)
    assert "WHISPR_PORT='x'" in message and "WHISPR_SCHEDULER='cron'" in message and "DATABASE_URL:" in message
    assert "hunter2" not in message


def test_choices_and_booleans_are_read_leniently() -> None:
    settings = load_settings({"WHISPR_EVENT_BUS": " PubSub ", "WHISPR_PUBSUB_CREATE_MISSING": "yes"})
    assert (settings.event_bus, settings.pubsub_create_missing) == ("pubsub", True)
    assert load_settings({"WHISPR_PUBSUB_CREATE_MISSING": "off"}).pubsub_create_missing is False


def test_settings_built_in_code_are_checked_too() -> None:
    with pytest.raises(ValueError, match="send_batch_parallel"):
        dataclasses.replace(Settings(), send_batch_parallel=0)
    with pytest.raises(ValueError, match="max_content_bytes"):
        Limits(max_content_bytes=0)


def test_an_unknown_variable_is_warned_about_with_the_nearest_name(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="whispr.config"):
        settings = load_settings({"WHISPR_MESAGES_BURST": "5", "WHISPR_ZZZ": "1", "HOME": "/root"})
    assert settings.limits.messages_burst == Limits().messages_burst  # the typo changed nothing
    warnings = [r.getMessage() for r in caplog.records]
    assert any("WHISPR_MESAGES_BURST" in w and "did you mean WHISPR_MESSAGES_BURST?" in w for w in warnings)
    assert any("WHISPR_ZZZ" in w and "did you mean" not in w for w in warnings)
    assert not any("HOME" in w for w in warnings)


def test_the_command_refuses_to_start_and_says_why() -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "WHISPR_PORT": "99999", "WHISPR_SCHEDULR": "none"}
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "WHISPR_PORT='99999': Input should be less than or equal to 65535" in done.stderr
    assert "WHISPR_SCHEDULR" in done.stderr and "did you mean WHISPR_SCHEDULER?" in done.stderr
    assert "Traceback" not in done.stderr


SAFE_PRODUCTION = {
    "WHISPR_ENV": "production",
    "JWT_JWKS_URL": "https://auth.example/.well-known/jwks.json",
    "JWT_ISSUER": "https://auth.example",
    "JWT_AUDIENCE": "whispr-messaging",
    "WHISPR_CORS_ORIGINS": "https://app.whispr.example",
    "WHISPR_TASKS_SECRET": "s3cret",
}


def test_production_starts_with_safe_settings() -> None:
    assert load_settings(SAFE_PRODUCTION).env == "production"
    shim = {**SAFE_PRODUCTION, "WHISPR_COMPONENT": "grpc"}
    assert load_settings({**shim, "WHISPR_GRPC_SHARED_SECRET": "s"}).component == "grpc"
    assert load_settings({**shim, "WHISPR_GRPC_AUDIENCE": "https://messaging-grpc"}).component == "grpc"


@pytest.mark.parametrize(
    ("unsafe", "named"),
    [
        ({"JWT_JWKS_URL": ""}, "JWT_JWKS_URL is empty: tokens would be checked against the local dev signing key"),
        ({"JWT_ISSUER": ""}, "JWT_ISSUER is empty"),
        ({"JWT_AUDIENCE": ""}, "JWT_AUDIENCE is empty"),
        ({"WHISPR_CORS_ORIGINS": "*"}, "WHISPR_CORS_ORIGINS allows every origin"),
        ({"WHISPR_CORS_ORIGINS": "https://app.whispr.example,*"}, "WHISPR_CORS_ORIGINS allows every origin"),
        ({"WHISPR_TASKS_SECRET": ""}, "WHISPR_TASKS_SECRET is empty"),
        ({"WHISPR_COMPONENT": "grpc"}, "the gRPC shim would take any caller"),
    ],
)
def test_production_refuses_each_unsafe_setting(unsafe: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError, match="WHISPR_ENV=production refuses") as refused:
        load_settings({**SAFE_PRODUCTION, **unsafe})
    assert named in str(refused.value)
    load_settings({**SAFE_PRODUCTION, **unsafe, "WHISPR_ENV": "development"})  # allowed while developing


def test_production_names_every_unsafe_setting_at_once() -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings({"WHISPR_ENV": "production"})  # the defaults are development's
    for variable in ("JWT_JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE", "WHISPR_CORS_ORIGINS", "WHISPR_TASKS_SECRET"):
        assert variable in str(refused.value)
