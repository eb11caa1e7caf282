"""The model: what it is and how it is judged and kept.

- ``features``: the one model-input function and the one scoring call (no training-serving skew);
- ``parts``: estimator parts scikit-learn lacks (CategoryCoder);
- ``profile``: the frozen reference profile stored with each version, and PSI;
- ``train``: fit the Pipeline, log it to MLflow with its lineage and profile;
- ``gate`` + ``gate_checks``: the gate (candidate vs champion) and its checks;
- ``card``: the Markdown model card of each registered version;
- ``registry``: aliases, the promotion lock, manual promotion, rollback;
- ``status``: champion, challenger, recent versions and the latest outputs (`status`);
- ``champion``: the champion store, the only code that finds and verifies the production model.

Knows no server, no orchestrator and no CLI (import-linter contracts in pyproject.toml).
"""
