import numpy as np
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset

from pipelines.drift import psi_from_snapshot, retrain_decision


def test_retrain_decision_names_drifted_features() -> None:
    d = retrain_decision({"logins_30d": 1.3, "age": 0.01, "income": 0.25}, 0.2)
    assert d["retrain"] and d["drifted_features"] == ["logins_30d", "income"]
    assert "logins_30d (1.300)" in d["reason"]
    assert not retrain_decision({"age": 0.01}, 0.2)["retrain"]


def test_psi_read_from_a_real_evidently_report() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.poisson(20, 3000).astype(float)})
    cur = pd.DataFrame({"a": rng.normal(size=1000), "b": rng.poisson(7, 1000).astype(float)})
    snap = Report([DataDriftPreset(method="psi", threshold=0.2)]).run(cur, ref)
    psi = psi_from_snapshot(snap.dict())
    assert set(psi) == {"a", "b"}
    assert psi["a"] < 0.1 < 1.0 < psi["b"]
