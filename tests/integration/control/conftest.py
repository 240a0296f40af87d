"""Fixtures shared by the control-plane integration tests."""

import pytest

from tests.support.apiproc import LocalApiServer


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real 3-node store and steer-apiserver for one test module; stopped after it."""
    api = LocalApiServer(tmp_path_factory.mktemp("api"))
    try:
        api.start()
        yield api
    finally:
        api.stop()
