"""The shipped alert rules (deploy/prometheus/rules/*.yml) applied to the samples a day published.

The replay has no Prometheus: to mark the day each alert would have reached a person, it reads the
rule files and evaluates the batch guards' expressions on the metrics the day's steps wrote
(pipelines/telemetry.py's textfiles), so the thresholds are the rule files' own, not a copy.

Only the forms the batch rules use are understood (anything else is reported as unsupported
and skipped; Prometheus itself is the judge in production, `promtool test rules` tests them):
- ``selector OP number`` (``26 * 3600`` allowed), ``selector OP on(a, b) group_left() selector``,
  ``time() - selector OP number``, and ``A and B`` of those (B keeps A's series that match on all
  of B's labels, or on the ``on(...)`` list given);
- a selector is ``name`` or ``name{label="value", label!="value"}``.
Only the batch guards' rules are applied (an expression on ``pipelines_`` metrics and none of the
server's): the replay serves no online traffic.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RULES_DIR = Path("deploy") / "prometheus" / "rules"
Series = dict[str, str]
Sample = tuple[str, dict[str, str], float]
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
}
_SELECTOR = re.compile(r"^\s*([a-zA-Z_:][\w:]*)\s*(\{[^}]*\})?\s*$")
_MATCHER = re.compile(r'(\w+)\s*(=~|!=|=)\s*"([^"]*)"')
_COMPARE = re.compile(r"^(.*?)\s*(>=|<=|==|!=|>|<)\s*(.*)$", re.S)
_ON = re.compile(r"^on\s*\(([^)]*)\)\s*(?:group_left\s*\([^)]*\)\s*)?(.*)$", re.S)


class Unsupported(ValueError):
    """An expression outside the subset this evaluator understands."""


@dataclass(frozen=True)
class Rule:
    alert: str
    expr: str
    labels: dict[str, str]
    summary: str


def load_rules(root: Path) -> list[Rule]:
    """Every alerting rule of the rule files under ``root``/deploy/prometheus/rules."""
    import yaml

    rules = []
    for path in sorted((root / RULES_DIR).glob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            rules += [Rule(r["alert"], r["expr"], dict(r.get("labels", {})), str(r.get("annotations", {}).get("summary", "")))
                      for r in group.get("rules", []) if "alert" in r]
    return rules


def _select(selector: str, samples: list[Sample]) -> list[tuple[Series, float]]:
    m = _SELECTOR.match(selector)
    if not m:
        raise Unsupported(f"not a plain selector: {selector!r}")
    matchers = _MATCHER.findall(m.group(2) or "")

    def keep(labels: dict[str, str]) -> bool:
        for key, op, value in matchers:
            got = labels.get(key, "")
            if (op == "=" and got != value) or (op == "!=" and got == value) or (op == "=~" and not re.fullmatch(value, got)):
                return False
        return True

    return [(labels, value) for name, labels, value in samples if name == m.group(1) and keep(labels)]


def _number(text: str) -> float:
    if not re.fullmatch(r"[\d.]+(\s*\*\s*[\d.]+)*", text.strip()):
        raise Unsupported(f"not a number: {text!r}")
    parts = re.split(r"\s*\*\s*", text.strip())
    value = 1.0
    for p in parts:
        value *= float(p)
    return value


def _compare(expr: str, samples: list[Sample], now: float | None) -> list[Series]:
    m = _COMPARE.match(expr.strip())
    if not m:
        raise Unsupported(f"no comparison in {expr!r}")
    left, op, right = m.group(1).strip(), OPS[m.group(2)], m.group(3).strip()
    shift = 0.0
    if left.startswith("time()"):
        if now is None:
            raise Unsupported("time() needs a clock")
        left, shift = left.removeprefix("time()").strip().removeprefix("-").strip(), now
    series = [(labels, (shift - v) if shift else v) for labels, v in _select(left, samples)]
    on = _ON.match(right)
    if on:
        keys = [k.strip() for k in on.group(1).split(",") if k.strip()]
        others = {tuple(labels.get(k, "") for k in keys): v for labels, v in _select(on.group(2), samples)}
        return [labels for labels, v in series
                if (o := others.get(tuple(labels.get(k, "") for k in keys))) is not None and op(v, o)]
    bound = _number(right)
    return [labels for labels, v in series if op(v, bound)]


def _top_level_and(expr: str) -> list[str]:
    """``expr`` split at its top-level ``and`` (outside parentheses)."""
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(expr):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and expr.startswith(" and ", k):
            parts.append(expr[start:k])
            start = k + len(" and ")
    return [*parts, expr[start:]]


def _unwrap(expr: str) -> str:
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")") and _top_level_and(expr[1:-1]) == [expr[1:-1]]:
        expr = expr[1:-1].strip()
    return expr


def firing(rule: Rule, samples: list[Sample], now: float | None = None) -> list[Series]:
    """The series for which ``rule`` fires on ``samples``; Unsupported outside the subset."""
    first, *rest = _top_level_and(" ".join(rule.expr.split()))
    hits = _compare(_unwrap(first), samples, now)
    for part in rest:
        on = _ON.match(part.strip())
        keys = [k.strip() for k in on.group(1).split(",") if k.strip()] if on else None
        right = _compare(_unwrap(on.group(2) if on else part), samples, now)
        hits = [h for h in hits if any(all(h.get(k, "") == r.get(k, "") for k in (keys or r)) for r in right)]
    return hits


def day_alerts(rules: Iterable[Rule], samples: list[Sample], now: float | None = None) -> list[dict[str, Any]]:
    """Alerts that fire on one day's samples: name, severity and the firing series' labels."""
    out = []
    for rule in rules:
        if "pipelines_" not in rule.expr or "serving_" in rule.expr:
            continue  # not a batch guard's rule (the online server's: the replay serves no traffic)
        try:
            hits = firing(rule, samples, now)
        except Unsupported:
            continue  # a serving or clock rule: not for a replayed day
        out += [{"alert": rule.alert, "severity": rule.labels.get("severity", ""), "labels": h} for h in hits]
    return out


def read_textfiles(folder: Path) -> list[Sample]:
    """Every sample of the ``*.prom`` files in ``folder`` (the steps' textfile transport)."""
    from prometheus_client.parser import text_string_to_metric_families

    return [(s.name, dict(s.labels), float(s.value))
            for path in sorted(folder.glob("*.prom"))
            for family in text_string_to_metric_families(path.read_text())
            for s in family.samples]
