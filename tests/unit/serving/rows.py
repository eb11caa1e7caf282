"""A checked request row for the serving unit tests: every feature filled, ``income`` as given
(the stand-in models read it)."""

from __future__ import annotations


def row(settings, income: float) -> dict:  # noqa: ANN001
    d = settings.p.data
    r = {c: 1.0 for c in d.numerical}
    r.update({c: "x" for c in d.categorical})
    r["income"] = income
    return r
