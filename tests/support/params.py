"""The two ways tests edit a project's params.yaml. They are kept apart because they do
different things to the file:

- :func:`replace_in_params` swaps a piece of text for another and fails when the text is not
  there: the file keeps its comments and layout, and the test states the value it expects to
  find (a repository default that moved fails loudly instead of being silently overridden).
- :func:`set_param` sets ``section.key`` whatever its value is now (a seed set again and again,
  bounds loosened in a loop): it rewrites the file as plain YAML, without its comments.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml


def replace_in_params(path: Path, pairs: Iterable[tuple[str, str]]) -> None:
    """Replace each ``old`` by ``new`` in the params file at ``path``; each ``old`` must be in it."""
    text = path.read_text()
    for old, new in pairs:
        assert old in text, f"{old!r} is not in {path}"
        text = text.replace(old, new)
    path.write_text(text)


def set_param(path: Path, key: str, value: object) -> None:
    """Set ``section.name`` to ``value`` in the params file at ``path`` (rewritten as plain YAML)."""
    params = yaml.safe_load(path.read_text())
    section, name = key.split(".")
    params[section][name] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


# The gate's latency and bootstrap settings for tests on a shared 2-core machine: the fault tests
# judge what a fault leaves behind, not the candidate's speed, and a neighbour's load must not
# block a promotion they need.
SHARED_MACHINE_GATE = {
    "gate.latency_single_row_p99_ms": 5000,
    "gate.latency_batch_p99_ms": 60000,
    "gate.bootstrap_samples": 100,
}
