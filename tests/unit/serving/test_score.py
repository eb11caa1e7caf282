"""Scoring's thread cap (the rest of scoring runs against a real registry in test_cycle.py)."""

from __future__ import annotations

import os

import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime, as scoring does)
from threadpoolctl import threadpool_info, threadpool_limits

from pipelines.serving.score import thread_limit


def openmp_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "openmp"}


def test_score_threads_caps_openmp_and_zero_keeps_the_default() -> None:
    with threadpool_limits(limits=2, user_api="openmp"):  # a known starting point, even on 1 core or OMP_NUM_THREADS=1
        default = openmp_threads()
        assert default == {2}, "no OpenMP runtime loaded: the cap would have nothing to act on"
        with thread_limit(1):
            assert openmp_threads() == {1}
        assert openmp_threads() == default  # restored after scoring
        with thread_limit(0):
            assert openmp_threads() == default
        with thread_limit(10_000):  # a cap, never more threads than cores
            assert max(openmp_threads()) <= (os.cpu_count() or 1)
