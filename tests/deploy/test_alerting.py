"""The alerting files checked with the real tools and against the code and the docs.

promtool checks the rules and runs their unit tests (deploy/prometheus/tests/: each alert fired,
and not fired just under its threshold), amtool checks the Alertmanager's configuration, and
promtool the shipped Prometheus configuration as the container sees it (rules mounted beside
it). Read in Python: every alert has a severity, a summary, a description and a runbook link to
a section of docs/operations/alerts.md; every metric a rule or a dashboard reads is one the code
exports. The tools come from the machine, else from Debian's packages (tests/support/prometheus.py).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.prometheus import (
    ALERTMANAGER_CONFIG,
    PROMETHEUS_CONFIG,
    REPO,
    RULE_TESTS_DIR,
    SLACK_WEBHOOK_URL_FILE,
    alerts,
    container_layout,
    dashboard_expressions,
    dashboards,
    ensure_prometheus_stack,
    known_metrics,
    metric_names,
    rule_files,
    rules,
)

# The alerts other code and the docs name, with their severity
SEVERITY = {
    "PipelinesDriftDetected": "warning",
    "PipelinesDayQuarantined": "critical",
    "PipelinesStepStale": "warning",
    "PipelinesLiveAucUnderFloor": "critical",
    "PipelinesLabelsOverdue": "warning",
    "PipelinesRetrainBlocked": "info",
    "ServingErrorBudgetBurnFast": "critical",
    "ServingErrorBudgetBurnSlow": "warning",
    "ServingLatencyP99High": "warning",
    "ServingCanaryRejected": "warning",
    "ServingRegistryUnreachable": "warning",
    "ServingModelLoadFailures": "warning",
}
# posted to the Alertmanager by the DAGs' failure callback, not by a rule
CALLBACK_ALERTS = {"AirflowTaskFailed"}
ALERTS_DOC = REPO / "docs" / "operations" / "alerts.md"
RUNBOOK_URL = re.compile(r"^\{\{ \$externalLabels\.docs_url \}\}/operations/alerts/#([a-z0-9_-]+)$")


@pytest.fixture(scope="module", autouse=True)
def stack() -> None:
    ensure_prometheus_stack()


def run(*cmd: str | Path, stdout_only: bool = False) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout if stdout_only else proc.stdout + proc.stderr


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    out = run("promtool", "check", "rules", *rule_files())
    assert out.count("SUCCESS") == len(rule_files())
    tests = sorted(RULE_TESTS_DIR.glob("*.yml"))
    out = run("promtool", "test", "rules", *tests)
    assert out.count("SUCCESS") == len(tests) and "FAILED" not in out, out


def test_every_alert_is_fired_and_held_back_by_its_unit_tests() -> None:
    fired, quiet = set(), set()
    for path in RULE_TESTS_DIR.glob("*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    differ = sorted(set(alerts()) ^ set(SEVERITY))
    assert not differ, f"the rules' alerts differ from the named ones: {differ}"
    assert not set(SEVERITY) - fired, f"no unit test fires {sorted(set(SEVERITY) - fired)}"
    assert not set(SEVERITY) - quiet, f"no unit test checks that {sorted(set(SEVERITY) - quiet)} stays quiet (exp_alerts: [])"


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook() -> None:
    anchors = doc_anchors(ALERTS_DOC)
    if re.search(r"\{#[\w-]+\}\s*$", ALERTS_DOC.read_text(), re.M):  # explicit heading ids need attr_list
        assert re.search(r"^\s*- attr_list\s*$", (REPO / "mkdocs.yml").read_text(), re.M), "mkdocs.yml: enable attr_list"
    for name, rule in alerts().items():
        assert rule.get("labels", {}).get("severity") == SEVERITY[name], f"{name}: severity must be {SEVERITY[name]}"
        notes = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            assert notes.get(key, "").strip(), f"{name} has no {key}"
        m = RUNBOOK_URL.match(notes["runbook_url"])
        assert m, f"{name}: runbook_url must be {{{{ $externalLabels.docs_url }}}}/operations/alerts/#<anchor>"
        assert m.group(1) in anchors, f"{name}: docs/operations/alerts.md has no section #{m.group(1)}"
        if name.startswith("Pipelines"):  # a day's verdict: one sample is the truth
            assert rule.get("for") == "0m", f"{name}: a batch alert fires at once (for: 0m)"
    for name in CALLBACK_ALERTS:
        assert name.lower() in anchors, f"docs/operations/alerts.md has no section for {name}"


def test_every_metric_a_rule_reads_is_exported_by_the_code() -> None:
    known = known_metrics()
    for rule in rules():
        names = metric_names(rule["expr"])
        assert names, f"{rule.get('alert') or rule.get('record')}: no metric found in {rule['expr']!r}"
        unknown = names - known
        assert not unknown, f"{rule.get('alert') or rule.get('record')} reads {sorted(unknown)}, which nothing exports"


def test_every_metric_a_dashboard_reads_is_exported_by_the_code() -> None:
    boards = dashboards()
    assert {"serving.json", "lifecycle.json"} <= set(boards)
    known = known_metrics()
    exprs = dashboard_expressions()
    for expr in exprs:
        assert "$" not in expr, f"{expr!r}: no Grafana variables, so the expression runs as it is on Prometheus"
        names = metric_names(expr)
        assert names and not names - known, f"{expr!r} reads {sorted(names - known)}, which nothing exports"
    lifecycle = {n for panel in boards["lifecycle.json"]["panels"] for t in panel["targets"] for n in metric_names(t["expr"])}
    for needed in ("pipelines_validation_quarantined", "pipelines_validation_failed_expectations",
                   "pipelines_validation_worst_null_rate", "pipelines_drift_psi", "pipelines_drift_psi_threshold",
                   "pipelines_live_auc", "pipelines_live_auc_floor", "pipelines_holdout_auc", "pipelines_champion_version",
                   "pipelines_gate_passed", "pipelines_gate_auc_delta", "pipelines_step_last_success_timestamp_seconds",
                   "ALERTS"):
        assert needed in lifecycle, f"the lifecycle dashboard does not show {needed}"
    ids = [p["id"] for p in boards["lifecycle.json"]["panels"]]
    assert len(ids) == len(set(ids)) and boards["lifecycle.json"]["uid"] != boards["serving.json"]["uid"]


def test_the_metric_name_reader() -> None:
    expr = ('sum by (job, le) (rate(serving_request_latency_seconds_bucket{status=~"5..", x="up"}[5m])) '
            '> on(job) group_left() job:serving_request_errors:ratio_rate5m and time() - pipelines_a offset 1h > 26 * 3600')
    assert metric_names(expr) == {"serving_request_latency_seconds_bucket", "job:serving_request_errors:ratio_rate5m",
                                  "pipelines_a"}
    assert metric_names('ALERTS{alertstate="firing"}') == {"ALERTS"}


def test_the_shipped_prometheus_config_as_the_container_sees_it(tmp_path: Path) -> None:
    config = container_layout(tmp_path / "etc-prometheus")
    out = run("promtool", "check", "config", config)
    assert f"SUCCESS: {len(rule_files())} rule files found" in out, out
    cfg = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert cfg["rule_files"] == ["rules/*.yml"]
    assert cfg["global"]["external_labels"]["docs_url"] == "${PIPELINES_DOCS_URL}"
    targets = [t for am in cfg["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"]
    jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
    assert jobs["pushgateway"].get("honor_labels") is True, "the batch metrics keep the job and project they were pushed under"
    assert [t for sc in jobs["pushgateway"]["static_configs"] for t in sc["targets"]] == ["pushgateway:9091"]
    assert not jobs["serving"].get("honor_labels")


def route_of(labels: dict[str, str]) -> str:
    args = [f"{k}={v}" for k, v in labels.items()]
    return run("amtool", "config", "routes", "test", "--config.file", ALERTMANAGER_CONFIG, "--verify.receivers=slack",
               *args, stdout_only=True).strip()


def test_the_alertmanager_config() -> None:
    out = run("amtool", "check-config", ALERTMANAGER_CONFIG)
    assert "SUCCESS" in out
    cfg: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    route = cfg["route"]
    assert route["group_by"] == ["project", "alertname"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("30s", "5m", "4h")
    by_severity = {tuple(r["matchers"]): r for r in route["routes"]}
    info = by_severity[('severity="info"',)]
    assert parse_duration(info["repeat_interval"]) > parse_duration(route["repeat_interval"]), "info is told less often"
    for severity in ("critical", "warning", "info"):
        assert route_of({"alertname": "X", "severity": severity}) == "slack"
    assert route_of({"alertname": "AirflowTaskFailed", "dag_id": "scoring"}) == "slack"  # no severity: the default
    # the webhook URL only from the file compose writes (the tests point a copy elsewhere by this string)
    text = ALERTMANAGER_CONFIG.read_text()
    assert "api_url:" not in text and "https://hooks" not in text
    for receiver in cfg["receivers"]:
        for slack in receiver.get("slack_configs", []):
            assert slack["api_url_file"] == SLACK_WEBHOOK_URL_FILE and slack["send_resolved"] is True
            assert ".Annotations.summary" in slack["text"] and ".Annotations.runbook_url" in slack["text"]
    (inhibit,) = cfg["inhibit_rules"]
    assert 'alertname="PipelinesStepStale"' in inhibit["source_matchers"]
    assert inhibit["target_matchers"] == ['alertname="PipelinesDriftDetected"'] and inhibit["equal"] == ["project"]


def parse_duration(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smhd])", text))


def doc_anchors(path: Path) -> set[str]:
    """The anchors of a page's headings as mkdocs makes them: an attr_list id ({#id}), else the
    toc extension's slug of the heading's text."""
    from markdown.extensions.toc import slugify

    anchors = set()
    in_code = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            explicit = re.search(r"\{[^}]*#([\w-]+)[^}]*\}\s*$", m.group(1))
            anchors.add(explicit.group(1) if explicit else slugify(re.sub(r"`", "", m.group(1)), "-"))
    return anchors
