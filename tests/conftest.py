"""Hooks for the whole suite: kubectl-marked tests skip, with a reason, without kubectl."""

import pytest

from tests.support.kubectl import MISSING, kubectl_path


def pytest_runtest_setup(item):
    if item.get_closest_marker("kubectl") is not None and kubectl_path() is None:
        pytest.skip(MISSING)
