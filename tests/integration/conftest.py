"""Fixtures shared by the integration tests of the control plane, the agent and the CLI.

``server`` is a module's real 3-node store and `steer-apiserver` (TLS, its own CA); a module passes
more flags by setting ``SERVER_ARGS`` (or a conftest overrides ``server_args``).
``servers`` is two API servers sharing one store; ``rest`` is a client of
``server``; ``managers`` and ``schedulers`` start copies of those
components by identity for one test (leader-election handover tests).
"""

import pytest

from tests.support.apiproc import ComponentProcesses, LocalApiServer


@pytest.fixture(scope="module")
def server_args(request):
    """More steer-apiserver flags: the test module's ``SERVER_ARGS``, if any."""
    return list(getattr(request.module, "SERVER_ARGS", ()))


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_args):
    """A real 3-node store and steer-apiserver for one test module; stopped after it."""
    api = LocalApiServer(tmp_path_factory.mktemp("api"), extra_args=server_args)
    try:
        api.start()
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="module")
def servers(tmp_path_factory, server_args):
    """Two API servers on one store (both with ``server_args``): (first, second)."""
    base = tmp_path_factory.mktemp("servers")
    first = LocalApiServer(base / "a", extra_args=server_args)
    second = None
    try:
        first.start()
        second = LocalApiServer(base / "b", store=first.store, extra_args=server_args,
                                ca=first.ca).start()
        yield first, second
    finally:
        if second is not None:
            second.stop()
        first.stop()


@pytest.fixture(scope="module")
def rest(server):
    """A REST client of the module's server, as the admin."""
    client = server.rest_client(timeout=10)
    yield client
    client.close()


def _copies(server, base_dir, module):
    procs = ComponentProcesses(server, base_dir, module)
    try:
        yield procs
    finally:
        procs.stop_all()


@pytest.fixture
def managers(server, tmp_path):
    """Controller managers started by identity in one test; all stopped after it."""
    yield from _copies(server, tmp_path, "control.controllers.manager")


@pytest.fixture
def schedulers(server, tmp_path):
    """Schedulers started by identity in one test; all stopped after it."""
    yield from _copies(server, tmp_path, "control.scheduler.main")
