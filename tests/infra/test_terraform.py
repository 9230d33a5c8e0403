"""Structural checks of terraform/ (providers cannot be downloaded here, so no `terraform
validate`): every .tf file parses, every function of the route table is deployed through the
generated tfvars file, and the facts a reviewer looks for hold (ordered conversation topic,
relay session affinity, OIDC on internal calls, no secret values in the configuration)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

from shared.config import known_variables
from shared.devtools import export_routes
from shared.http.routes import functions

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
TFVARS = TERRAFORM / "functions.auto.tfvars.json"
TF_FILES = sorted(TERRAFORM.glob("*.tf"))

_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)


def _parse(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        parsed: dict[str, Any] = hcl2.load(handle, serialization_options=_OPTIONS)
    return parsed


class Config:
    """Every .tf file of terraform/, merged: resources by (type, name), variables, locals..."""

    def __init__(self, files: list[Path]):
        self.resources: dict[tuple[str, str], dict[str, Any]] = {}
        self.data: dict[tuple[str, str], dict[str, Any]] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        self.terraform: list[dict[str, Any]] = []
        for path in files:
            parsed = _parse(path)
            for kind, into in (("resource", self.resources), ("data", self.data)):
                for entry in parsed.get(kind, []):
                    for rtype, named in entry.items():
                        for name, body in named.items():
                            assert (rtype, name) not in into, f"{rtype}.{name} declared twice"
                            into[(rtype, name)] = body
            for entry in parsed.get("variable", []):
                self.variables.update(entry)
            for entry in parsed.get("output", []):
                self.outputs.update(entry)
            for entry in parsed.get("locals", []):
                self.locals.update(entry)
            self.terraform.extend(parsed.get("terraform", []))

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        assert (rtype, name) in self.resources, f"no resource {rtype}.{name}"
        return self.resources[(rtype, name)]

    def of_type(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {name: body for (t, name), body in self.resources.items() if t == rtype}


def block(body: dict[str, Any], *path: str) -> dict[str, Any]:
    """Descend into nested blocks (each parsed as a one-element list)."""
    current: Any = body
    for key in path:
        assert isinstance(current, dict) and key in current, f"no block {key!r} in {sorted(current)}"
        current = current[key]
        if isinstance(current, list):
            assert len(current) == 1, f"expected one {key!r} block, found {len(current)}"
            current = current[0]
    assert isinstance(current, dict)
    return current


def walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) attribute in a parsed structure."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield path, key, inner
            yield from walk(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from walk(inner, f"{path}[{index}]")


def run_container(config: Config, service: str, name: str | None = None) -> dict[str, Any]:
    """A container of a Cloud Run service, by name (default: the one named after the service,
    which takes the requests; the others are sidecars)."""
    template = block(config.resource("google_cloud_run_v2_service", service), "template")
    named = {c.get("name"): c for c in template["containers"]}
    assert len(named) == len(template["containers"]), f"{service}: containers need distinct names"
    assert (name or service) in named, f"{service} has no container {name or service!r}: {sorted(map(str, named))}"
    return named[name or service]


@pytest.fixture(scope="module")
def config() -> Config:
    return Config(TF_FILES)


@pytest.fixture(scope="module")
def tfvars() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(TFVARS.read_text(encoding="utf-8"))
    return loaded


# ---------------------------------------------------------------------------
# Files and formatting
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", TF_FILES, ids=lambda p: p.name)
def test_every_tf_file_parses(path: Path) -> None:
    assert _parse(path), f"{path.name} is empty"


def test_configuration_is_split_into_readable_files() -> None:
    expected = {
        "main.tf", "variables.tf", "functions.tf", "run.tf", "pubsub.tf", "sql.tf", "firestore.tf",
        "tasks.tf", "gateway.tf", "iam.tf", "monitoring.tf", "outputs.tf", "network.tf",
    }  # fmt: skip
    assert expected <= {p.name for p in TF_FILES}


def test_terraform_fmt_check() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not on PATH")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"terraform fmt -check failed:\n{result.stdout}\n{result.stderr}"


_COMMENT = re.compile(r"^\s*#.*$", re.MULTILINE)
_RESOURCE_REF = re.compile(r"(?<![\w.\-/])((?:google|random)_\w+)\.(\w+)")
_DATA_REF = re.compile(r"\bdata\.(\w+)\.(\w+)")


def test_every_reference_resolves(config: Config) -> None:
    """A cheap stand-in for `terraform validate`: every var., local., data. and resource
    reference names something declared."""
    text = "\n".join(_COMMENT.sub("", path.read_text(encoding="utf-8")) for path in TF_FILES)
    missing: set[str] = set()
    for name in re.findall(r"\bvar\.(\w+)", text):
        if name not in config.variables:
            missing.add(f"var.{name}")
    for name in re.findall(r"\blocal\.(\w+)", text):
        if name not in config.locals:
            missing.add(f"local.{name}")
    for rtype, name in _DATA_REF.findall(text):
        if (rtype, name) not in config.data:
            missing.add(f"data.{rtype}.{name}")
    without_data = _DATA_REF.sub("", text)
    for rtype, name in _RESOURCE_REF.findall(without_data):
        if (rtype, name) not in config.resources:
            missing.add(f"{rtype}.{name}")
    assert not missing, f"undeclared: {sorted(missing)}"


def test_google_providers_and_gcs_backend(config: Config) -> None:
    settings = config.terraform[0]
    providers = settings["required_providers"][0]
    assert providers["google"]["source"] == "hashicorp/google"
    assert providers["google-beta"]["source"] == "hashicorp/google-beta"  # API Gateway is beta-only
    assert "gcs" in settings["backend"][0]


# ---------------------------------------------------------------------------
# Functions: generated from the route table, cannot drift
# ---------------------------------------------------------------------------


def test_committed_tfvars_equals_what_the_route_table_produces() -> None:
    assert TFVARS.read_text(encoding="utf-8") == export_routes.render(ROOT), (
        "terraform/functions.auto.tfvars.json is out of date; regenerate it with:\n"
        "  python -m shared.devtools.export_routes terraform/functions.auto.tfvars.json"
    )


def test_export_check_mode_detects_a_stale_file(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.json"
    assert export_routes.main([str(fresh)]) == 0
    assert export_routes.main(["--check", str(fresh)]) == 0
    stale = tmp_path / "stale.json"
    stale.write_text('{"functions": {}}\n', encoding="utf-8")
    assert export_routes.main(["--check", str(stale)]) == 1


def test_every_function_of_the_route_table_is_deployed(tfvars: dict[str, Any]) -> None:
    deployed = tfvars["functions"]
    for name in functions():
        assert name in deployed, f"route-table function {name} is not in {TFVARS.name}"
        entry = deployed[name]
        assert entry["public"] is (name not in export_routes.INTERNAL_FUNCTIONS)
        assert entry["entry_point"] == name
        assert entry["routes"], f"{name} has no routes"


def test_every_deployed_function_has_its_source_file_and_target(tfvars: dict[str, Any]) -> None:
    for name, entry in tfvars["functions"].items():
        source = ROOT / entry["source"]
        assert entry["source"] == f"functions/{name}/main.py"
        assert source.is_file(), f"{entry['source']} does not exist"
        text = source.read_text(encoding="utf-8")
        defines = re.search(rf"^(?:async\s+)?(?:def\s+{name}\b|{name}\s*=)", text, re.MULTILINE)
        assert defines, f"{entry['source']} does not define the target {name!r}"


def test_functions_are_deployed_for_each_over_the_generated_variable(config: Config) -> None:
    fn = config.resource("google_cloudfunctions2_function", "fn")
    assert fn["for_each"] == "${var.functions}"
    build = block(fn, "build_config")
    assert build["entry_point"] == "${each.value.entry_point}"
    assert build["environment_variables"]["GOOGLE_FUNCTION_SOURCE"] == "${each.value.source}"
    assert "default" not in config.variables["functions"], "var.functions must come from the generated tfvars"
    service = block(fn, "service_config")
    assert "var.function_max_instances" in service["max_instance_count"]
    env = service["environment_variables"]
    assert '"FUNCTION_USE_ASGI" = "true"' in env or 'FUNCTION_USE_ASGI = "true"' in env
    # Internal functions are not reachable from the internet.
    assert "ALLOW_INTERNAL_ONLY" in service["ingress_settings"]


def test_function_source_archive_is_versioned(config: Config) -> None:
    obj = config.resource("google_storage_bucket_object", "source")
    assert "${var.source_version}" in obj["name"]


# ---------------------------------------------------------------------------
# Pub/Sub
# ---------------------------------------------------------------------------


def test_one_ordered_conversation_events_topic_and_a_domain_events_topic(config: Config) -> None:
    topics = {body["name"]: body for body in config.of_type("google_pubsub_topic").values()}
    assert "messaging-conversation-events" in topics
    assert "messaging-domain-events" in topics
    assert "conversation_id" in topics["messaging-conversation-events"]["labels"]
    # No per-conversation topics: topic names are literals, never built from a for_each.
    for (rtype, name), body in config.resources.items():
        if rtype == "google_pubsub_topic":
            assert "for_each" not in body and "count" not in body, f"{rtype}.{name} multiplies topics"


def test_check_internal_functions_deployed_holds(config: Config, tfvars: dict[str, Any]) -> None:
    """The check block's condition, evaluated on the generated tfvars: `tasks` and `events` are
    deployed, so the sweepers and the sibling event subscriptions are created."""
    assert config.locals["internal_functions"] and "has_events_function" in config.locals
    deployed = tfvars["functions"]
    assert {"tasks", "events"} <= deployed.keys()
    assert not deployed["events"]["public"]
    assert [r["path"] for r in deployed["events"]["routes"] if r["method"] == "POST"] == ["/events"]


def test_sibling_events_are_pushed_with_oidc_and_dead_lettered(config: Config) -> None:
    dead_letter = config.resource("google_pubsub_topic", "dead_letter")
    assert dead_letter["name"].endswith("dead-letter")
    subscription = config.resource("google_pubsub_subscription", "sibling_events")
    push = block(subscription, "push_config")
    assert 'fn["events"]' in push["push_endpoint"]
    assert push["push_endpoint"].endswith("?token=${random_password.tasks_secret.result}")
    assert 'sa["push"]' in block(push, "oidc_token")["service_account_email"]
    policy = block(subscription, "dead_letter_policy")
    assert policy["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    # Dead letters are kept somewhere, not dropped.
    kept = config.resource("google_pubsub_subscription", "dead_letter")
    assert kept["topic"] == "${google_pubsub_topic.dead_letter.id}"


# ---------------------------------------------------------------------------
# Cloud Run
# ---------------------------------------------------------------------------


def test_relay_keeps_sockets_session_affinity_long_timeout_min_instances(config: Config) -> None:
    relay = config.resource("google_cloud_run_v2_service", "relay")
    template = block(relay, "template")
    assert template["session_affinity"] is True
    assert template["timeout"] == "${var.relay_timeout_seconds}s"
    assert config.variables["relay_timeout_seconds"]["default"] == 3600
    assert block(template, "scaling")["min_instance_count"] == "${var.relay_min_instances}"
    assert config.variables["relay_min_instances"]["default"] >= 1
    assert block(run_container(config, "relay"), "resources")["cpu_idle"] is False


def test_grpc_shim_speaks_http2_end_to_end(config: Config) -> None:
    shim = run_container(config, "grpc")
    ports = block(shim, "ports")
    assert ports["name"] == "h2c"
    assert ports["container_port"] == 9090
    assert "grpc" in block(shim, "startup_probe")


def test_components_call_the_siblings_with_an_id_token_their_accounts_may_present(config: Config) -> None:
    """Sibling calls carry each component's Google ID token (WHISPR_SIBLING_AUTH=id_token by
    default); its service account gets roles/run.invoker on the siblings' Cloud Run services
    when they are given, and is listed for the siblings' owners otherwise."""
    env = config.locals["common_env"]
    assert env["WHISPR_SIBLING_AUTH"] == "${var.sibling_auth}"
    assert config.variables["sibling_auth"]["default"] == "id_token"
    for service in ("user", "media", "notification"):
        assert (
            env[f"WHISPR_{service.upper()}_SERVICE_AUDIENCE"] == f'${{lookup(var.sibling_audiences, "{service}", "")}}'
        )
    assert not [n for n in env if n.startswith("WHISPR_") and n not in known_variables()], "a name the code ignores"

    runtime = set(re.findall(r'"(\w+)"', config.locals["runtime"]))
    run_accounts = {
        block(config.resource("google_cloud_run_v2_service", name), "template")["service_account"]
        for name in ("relay", "grpc")
    }
    # the components that run the core (so the sibling clients): both Cloud Run services, the functions
    assert run_accounts == {f'${{google_service_account.sa["{a}"].email}}' for a in ("relay", "grpc")}
    assert {"api", "worker", "relay", "grpc"} <= runtime
    grants = config.resource("google_cloud_run_v2_service_iam_member", "sibling_invokers")
    assert grants["role"] == "roles/run.invoker"
    assert "setproduct(keys(var.sibling_run_services), local.runtime)" in grants["for_each"]
    assert grants["member"] == "${google_service_account.sa[each.value.account].member}"
    assert grants["name"] == "${each.value.service.name}" and grants["project"] == "${each.value.service.project}"
    assert "local.runtime" in config.outputs["sibling_invoker_members"]["value"]


def test_migrations_run_as_a_job_with_only_the_database_secret(config: Config) -> None:
    job = config.resource("google_cloud_run_v2_job", "migrate")
    container = block(job, "template", "template", "containers")
    assert container["args"] == ["migrate"]
    secrets = {
        block(env, "value_source", "secret_key_ref")["secret"] for env in container["env"] if "value_source" in env
    }
    assert secrets == {"${google_secret_manager_secret.database_url.secret_id}"}


# ---------------------------------------------------------------------------
# Tasks, scheduler, storage
# ---------------------------------------------------------------------------


def test_scheduled_queue_and_sweepers_call_the_tasks_function_with_oidc(config: Config, tfvars: dict[str, Any]) -> None:
    queue = config.resource("google_cloud_tasks_queue", "scheduled")
    assert queue["name"] == "messaging-scheduled"
    # Sweepers are the parameterless POST routes of `tasks`, taken from the generated tfvars.
    assert 'var.functions["tasks"].routes' in config.locals["tasks_routes"]
    job = config.resource("google_cloud_scheduler_job", "sweeper")
    assert job["for_each"] == "${local.sweepers}"
    target = block(job, "http_target")
    assert 'fn["tasks"]' in target["uri"] and "local.api_base_path" in target["uri"]
    assert target["headers"]["X-Whispr-Tasks-Secret"] == "${random_password.tasks_secret.result}"
    oidc = block(target, "oidc_token")
    assert 'sa["invoker"]' in oidc["service_account_email"]
    if "tasks" in tfvars["functions"]:
        sweeps = {
            r["path"] for r in tfvars["functions"]["tasks"]["routes"] if r["method"] == "POST" and "{" not in r["path"]
        }
        assert "/tasks/sweep" in sweeps, "the periodic sweep route is gone from the route table"
        assert tfvars["functions"]["tasks"]["public"] is False


def test_cloud_sql_postgres_15_private_ip_password_generated(config: Config) -> None:
    instance = config.resource("google_sql_database_instance", "main")
    assert instance["database_version"] == "POSTGRES_15"
    ip = block(instance, "settings", "ip_configuration")
    assert ip["ipv4_enabled"] is False
    assert ip["private_network"]
    user = config.resource("google_sql_user", "app")
    assert user["password"] == "${random_password.db.result}"
    version = config.resource("google_secret_manager_secret_version", "db_password")
    assert version["secret_data"] == "${random_password.db.result}"
    config.resource("google_sql_database", "whispr")


def test_firestore_native_mode(config: Config) -> None:
    database = config.resource("google_firestore_database", "state")
    assert database["type"] == "FIRESTORE_NATIVE"


def test_gateway_config_comes_from_the_openapi_path(config: Config) -> None:
    api_config = config.resource("google_api_gateway_api_config", "api")
    document = block(api_config, "openapi_documents", "document")
    assert "var.openapi_path" in document["contents"]
    backend = block(api_config, "gateway_config", "backend_config")
    assert 'sa["gateway"]' in backend["google_service_account"]


# ---------------------------------------------------------------------------
# Identity and secrets
# ---------------------------------------------------------------------------


def test_each_component_has_its_own_service_account(config: Config) -> None:
    accounts = set(config.locals["service_accounts"])
    assert {"api", "worker", "relay", "grpc", "migrate", "gateway", "invoker", "push", "build"} <= accounts
    fn = block(config.resource("google_cloudfunctions2_function", "fn"), "service_config")
    assert 'sa["api"]' in fn["service_account_email"] and 'sa["worker"]' in fn["service_account_email"]
    for service in ("relay", "grpc"):
        template = block(config.resource("google_cloud_run_v2_service", service), "template")
        assert template["service_account"] == f'${{google_service_account.sa["{service}"].email}}'


def test_no_basic_roles_and_no_public_functions(config: Config) -> None:
    basic = {"roles/owner", "roles/editor", "roles/viewer"}
    for (rtype, name), body in config.resources.items():
        for _path, key, value in walk(body):
            if key in {"role", "roles"} and isinstance(value, str):
                assert value not in basic, f"{rtype}.{name} grants {value}"
            if key in {"member", "members"} and value in ("allUsers", ["allUsers"]):
                assert (rtype, name) == ("google_cloud_run_v2_service_iam_member", "relay_public"), (
                    f"{rtype}.{name} makes something public; only the relay (which checks tokens) is"
                )


_SENSITIVE_KEY = re.compile(r"(^|_)(password|secret_data|private_key|client_secret|api_key|token)$")
_SECRET_SHAPES = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----|AIza[0-9A-Za-z_\-]{35}|\"type\":\s*\"service_account\"|postgres(ql)?(\+\w+)?://[^$\s\"]+:[^$\s\"@]+@"
)


def test_no_secret_value_literals(config: Config) -> None:
    problems: list[str] = []
    for (rtype, name), body in config.resources.items():
        for path, key, value in walk(body):
            # Values must be references or templates of references, never a written-out value.
            if _SENSITIVE_KEY.search(key) and isinstance(value, str) and "${" not in value:
                problems.append(f"{rtype}.{name}{path}.{key} is a literal")
    for name, variable in config.variables.items():
        if re.search(r"password|secret|token|private_key", name):
            problems.append(f"variable {name}: secrets come from Secret Manager, not variables")
        assert variable.get("sensitive") is not False
    for file in [*TF_FILES, TFVARS, *TERRAFORM.glob("*.tfvars")]:
        if _SECRET_SHAPES.search(file.read_text(encoding="utf-8")):
            problems.append(f"{file.name} contains something shaped like a credential")
    assert not problems, "\n".join(problems)


def test_secrets_reach_components_through_secret_manager(config: Config) -> None:
    secret_env = config.locals["secret_env"]
    assert {"DATABASE_URL", "WHISPR_TASKS_SECRET"} <= set(secret_env)
    for value in secret_env.values():
        assert re.fullmatch(r"\$\{google_secret_manager_secret\.\w+\.secret_id\}", value)
    for _name, value in config.locals["common_env"].items():
        assert "random_password" not in value and "secret_version" not in value


# ---------------------------------------------------------------------------
# Monitoring
# ---------------------------------------------------------------------------


def test_uptime_check_on_readiness_and_5xx_alert(config: Config) -> None:
    uptime = config.resource("google_monitoring_uptime_check_config", "health")
    assert block(uptime, "http_check")["path"].endswith("/health/ready")  # store and bus answer
    alert = config.resource("google_monitoring_alert_policy", "server_errors")
    condition = block(alert, "conditions", "condition_threshold")
    assert 'response_code_class=\\"5xx\\"' in condition["filter"] or 'response_code_class="5xx"' in condition["filter"]


def test_the_relay_is_probed_over_http_for_readiness_and_liveness(config: Config) -> None:
    relay = run_container(config, "relay")
    startup = block(block(relay, "startup_probe"), "http_get")
    liveness = block(block(relay, "liveness_probe"), "http_get")
    assert startup["path"] == "/messaging/api/v1/health/ready" and startup["port"] == "${local.relay_port}"
    assert liveness["path"] == "/messaging/api/v1/health" and liveness["port"] == "${local.relay_port}"


def test_the_relay_drains_within_cloud_runs_sigterm_grace(config: Config) -> None:
    """Cloud Run sends SIGKILL 10 s after SIGTERM (a fixed grace): the relay's drain window
    (WHISPR_DRAIN_SECONDS, shared/relay/shutdown.py) is set from a variable bounded below it."""
    from shared.config import Settings

    env = str(run_container(config, "relay"))  # the dynamic env blocks' for_each: merge(local.common_env, {...})
    assert "WHISPR_DRAIN_SECONDS" in env and "var.relay_drain_seconds" in env, env
    variable = config.variables["relay_drain_seconds"]
    assert 0 < variable["default"] <= 8
    assert variable["default"] == Settings().drain_seconds
    assert "var.relay_drain_seconds <= 8" in str(variable["validation"])


# The default RunMonitoring configuration of Google's sidecar, used when no configuration is
# mounted at /etc/rungmp/config.yaml: the endpoint 0.0.0.0:8080, path /metrics, every 30 s.
GMP_DEFAULT_SCRAPE_PORT = 8080
GMP_SIDECAR_IMAGE = re.compile(
    r"us-docker\.pkg\.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar"
    r"(:\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})"
)


@pytest.mark.parametrize("service", ["relay", "grpc"])
def test_managed_prometheus_sidecar_scrapes_each_cloud_run_service(config: Config, service: str) -> None:
    """What makes the PromQL alert policies see anything: Google's sidecar in every instance,
    started after the serving container is ready, with its default scrape (no configuration
    mounted), writing with the service account's metricWriter role."""
    sidecar = run_container(config, service, "prometheus")
    assert sidecar["image"] == "${var.prometheus_sidecar_image}"
    assert sidecar["depends_on"] == [service]  # Cloud Run starts it once the service's startup probe passes
    assert "ports" not in sidecar, "only the serving container takes requests"
    assert "volume_mounts" not in sidecar, "a mounted RunMonitoring would replace the default scrape"
    assert block(sidecar, "resources")["limits"]["cpu"] == "1"  # below 1 vCPU needs request-based billing
    served = block(run_container(config, service), "resources")
    assert block(sidecar, "resources").get("cpu_idle") == served.get("cpu_idle")  # one CPU allocation mode
    assert config.locals["prometheus_scrape_port"] == GMP_DEFAULT_SCRAPE_PORT

    image = config.variables["prometheus_sidecar_image"]
    assert GMP_SIDECAR_IMAGE.fullmatch(image["default"]), image["default"]  # a released version, never latest
    assert "validation" in image

    runtime = set(re.findall(r'"(\w+)"', config.locals["runtime"]))
    roles = config.locals["project_roles"]
    assert service in runtime and '"roles/monitoring.metricWriter"' in roles.split("setproduct(local.runtime")[1]
    assert config.resource("google_project_iam_member", "runtime")["for_each"] == "${local.project_roles}"


def test_the_scraped_port_is_where_each_service_serves_metrics(config: Config) -> None:
    """Both services serve /metrics on WHISPR_METRICS_PORT (tests/relay/test_command.py,
    tests/grpc/test_command.py), set to the scraped port, which is not the port they take
    requests on: Cloud Run routes requests to the container port only, so nobody outside can
    read the metrics. The relay listens where Cloud Run sends its traffic, and is probed there."""
    from shared.config import Settings, env_name

    setting = env_name("metrics_port")
    assert setting == "WHISPR_METRICS_PORT" and Settings().metrics_port == 0  # off unless set
    for service in ("relay", "grpc"):
        container = run_container(config, service)
        env = next(e for e in container["dynamic"] if "env" in e)["env"]["for_each"]
        assert f"{setting} = tostring(local.prometheus_scrape_port)" in env, env
        assert block(container, "ports")["container_port"] not in (
            GMP_DEFAULT_SCRAPE_PORT,
            "${local.prometheus_scrape_port}",
        )
    relay = run_container(config, "relay")
    assert config.locals["relay_port"] != GMP_DEFAULT_SCRAPE_PORT
    assert block(relay, "ports")["container_port"] == "${local.relay_port}"
    env = next(e for e in relay["dynamic"] if "env" in e)["env"]["for_each"]
    assert "WHISPR_PORT = tostring(local.relay_port)" in env, env
    for probe in ("startup_probe", "liveness_probe"):
        assert block(relay, probe, "http_get")["port"] == "${local.relay_port}"
