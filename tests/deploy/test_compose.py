"""docker-compose.yml, the Dockerfile and .env.example checked against the code (no Docker needed).

Docker cannot run here, so what can drift silently is checked by reading the files: service
names and the URLs that connect them, ports, the environment variables the code reads, the
commands the image must provide, the secrets .env must define. The services themselves run for
real in tests/integration/test_postgres_topology.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
DOCKERFILE = (REPO / "Dockerfile").read_text()
ENV_EXAMPLE = (REPO / ".env.example").read_text()

AIRFLOW_SERVICES = {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                    "airflow-triggerer", "airflow-worker"}
SERVING_PROFILE = {"serving", "prometheus", "grafana", "pushgateway", "alertmanager"}
SERVICES = {"postgres", "redis", "minio", "minio-init", "mlflow", "pipelines"} | AIRFLOW_SERVICES | SERVING_PROFILE
# services that run the pipelines' code (DAG tasks run on the workers; the CLI service)
RUNS_PIPELINES = {"airflow-worker", "pipelines", "serving"}
# read by the code but deliberately not set by the compose file
OPTIONAL_ENV = {
    "PATH": "the image's PATH",
    "MLFLOW_REGISTRY_URI": "defaults to the tracking URI (the server is the registry too)",
    "DVC_EXP_NAME": "set by `dvc exp run` for the stages of an experiment, never by a deployment",
    "PIPELINES_FAILPOINT": "fault injection for tests/faults only (pipelines/failpoint.py); never set in a deployment",
    "PIPELINES_AS_OF": "set by the pipeline itself for the prepare stage it runs (pipelines/ops/stages.py)",
    "JAVA_HOME": (
        "only the spark engine (engine.name in params.yaml) reads it; "
        "the image has no pyspark (requirements-spark.lock) and runs the local engine"
    ),
    "PIPELINES_SPARK_MASTER": "overrides engine.spark_master for the spark engine only (pipelines/engine.py)",
    "PYTHONPATH": "the spark engine passes it on to the Python workers of a local master (pipelines/engine.py)",
}
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's own ${VAR}, ${VAR:-default}, ${VAR:?error} interpolation ($$ escapes a $)."""
    def repl(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = values.get(name, "")
        if op and op.endswith("-") and not value:
            return arg
        if op and op.endswith("?") and not value:
            return f"<unset {name}>"
        return value

    return VAR.sub(repl, text).replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    values = {**env_example(), "AIRFLOW_FERNET_KEY": "test-fernet-key"}  # the one value .env.example leaves empty
    return yaml.safe_load(interpolate(COMPOSE_TEXT, values))


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "use the mapping form for environment"
    return {k: str(v) for k, v in env.items()}


def test_services_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = cond["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy but {dep} has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is a one-off job: restart must be 'no'"
            else:
                pytest.fail(f"{name} -> {dep}: depends_on without a health or completion condition ({condition})")
    long_running = {n for n, s in services.items() if s.get("restart") != "no" and "profiles" not in s}
    assert long_running == SERVICES - {"minio-init", "airflow-init", "pipelines"} - SERVING_PROFILE
    for name in long_running:
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_ports_listen_on_localhost_only(compose: dict[str, Any]) -> None:
    published = {}
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
            host_port, container_port = port.split(":")[1:]
            published[name] = (int(host_port), int(container_port))
    assert set(published) == {"minio", "mlflow", "airflow-apiserver"} | SERVING_PROFILE
    assert published["airflow-apiserver"] == (8080, 8080) and published["mlflow"] == (5000, 5000)


def test_services_reach_each_other_by_name_and_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker = env_of(services["airflow-worker"])
    mlflow = env_of(services["mlflow"])
    api_port = services["airflow-apiserver"]["command"][services["airflow-apiserver"]["command"].index("--port") + 1]

    def at(url: str) -> tuple[str | None, int | None]:
        parsed = urlparse(url.split("+", 1)[-1] if url.startswith("db+") else url)
        return parsed.hostname, parsed.port

    assert at(worker["MLFLOW_TRACKING_URI"]) == ("mlflow", int(mlflow["MLFLOW_PORT"]))
    assert at(worker["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]) == ("airflow-apiserver", int(api_port))
    assert worker["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")
    assert at(worker["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]) == ("postgres", 5432)
    assert at(worker["AIRFLOW__CELERY__RESULT_BACKEND"]) == ("postgres", 5432)
    assert at(worker["AIRFLOW__CELERY__BROKER_URL"]) == ("redis", 6379)
    assert at(mlflow["MLFLOW_S3_ENDPOINT_URL"]) == ("minio", 9000)
    assert at(env_of(services["airflow-init"])["DVC_REMOTE_ENDPOINT_URL"]) == ("minio", 9000)
    assert "mlflow" in mlflow["MLFLOW_SERVER_ALLOWED_HOSTS"].split(","), "the server must accept its service name"
    # each URI names a database the init script creates, with the role that owns it
    created = set(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", (REPO / "deploy/postgres-init-databases.sh").read_text()))
    for uri in (
        worker["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        mlflow["MLFLOW_BACKEND_STORE_URI"],
        mlflow["MLFLOW_AUTH_DATABASE_URI"],
    ):
        parsed = urlparse(uri)
        assert parsed.scheme == "postgresql+psycopg2", (
            f"{uri}: name the driver (SQLAlchemy 2.1 defaults to psycopg 3, not installed)"
        )
        assert (parsed.path.lstrip("/"), parsed.username) in created, f"{uri}: no such database/owner in the init script"
    assert mlflow["MLFLOW_BACKEND_STORE_URI"] != mlflow["MLFLOW_AUTH_DATABASE_URI"]
    assert mlflow["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")


def test_airflow_components_share_one_configuration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    shared = ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CELERY__BROKER_URL",
              "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY",
              "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__CORE__DAGS_FOLDER", "PIPELINES_ROOT"]
    envs = {name: env_of(services[name]) for name in AIRFLOW_SERVICES}
    for key in shared:
        values = {name: env.get(key) for name, env in envs.items()}
        assert len(set(values.values())) == 1 and None not in values.values(), f"{key} differs: {values}"
    assert envs["airflow-worker"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert envs["airflow-worker"]["AIRFLOW__CORE__DAGS_FOLDER"] == envs["airflow-worker"]["PIPELINES_ROOT"] + "/dags"
    for name in AIRFLOW_SERVICES:
        assert "workspace:/opt/project" in services[name]["volumes"], f"{name} does not see the shared workspace"
    # the admin's password file: written by the init job, read by the API server, nobody else
    with_auth = {n for n in services if any(str(v).startswith("airflow-auth:") for v in services[n].get("volumes", []))}
    assert with_auth == {"airflow-init", "airflow-apiserver"}


def test_every_environment_variable_the_code_reads_is_set(compose: dict[str, Any]) -> None:
    pattern = re.compile(
        r"""os\.(?:environ\.get|getenv|environ\.setdefault)\(\s*["']([A-Z0-9_]+)["']|os\.environ\[\s*["']([A-Z0-9_]+)["']\s*\]"""
    )
    read, set_by_code = set(), set()
    for path in [*(REPO / "pipelines").rglob("*.py"), *(REPO / "dags").rglob("*.py")]:
        text = path.read_text()
        for m in pattern.finditer(text):
            name = m.group(1) or m.group(2)
            (set_by_code if "setdefault" in m.group(0) else read).add(name)
    assert "MLFLOW_TRACKING_URI" in read and "PIPELINES_ROOT" in read  # the scan works
    needed = read - set_by_code - set(OPTIONAL_ENV)
    for name in RUNS_PIPELINES:
        env = env_of(compose["services"][name])
        missing = sorted(needed - set(env))
        assert not missing, f"{name} does not set {missing}, which the code reads (set it, or list it in OPTIONAL_ENV)"
        assert env["MLFLOW_TRACKING_USERNAME"] and env["MLFLOW_TRACKING_PASSWORD"], "the server has basic auth"
    # least privilege: the pipelines log as their own user, which the init job creates as admin
    admin = env_of(compose["services"]["mlflow"])["MLFLOW_AUTH_ADMIN_USERNAME"]
    init = env_of(compose["services"]["airflow-init"])
    for name in RUNS_PIPELINES:
        assert env_of(compose["services"][name])["MLFLOW_TRACKING_USERNAME"] != admin, f"{name} logs to MLflow as the admin"
        assert env_of(compose["services"][name])["MLFLOW_TRACKING_USERNAME"] == init["MLFLOW_PIPELINE_USERNAME"]
    assert init["MLFLOW_ADMIN_USERNAME"] == admin and init["MLFLOW_ADMIN_PASSWORD"]


def test_env_example_defines_every_variable_and_env_is_not_committed() -> None:
    used = {m.group(1) for m in VAR.finditer(COMPOSE_TEXT)}
    defined = set(env_example())
    assert not sorted(used - defined), f".env.example lacks {sorted(used - defined)}"
    assert not sorted(defined - used), f".env.example defines unused {sorted(defined - used)}"
    # a secret without a safe default must stop `docker compose up` with a message when unset
    for name in ("POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "MINIO_ROOT_PASSWORD", "REDIS_PASSWORD",
                 "MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "AIRFLOW_ADMIN_PASSWORD",
                 "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY"):
        assert re.search(r"\$\{" + name + r":\?", COMPOSE_TEXT), f"{name} has no ${{{name}:?...}} guard"
    assert len(env_example()["MLFLOW_ADMIN_PASSWORD"]) >= 12, "MLflow refuses admin passwords under 12 characters"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO).returncode
    assert ignored == 0, ".env must be git-ignored"
    assert subprocess.run(["git", "check-ignore", "-q", ".env.example"], cwd=REPO).returncode == 1


def test_volumes_for_everything_that_must_survive(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            source = str(vol).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} mounts undeclared volume {source}"
            else:
                assert (REPO / source).exists(), f"{name} mounts {source}, which is not in the repository"
    mounts = {name: [str(v) for v in svc.get("volumes", [])] for name, svc in compose["services"].items()}
    assert "postgres-data:/var/lib/postgresql/data" in mounts["postgres"]
    assert "minio-data:/data" in mounts["minio"] and "redis-data:/data" in mounts["redis"]
    assert "workspace:/opt/project" in mounts["pipelines"]


def test_the_image_builds_from_the_lock_and_provides_every_command(compose: dict[str, Any], tmp_path: Path) -> None:
    assert re.search(r"^FROM python:3\.11[-.\w]*$", DOCKERFILE, re.M), "the image must use the Python the lock was made for"
    assert "COPY requirements.lock" in DOCKERFILE and re.search(r"pip install [^\n]*-r /tmp/requirements\.lock", DOCKERFILE)
    for path in ("PROJECT_SOURCE=/opt/pipelines-src", "PIPELINES_ROOT=/opt/project", "AIRFLOW_HOME=/opt/airflow"):
        assert path in DOCKERFILE
    assert ".git" not in (REPO / ".dockerignore").read_text().split(), "the image records its commit: keep .git"
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".env", ".venv/", "data/", "dvc.lock"} <= set(ignored)
    services = compose["services"]
    images = {name for name, svc in services.items() if svc.get("build")}
    assert images == {"mlflow", "pipelines", "serving"} | AIRFLOW_SERVICES
    assert len({services[n]["image"] for n in images}) == 1, "one image for every Python service"
    commands = {name: [*(services[name].get("entrypoint") or []), *(services[name].get("command") or [])] for name in images}
    airflow_subcommands = set()
    for name, given in commands.items():
        cmd = [c for c in given if c not in ("/usr/bin/tini", "--")]
        if cmd[0].startswith("/opt/pipelines-src/"):
            script = REPO / cmd[0].removeprefix("/opt/pipelines-src/")
            mode = subprocess.run(["git", "ls-files", "-s", str(script.relative_to(REPO))], cwd=REPO,
                                  capture_output=True, text=True).stdout
            assert script.is_file() and (not mode or mode.startswith("100755")), f"{name}: {script} missing or not executable"
        elif cmd[:3] == ["python", "-m", "pipelines"]:
            assert (REPO / "pipelines/__main__.py").is_file()
        elif cmd[0] == "airflow":
            airflow_subcommands.add(" ".join(cmd[1:3]) if cmd[1] == "celery" else cmd[1])
        else:
            pytest.fail(f"{name}: unknown command {cmd}")
    assert airflow_subcommands == {"api-server", "scheduler", "dag-processor", "triggerer", "celery worker"}
    bindir = Path(sys.executable).parent
    assert "--app-name basic-auth" in (REPO / "deploy/mlflow-server.sh").read_text()
    for tool in ("airflow", "mlflow", "dvc", "celery"):
        assert (bindir / tool).is_file(), f"{tool} is not installed by the lock"
    env = {"PATH": str(bindir), "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([str(bindir / "airflow"), "celery", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "worker" in out.stdout, "the Celery provider is not installed: " + out.stderr[-500:]
    out = subprocess.run([str(bindir / "mlflow"), "server", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--app-name" in out.stdout and "--artifacts-destination" in out.stdout


def test_serving_profile_matches_the_server(compose: dict[str, Any]) -> None:
    """The serving service runs our server where Prometheus scrapes it; every metric the
    Grafana dashboard queries is one the server exports."""
    from pipelines.serving.metrics import Metrics

    services = compose["services"]
    for name in SERVING_PROFILE:
        assert services[name]["profiles"] == ["serving"], f"{name} must be in the serving profile only"
    cmd = services["serving"]["command"]
    port = int(cmd[cmd.index("--port") + 1])
    # inside its container the server listens on every interface; the host publishes it on loopback
    assert cmd[0] == "serve" and cmd[cmd.index("--host") + 1] == "0.0.0.0" and "--reload-any-host" in cmd  # noqa: S104
    assert services["serving"]["ports"] == [f"127.0.0.1:{port}:{port}"] or services["serving"]["ports"][0].endswith(f":{port}")
    help_text = subprocess.run([sys.executable, "-m", "pipelines", "serve", "--help"], capture_output=True, text=True, cwd=REPO,
                               env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"}, timeout=120).stdout
    for flag in ("--host", "--port", "--reload-any-host"):
        assert flag in help_text, f"python -m pipelines serve has no {flag}"
    worker = env_of(services["airflow-worker"])
    assert (
        urlparse(worker["PIPELINES_SERVER_URL"]).hostname == "serving" and urlparse(worker["PIPELINES_SERVER_URL"]).port == port
    )
    scrape = {job["job_name"]: job for job in yaml.safe_load((REPO / "deploy/prometheus.yml").read_text())["scrape_configs"]}
    assert [t for sc in scrape["serving"]["static_configs"] for t in sc["targets"]] == [f"serving:{port}"]
    assert scrape["serving"]["metrics_path"] == "/metrics"
    exported = set()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    for metric in Metrics().registry.collect():  # labelled metrics have no samples yet: names by type
        exported |= {metric.name + suffix for suffix in suffixes[metric.type]}
    dashboard = __import__("json").loads((REPO / "deploy/grafana/dashboards/serving.json").read_text())
    queried = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"\b(serving_[a-z_]+)", t["expr"])}
    assert queried and not queried - exported, (
        f"the dashboard queries metrics the server does not export: {sorted(queried - exported)}"
    )
    provisioning = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert provisioning["datasources"][0]["url"] == "http://prometheus:9090"


def test_alerting_services_match_the_code(compose: dict[str, Any]) -> None:
    """The Pushgateway the steps push to is the one Prometheus scrapes, the Alertmanager the DAGs
    post to is the one Prometheus alerts, the rules are mounted where the config loads them, and
    the webhook URL reaches the file the Alertmanager's configuration reads."""
    from pipelines.telemetry import PROJECT_ENV, PUSHGATEWAY_ENV
    from tests.support.prometheus import SLACK_WEBHOOK_URL_FILE

    services = compose["services"]
    prom_cfg = yaml.safe_load((REPO / "deploy/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prom_cfg["scrape_configs"]}
    (pushgateway_target,) = [t for sc in jobs["pushgateway"]["static_configs"] for t in sc["targets"]]
    (alertmanager_target,) = [t for am in prom_cfg["alerting"]["alertmanagers"] for sc in am["static_configs"]
                              for t in sc["targets"]]
    assert pushgateway_target == "pushgateway:9091" and alertmanager_target == "alertmanager:9093"
    assert services["pushgateway"]["ports"] == ["127.0.0.1:9091:9091"]
    assert services["alertmanager"]["ports"] == ["127.0.0.1:9093:9093"]
    # the alert callback's variable, as the code names it (if it names it at all yet)
    alertmanager_env = "PIPELINES_ALERTMANAGER_URL"
    named = {m for path in [*(REPO / "pipelines").rglob("*.py"), *(REPO / "dags").rglob("*.py")]
             for m in re.findall(r"PIPELINES_ALERTMANAGER\w*", path.read_text())}
    assert named <= {alertmanager_env}, f"the code reads {sorted(named)}, compose sets {alertmanager_env}"
    for name in sorted(RUNS_PIPELINES | AIRFLOW_SERVICES):
        env = env_of(services[name])
        assert env.get(PUSHGATEWAY_ENV) == f"http://{pushgateway_target}", f"{name}: not the scraped Pushgateway"
        assert env.get(alertmanager_env) == f"http://{alertmanager_target}", f"{name}: not Prometheus' Alertmanager"
        assert env.get(PROJECT_ENV), f"{name}: {PROJECT_ENV} names the project of every push"
    # Prometheus: the config and the rules where rule_files looks for them, docs_url from the environment
    prom = services["prometheus"]
    config = next(c.split("=", 1)[1] for c in prom["command"] if c.startswith("--config.file="))
    mounts = dict(str(v).rsplit(":", 1)[0].split(":", 1) for v in prom["volumes"] if str(v).startswith("./"))
    assert mounts["./deploy/prometheus.yml"] == config
    (rules_glob,) = prom_cfg["rule_files"]
    assert mounts["./deploy/prometheus/rules"] == str(Path(config).parent / Path(rules_glob).parent)
    assert "--enable-feature=expand-external-labels" in prom["command"]
    assert prom_cfg["global"]["external_labels"]["docs_url"] == "${PIPELINES_DOCS_URL}"
    docs_port = re.search(r"DOCS_PORT:-(\d+)", (REPO / "Makefile").read_text()).group(1)
    assert env_of(prom)["PIPELINES_DOCS_URL"] == f"http://127.0.0.1:{docs_port}", "default: the `make docs-serve` address"
    assert {"serving", "pushgateway", "alertmanager"} <= set(prom["depends_on"])
    # Alertmanager: its config mounted where it is read, the webhook URL written to the file it names
    am = services["alertmanager"]
    script = " ".join(am["command"])
    am_config = re.search(r"--config\.file=(\S+)", script).group(1)
    assert f"./deploy/alertmanager/alertmanager.yml:{am_config}:ro" in am["volumes"]
    assert f'"$PIPELINES_SLACK_WEBHOOK_URL" > {SLACK_WEBHOOK_URL_FILE}' in script
    assert re.search(r"&& exec /bin/alertmanager --config\.file=\S+ --storage\.path=/alertmanager$", script.strip())
    assert "PIPELINES_SLACK_WEBHOOK_URL" in env_of(am)
    assert SLACK_WEBHOOK_URL_FILE in (REPO / "deploy/alertmanager/alertmanager.yml").read_text()
    # Pushgateway: what was pushed survives a restart (a day's verdict, each step's last success)
    pg = services["pushgateway"]
    persisted = next(c.split("=", 1)[1] for c in pg["command"] if c.startswith("--persistence.file="))
    assert any(str(v).endswith(":" + str(Path(persisted).parent)) for v in pg["volumes"])
    for name in ("pushgateway", "alertmanager"):
        assert "healthcheck" in services[name] and services[name]["restart"] == "unless-stopped"
