"""Data in: what lands, whether it may be used, and the training window.

- ``simulate``: seeded daily batches and delayed labels, with the failures we must catch;
- ``validate``: Great Expectations suites, Data Docs, quarantine, one-line failure reasons;
- ``validate_modes``: the `validate` step's modes (a day, every new day, the training set, a proposed suite);
- ``checks``: label leakage and training-serving skew (no GE expectation for these);
- ``prepare``: the training window and the fresh holdout from validated, labelled days.

Never imports ops or the CLI (import-linter contracts in pyproject.toml).
"""
