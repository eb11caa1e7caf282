"""`status --json` speaks JSON: a gate verdict kept as an MLflow tag ("true") comes back a boolean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pipelines.tracking import tag_bool, tag_text

REPO = Path(__file__).resolve().parents[3]

# A real MLflow store in the project (the embedded SQLite default): one version, gated, champion.
REGISTER = """
import sys
from pipelines.config import load_settings
from pipelines.tracking import setup_mlflow
s = load_settings(sys.argv[1])
client, name = setup_mlflow(s), s.params.project.model_name
client.create_registered_model(name)
for passed in ("true", "false"):
    mv = client.create_model_version(name, source=s.path("mlartifacts", "m").as_uri())
    client.set_model_version_tag(name, mv.version, "gate_passed", passed)
client.set_registered_model_alias(name, "champion", "1")
client.set_registered_model_alias(name, "challenger", "2")
"""


def test_tag_bool_and_back() -> None:
    assert tag_bool("true") is True and tag_bool("false") is False and tag_bool(True) is True
    assert tag_bool(None) is None and tag_bool("by ann: broke p99") is None  # not a boolean tag: no verdict
    assert tag_text(True) == "true" and tag_text("false") == "false" and tag_text(False) == "false"


def test_status_json_has_real_booleans(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIPELINES_"))} | {"PYTHONPATH": str(REPO)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc

    run("-c", REGISTER, "params.yaml")
    out = json.loads(run("-m", "pipelines", "--params", "params.yaml", "status", "--json").stdout)
    assert out["champion"]["gate_passed"] is True
    assert out["challenger"]["gate_passed"] is False
    assert [v["gate_passed"] for v in out["recent_versions"]] == [False, True]
