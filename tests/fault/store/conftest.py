"""Fixtures of the store's fault-injection tests: real clusters, always stopped.

A cluster made with ``make_cluster`` is SIGKILLed by pid when the test ends, and
the log of every node is attached to the report of a test that failed. Helpers
(workload, watch recorder, ``wait_for``) are in harness.py.
"""

import pytest

from cli.local_store import LocalStoreCluster
from tests.fault.store.harness import FAULT_ARGS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach every node's log to the report of a test that failed."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for cluster in getattr(item, "_store_clusters", []):
            report.sections.append((f"store logs ({cluster.base_dir})", cluster.logs()))


@pytest.fixture
def make_cluster(request, tmp_path):
    """Return ``make(size=3, extra_args=FAULT_ARGS)``: a started, ready cluster."""
    clusters = []
    request.node._store_clusters = clusters

    def make(size=3, extra_args=FAULT_ARGS, ready_timeout=60.0):
        cluster = LocalStoreCluster(size, base_dir=str(tmp_path / f"cluster{len(clusters)}"),
                                    extra_args=list(extra_args))
        clusters.append(cluster)
        cluster.start_all()
        cluster.wait_ready(timeout=ready_timeout)
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.stop_all()
