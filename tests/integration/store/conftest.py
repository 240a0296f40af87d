"""Fixtures for integration tests that run real `steer-store` processes.

Every cluster lives under the test's tmp dir, listens on free loopback ports and is
stopped (killed by pid) in a finalizer. When a test fails, the logs of every cluster
it used are attached to its report as a "store logs" section.

Nothing here sleeps for a fixed time: ``wait_for`` polls a condition until a
deadline. Deadlines are generous and never asserted as timings: CI runs these on
two shared cores next to the fault tests.
"""

import subprocess

import pytest

from cli.local_store import LocalStoreCluster
from tests.support.storeproc import READY_TIMEOUT, Clusters, RawConnection


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
    if report.failed and report.when in ("setup", "call"):
        seen = set()
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Clusters) and id(value) not in seen:
                seen.add(id(value))
                report.sections.append(("store logs", value.logs()))
            elif isinstance(value, LocalStoreCluster) and id(value) not in seen:
                seen.add(id(value))
                report.sections.append(("store logs", value.logs()))


@pytest.fixture
def clusters(tmp_path):
    """Factory for clusters private to one test."""
    made = Clusters(tmp_path)
    try:
        yield made
    finally:
        made.stop_all()


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory):
    """One 3-node cluster shared by the tests of a module that do not disturb it."""
    made = Clusters(tmp_path_factory.mktemp("shared"))
    try:
        yield made.new(3, name="shared")
    finally:
        made.stop_all()


@pytest.fixture
def cluster(shared_cluster):
    """The module's shared cluster, with a leader agreed before each test."""
    shared_cluster.wait_ready(READY_TIMEOUT)
    return shared_cluster


@pytest.fixture
def client(cluster):
    with cluster.client(timeout=15.0) as c:
        yield c


@pytest.fixture
def raw():
    """Factory of raw connections to member ``i`` of a cluster, all closed after the test."""
    opened = []

    def connect(cluster, i, timeout=15.0):
        conn = RawConnection(cluster.nodes[i].client_addr, timeout, cluster.client_tls["admin"])
        opened.append(conn)
        return conn

    try:
        yield connect
    finally:
        for conn in opened:
            conn.close()


@pytest.fixture
def processes():
    """Extra processes a test starts itself; killed by pid afterwards."""
    started = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
