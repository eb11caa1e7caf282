"""What the fault tests check after a crash and a re-run: the registry's state, read from the
real MLflow store, and the invariants it must meet."""

from __future__ import annotations

import json

import mlflow

from tests.support.project import Project


def registry_state(proj: Project, name: str = "credit-default", uri: str | None = None) -> dict[str, object]:
    """Everything the invariants are about, read from the real MLflow store (the project's
    embedded one, or ``uri``)."""
    client = mlflow.MlflowClient(tracking_uri=uri or f"sqlite:///{proj.root / 'mlflow.db'}")
    versions = client.search_model_versions(f"name='{name}'")
    model = client.get_registered_model(name) if versions else None
    exp = client.get_experiment_by_name("credit-default")
    running = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'") if exp else []
    locks = [m.name for m in client.search_registered_models() if m.name.endswith(".promotion-lock")]
    return {
        "versions": {str(v.version): v.run_id for v in versions},
        "champion": str(model.aliases["champion"]) if model and "champion" in model.aliases else None,
        "history": json.loads(model.tags.get("champion_history", "[]")) if model else [],
        "champion_since": bool(client.get_model_version(name, model.aliases["champion"]).tags.get("champion_since"))
        if model and "champion" in model.aliases else None,
        "running": [r.info.run_id for r in running],
        "reaped": [r.info.run_id for r in client.search_runs([exp.experiment_id], filter_string="tags.`pipelines.reaped` != ''")]
        if exp else [],
        "locks": locks,
    }


def assert_consistent(state: dict[str, object]) -> None:
    """The end state after a crash and a re-run: each candidate registered at most once, the
    alias and the history agree, no lock left, no run left running."""
    runs = list(state["versions"].values())  # type: ignore[union-attr]
    assert len(runs) == len(set(runs)), f"a candidate was registered twice: {state['versions']}"
    assert state["champion"] is not None and state["history"], state
    assert state["history"][-1] == state["champion"], f"alias and history disagree: {state}"  # type: ignore[index]
    assert set(state["history"]) <= set(state["versions"]), state  # type: ignore[arg-type]
    assert state["champion_since"], f"the champion lacks its champion_since tag: {state}"
    assert state["locks"] == [], f"a promotion lock was left behind: {state['locks']}"
    assert state["running"] == [], f"MLflow runs left RUNNING: {state['running']}"
