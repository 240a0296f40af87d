"""Hooks for the whole suite: kubectl-marked tests skip, with a reason, without kubectl;
the run fails if a test cluster's packet reached the default-route interface.

The egress watch (tests/support/egress.py) is installed by the xdist controller (or
the only process) at session start and judged at session end; workers do nothing.
"""

import pytest

from tests.support import egress
from tests.support.kubectl import MISSING, kubectl_path

EGRESS_WATCH = pytest.StashKey[egress.SessionWatch]()


def pytest_runtest_setup(item):
    if item.get_closest_marker("kubectl") is not None and kubectl_path() is None:
        pytest.skip(MISSING)


def _is_controller(config):
    return not hasattr(config, "workerinput")


def pytest_sessionstart(session):
    if _is_controller(session.config):
        watch = egress.SessionWatch()
        watch.start()
        session.config.stash[EGRESS_WATCH] = watch


def pytest_sessionfinish(session):
    watch = session.config.stash.get(EGRESS_WATCH, None)
    if watch is not None and watch.finish() and session.exitstatus in (
            pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config):
    watch = config.stash.get(EGRESS_WATCH, None)
    if watch is not None and watch.summary:
        terminalreporter.write_sep("-", "egress")
        terminalreporter.write_line(watch.summary, red=watch.failed,
                                    yellow=watch.summary.startswith("WARNING"))


def pytest_unconfigure(config):
    watch = config.stash.get(EGRESS_WATCH, None)
    if watch is not None:
        watch.abandon()
