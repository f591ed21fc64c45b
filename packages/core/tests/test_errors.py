"""Errors raised inside Ray actors travel back pickled: they must keep their type and text."""

from __future__ import annotations

import pickle

from tideflow.core.errors import MissingDependencyError


def test_a_missing_dependency_error_survives_pickling_with_its_hint() -> None:
    error = MissingDependencyError("aiokafka", 'pip install "tideflow-streaming[kafka]"')
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is MissingDependencyError
    assert str(copy) == str(error)
    assert (copy.module, copy.extra_hint) == (error.module, error.extra_hint)
