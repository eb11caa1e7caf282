"""A checked request row for the serving unit tests: every feature filled, ``income`` as given
(the stand-in models read it)."""

from __future__ import annotations


def row(settings, income: float) -> dict:
    d = settings.params.data
    r = dict.fromkeys(d.numerical, 1.0)
    r.update(dict.fromkeys(d.categorical, "x"))
    r["income"] = income
    return r
