from pipelines.evaluate import decide


def test_first_model_has_no_comparison() -> None:
    assert decide(0.7, None, 0.65, 0.01) == []


def test_regression_bound() -> None:
    assert decide(0.705, 0.71, 0.65, 0.01)[0]["passed"]
    assert not decide(0.69, 0.71, 0.65, 0.01)[0]["passed"]
