"""The alerting stack the deploy files configure: Prometheus (promtool), Alertmanager (amtool) and
the Pushgateway from the machine, else Debian's packages; the shipped rules, configs and
dashboards; and the metric names a PromQL expression reads, checked against what the code exports."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.system import apt_get_install

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus.yml"
RULES_DIR = DEPLOY / "prometheus" / "rules"
RULE_TESTS_DIR = DEPLOY / "prometheus" / "tests"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
DASHBOARDS_DIR = DEPLOY / "grafana" / "dashboards"
# Where the compose service mounts the rules, relative to the config file (rule_files: rules/*.yml)
CONTAINER_RULES = "rules"
# The file the Alertmanager reads the webhook URL from (compose writes PIPELINES_SLACK_WEBHOOK_URL into it)
SLACK_WEBHOOK_URL_FILE = "/etc/alertmanager/slack_webhook_url"

# executable -> the Debian package that provides it
TOOLS = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "prometheus-pushgateway": "prometheus-pushgateway",
}


def ensure_prometheus_stack() -> None:
    """Prometheus, promtool, the Alertmanager, amtool and the Pushgateway on PATH: the machine's,
    else Debian's packages (CI is Debian, as root). Fails the test, naming the packages, when
    they are missing and cannot be installed."""
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        ok, why = apt_get_install(missing)
        assert ok, why
        still = sorted(tool for tool in TOOLS if shutil.which(tool) is None)
        assert not still, f"apt-get installed {', '.join(missing)} but {', '.join(still)} is not on PATH"
        return
    pytest.fail(f"{', '.join(t for t in TOOLS if shutil.which(t) is None)} missing and cannot be installed here: "
                f"install Debian's {' '.join(missing)}")


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rules() -> list[dict[str, Any]]:
    """Every rule (recording and alerting) of the shipped rule files, in order."""
    return [rule for path in rule_files() for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def alerts() -> dict[str, dict[str, Any]]:
    """The alerting rules by name."""
    return {r["alert"]: r for r in rules() if "alert" in r}


def container_layout(dest: Path) -> Path:
    """The shipped prometheus.yml in ``dest`` with the rules beside it where compose mounts them
    (``rules/``): the config as the container sees it. Returns the config's path."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROMETHEUS_CONFIG, dest / "prometheus.yml")
    shutil.copytree(RULES_DIR, dest / CONTAINER_RULES, dirs_exist_ok=True)
    return dest / "prometheus.yml"


def exported_metrics() -> set[str]:
    """Every series name the code exports: the batch gauges of ``pipelines.telemetry.JOBS`` and
    the server's metrics (counters with ``_total``, histograms' ``_bucket``, ``_sum``, ``_count``)."""
    from pipelines.serving.metrics import METRICS
    from pipelines.telemetry import JOBS

    names = {m.name for metrics in JOBS.values() for m in metrics}
    for m in METRICS:
        if m.kind == "histogram":
            names |= {m.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(m.name if m.kind != "counter" or m.name.endswith("_total") else m.name + "_total")
    return names


# Prometheus' own series: the alert states of its rules
BUILTIN_SERIES = {"ALERTS", "ALERTS_FOR_STATE"}


def known_metrics() -> set[str]:
    """What an expression may read: the code's metrics, the recording rules' outputs, Prometheus' own."""
    return exported_metrics() | {r["record"] for r in rules() if "record" in r} | BUILTIN_SERIES


KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan", "start", "end"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.$])[a-zA-Z_:][\w:]*")


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (not its functions, aggregations, keywords,
    label names or values, durations or numbers)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)
    names = set()
    for m in _NAME.finditer(text):
        name = m.group(0)
        if name in KEYWORDS or re.match(r"\s*\(", text[m.end():]):
            continue  # a function or an aggregation: sum(...), rate(...), vector(...)
        names.add(name)
    return names


def dashboards() -> dict[str, dict[str, Any]]:
    """The provisioned Grafana dashboards by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def dashboard_expressions() -> list[str]:
    """Every PromQL expression of the provisioned dashboards (each panel's ``targets[].expr``),
    runnable as they are against a Prometheus (no Grafana variables)."""
    return [t["expr"] for board in dashboards().values() for panel in board["panels"] for t in panel.get("targets", [])
            if t.get("expr")]
