"""Ecosystem clause 6: ``import unifex.joblib`` registers a joblib backend that
runs ``Parallel`` on every kind; scikit-learn's ``n_jobs`` runs through it on
``process`` and ``dask``."""

from __future__ import annotations

from typing import Any

import pytest

joblib = pytest.importorskip("joblib", reason="joblib is a test dependency (pip install unifex[joblib])")

import unifex.joblib  # noqa: E402,F401 - registers the backend
from unifex.testing import tasks  # noqa: E402


@pytest.mark.timeout(180)
def test_parallel_runs_on_the_kind(kind_config: Any) -> None:
    options = dict(kind_config.options)
    with joblib.parallel_config(backend="unifex", kind=kind_config.kind, n_jobs=3, **options):
        got = joblib.Parallel()(joblib.delayed(tasks.square)(i) for i in range(40))
    assert got == [i * i for i in range(40)]


@pytest.mark.timeout(180)
def test_a_task_error_reaches_the_caller(kind_config: Any) -> None:
    with joblib.parallel_config(backend="unifex", kind=kind_config.kind, n_jobs=2, **kind_config.options), pytest.raises(tasks.TaskError, match="bad input 3"):
        joblib.Parallel()(joblib.delayed(tasks.raise_at)(i, 3) for i in range(6))


@pytest.mark.timeout(300)
@pytest.mark.kinds("process", "dask")
def test_scikit_learn_cross_val_score(kind_config: Any) -> None:
    sklearn = pytest.importorskip("sklearn", reason="scikit-learn is a test dependency")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    del sklearn
    X, y = load_iris(return_X_y=True)
    with joblib.parallel_config(backend="unifex", kind=kind_config.kind, **kind_config.options):
        scores = cross_val_score(LogisticRegression(max_iter=300), X, y, cv=3, n_jobs=2)
    assert len(scores) == 3 and min(scores) > 0.8
