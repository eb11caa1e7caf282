from datetime import date

import numpy as np
import pandas as pd
import pytest

from pipelines.data.simulate import generate_day
from pipelines.errors import PipelineError
from pipelines.model.features import model_input
from pipelines.model.train import fit


def _labelled(n: int = 1500) -> pd.DataFrame:
    f = generate_day(date(2026, 1, 1), n, 11)
    return f.batch.merge(f.labels, on="customer_id")


def test_fit_learns_and_is_deterministic(settings) -> None:
    df = _labelled()
    m1, auc1 = fit(df, settings.params.data, settings.params.train)
    m2, auc2 = fit(df, settings.params.data, settings.params.train)
    assert auc1 > 0.7 and auc1 == auc2
    X = model_input(df, settings.params.data)
    np.testing.assert_array_equal(m1.predict_proba(X), m2.predict_proba(X))


def test_model_handles_unseen_category_and_missing_numbers(settings) -> None:
    df = _labelled()
    model, _ = fit(df, settings.params.data, settings.params.train)
    odd = df.head(3).copy()
    odd["region"] = "atlantis"
    odd["income"] = np.nan
    p = model.predict_proba(model_input(odd, settings.params.data))[:, 1]
    assert np.isfinite(p).all()


def test_model_input_gives_object_columns_with_and_without_missing_values_the_same_form(settings) -> None:
    """An object column with no missing value skips the None-filling (a request's rows): the
    frame must be what the general path makes, and never the caller's own column."""
    d = settings.params.data
    df = _labelled(40).astype(dict.fromkeys(d.categorical, "object"))
    clean, holed = df.copy(), df.copy()
    holed.loc[holed.index[:3], "region"] = [None, np.nan, pd.NA]
    for frame in (clean, holed):
        X = model_input(frame, d)
        assert list(X.columns) == [*d.numerical, *d.categorical]
        for c in d.categorical:
            s = frame[c]
            pd.testing.assert_series_equal(X[c], s.astype("object").where(s.notna(), None))
    assert model_input(holed, d)["region"].head(3).tolist() == [None, None, None]
    X = model_input(clean, d)
    X.loc[X.index[0], "region"] = "changed"
    assert clean["region"].iloc[0] != "changed"


def test_single_class_is_refused(settings) -> None:
    df = _labelled().assign(default=0)
    with pytest.raises(PipelineError, match="single class"):
        fit(df, settings.params.data, settings.params.train)


def test_missing_feature_is_named(settings) -> None:
    with pytest.raises(PipelineError, match="logins_30d"):
        model_input(_labelled(50).drop(columns=["logins_30d"]), settings.params.data)


def test_permutation_importance_is_seeded_and_finds_the_signal(settings) -> None:
    from pipelines.model.train import permutation_importance_by_feature

    df = _labelled(3000)
    model, _ = fit(df, settings.params.data, settings.params.train)
    X = model_input(df, settings.params.data).head(1000)
    y = df[settings.params.data.target].head(1000)
    a = permutation_importance_by_feature(model, X, y, 42, 1)
    assert a == permutation_importance_by_feature(model, X, y, 42, 1)  # the profile hash is reproducible
    assert set(a) == set(settings.params.data.features)
    assert max(a.values()) > 0.01
    assert permutation_importance_by_feature(model, X, y * 0, 42, 1) is None  # one class: no AUC
