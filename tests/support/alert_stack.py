"""The real alerting stack on loopback, as the product ships it: Debian's Prometheus (the rule
files of deploy/prometheus/rules/), Pushgateway and Alertmanager (deploy/alertmanager/
alertmanager.yml, with only its webhook URL file pointing to a local receiver), and that receiver,
an HTTP server that keeps every notification Alertmanager posts.

Prometheus scrapes and evaluates every second here (the shipped config: 15 s); the rules and
the Alertmanager routes, timings and templates are the shipped ones.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from tests.support.prometheus import ALERTMANAGER_CONFIG, RULES_DIR, SLACK_WEBHOOK_URL_FILE, ensure_prometheus_stack
from tests.support.system import free_port, wait_for

DOCS_URL = "http://127.0.0.1:8001"


class Receiver(ThreadingHTTPServer):
    """Keeps the JSON body of every POST (Alertmanager's Slack-compatible notifications)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.bodies.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:  # quiet
                return

        super().__init__(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/hook"


class AlertStack:
    def __init__(self, root: Path, receiver: Receiver, ports: dict[str, int]) -> None:
        self.root, self.receiver = root, receiver
        self.pushgateway = f"http://127.0.0.1:{ports['pushgateway']}"
        self.prometheus = f"http://127.0.0.1:{ports['prometheus']}"
        self.alertmanager = f"http://127.0.0.1:{ports['alertmanager']}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = httpx.get(self.prometheus + "/api/v1/query", params={"query": expr}, timeout=10)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def alerts(self) -> list[dict[str, Any]]:
        """Prometheus' pending and firing alerts."""
        return httpx.get(self.prometheus + "/api/v1/alerts", timeout=10).json()["data"]["alerts"]

    def notifications(self) -> list[str]:
        return [json.dumps(b) for b in self.receiver.bodies]

    def wait_notified(self, alertname: str, *needles: str, timeout: float = 120) -> str:
        """The first notification naming ``alertname`` and every needle (Alertmanager's group_wait
        is 30 s: a first notification takes that long)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for text in self.notifications():
                if alertname in text and all(n in text for n in needles):
                    return text
            time.sleep(0.5)
        raise AssertionError(f"no notification of {alertname} naming {needles} in {timeout} s; got {self.notifications()}"
                             f"; Prometheus alerts: {self.alerts()}")

    def wait_firing(self, alertname: str, timeout: float = 60, **labels: str) -> dict[str, Any]:
        """The alert firing on Prometheus with these labels (the rules evaluate every second here)."""
        def found() -> dict[str, Any] | None:
            return next((a for a in self.alerts() if a["state"] == "firing" and a["labels"]["alertname"] == alertname
                         and all(a["labels"].get(k) == v for k, v in labels.items())), None)

        return wait_for(found, timeout, f"{alertname} {labels} never fired; Prometheus alerts: {self.alerts()}")

    def wait_scraped(self, metric: str, timeout: float = 30) -> None:
        wait_for(lambda: self.query(metric), timeout, f"{metric} never reached Prometheus")


def _prometheus_config(root: Path, ports: dict[str, int], scrape: list[str]) -> Path:
    rules = sorted(str(p) for p in RULES_DIR.glob("*.yml"))
    cfg = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "external_labels": {"docs_url": DOCS_URL}},
        "rule_files": rules,
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}]},
        "scrape_configs": [
            {"job_name": "pushgateway", "honor_labels": True,
             "static_configs": [{"targets": [f"127.0.0.1:{ports['pushgateway']}"]}]},
            {"job_name": "serving", "static_configs": [{"targets": scrape}]} if scrape else None,
        ],
    }
    cfg["scrape_configs"] = [c for c in cfg["scrape_configs"] if c]
    path = root / "prometheus.yml"
    path.write_text(json.dumps(cfg))  # YAML is a superset of JSON
    return path


@contextmanager
def alert_stack(root: Path, scrape: list[str] = ()) -> Iterator[AlertStack]:
    """Start the stack in ``root`` (``scrape``: host:port of online servers); stop it after."""
    ensure_prometheus_stack()
    root.mkdir(parents=True, exist_ok=True)
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    ports = {k: free_port() for k in ("pushgateway", "prometheus", "alertmanager")}
    url_file = root / "webhook_url"
    url_file.write_text(receiver.url)
    am_config = root / "alertmanager.yml"
    shipped = ALERTMANAGER_CONFIG.read_text()
    assert SLACK_WEBHOOK_URL_FILE in shipped, f"{ALERTMANAGER_CONFIG} no longer reads its URL from {SLACK_WEBHOOK_URL_FILE}"
    am_config.write_text(shipped.replace(SLACK_WEBHOOK_URL_FILE, str(url_file)))
    cmds = {
        # Debian's build keeps pushes in /var/lib/prometheus/pushgateway.data by default: a file of our own
        "pushgateway": ["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{ports['pushgateway']}",
                        f"--persistence.file={root / 'pushgateway.data'}"],
        "alertmanager": ["prometheus-alertmanager", f"--config.file={am_config}", f"--storage.path={root / 'am'}",
                         f"--web.listen-address=127.0.0.1:{ports['alertmanager']}", "--cluster.listen-address="],
        "prometheus": ["prometheus", f"--config.file={_prometheus_config(root, ports, list(scrape))}",
                       f"--storage.tsdb.path={root / 'tsdb'}", f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
                       "--enable-feature=expand-external-labels"],
    }
    procs: list[subprocess.Popen[bytes]] = []
    stack = AlertStack(root, receiver, ports)
    try:
        for name, cmd in cmds.items():
            log = (root / f"{name}.log").open("wb")
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root))
        for name, url in (("pushgateway", stack.pushgateway), ("alertmanager", stack.alertmanager),
                          ("prometheus", stack.prometheus)):
            wait_for(lambda u=url: _ready(u), 60, f"{name} did not start: {(root / f'{name}.log').read_text()[-2000:]}")
        yield stack
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        receiver.shutdown()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
