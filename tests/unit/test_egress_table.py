"""The egress watch's table text, counter parsing and session verdicts (no nft needed)."""

import json

import pytest

from tests.support import egress


def test_table_text_counts_and_drops_every_range_both_ways_at_every_hook():
    text = egress.table_text("steer-egress-watch-7", ["eth0", "eth1"])
    assert text.startswith("table inet steer-egress-watch-7\n"
                           "delete table inet steer-egress-watch-7\n")
    for hook, priority in (("output", -10), ("forward", -10), ("postrouting", 90)):
        assert f"type filter hook {hook} priority {priority}; policy accept;" in text
    rules = [line.strip() for line in text.splitlines() if "counter" in line]
    assert len(rules) == 3 * len(egress.WATCHED_RANGES) * 2
    assert all(rule.startswith('oifname { "eth0", "eth1" } ip ') for rule in rules)
    assert all(" counter drop comment " in rule for rule in rules)
    assert ('oifname { "eth0", "eth1" } ip saddr 10.244.0.0/16 counter drop '
            'comment "saddr 10.244.0.0/16"') in rules
    assert {"10.244.0.0/16", "172.31.250.0/24", "10.96.0.0/12",
            "172.31.240.0/24"} == set(egress.WATCHED_RANGES)


def test_table_text_takes_other_ranges_and_refuses_no_interface():
    text = egress.table_text("t", ["d0"], ranges=("192.0.2.0/24",))
    assert 'oifname { "d0" } ip daddr 192.0.2.0/24 counter drop' in text
    assert "10.244.0.0/16" not in text
    with pytest.raises(ValueError, match="no default route"):
        egress.table_text("t", [])


def test_table_names_are_unique_per_process():
    assert egress.table_name(41) == "steer-egress-watch-41"
    assert egress.table_name() != egress.table_name(1)


def _rule(chain, comment, packets, nbytes):
    return {"rule": {"family": "inet", "table": "t", "chain": chain, "handle": 3,
                     "comment": comment,
                     "expr": [{"match": {"op": "==", "left": {"meta": {"key": "oifname"}},
                                         "right": "eth0"}},
                              {"counter": {"packets": packets, "bytes": nbytes}},
                              {"drop": None}]}}


LISTING = {"nftables": [
    {"metainfo": {"version": "1.0.6"}},
    {"table": {"family": "inet", "name": "t", "handle": 1}},
    {"chain": {"family": "inet", "table": "t", "name": "watch-output", "hook": "output"}},
    _rule("watch-output", "daddr 10.244.0.0/16", 1, 29),
    _rule("watch-forward", "saddr 172.31.250.0/24", 0, 0),
    {"rule": {"chain": "watch-output", "expr": [{"accept": None}]}},
]}


def test_counters_are_parsed_by_hook_direction_and_range():
    hits = egress.parse_counters(LISTING)
    assert hits == [egress.Hit("output", "daddr", "10.244.0.0/16", 1, 29),
                    egress.Hit("forward", "saddr", "172.31.250.0/24", 0, 0)]
    assert egress.leaks(hits) == hits[:1]
    assert hits[0].describe() == ("1 packet(s), 29 byte(s) with ip daddr in 10.244.0.0/16 "
                                  "at hook output")


def test_stale_tables_are_only_ours_of_dead_processes(monkeypatch):
    tables = {"nftables": [{"table": {"family": "inet", "name": name}} for name in (
        "steer-egress-watch-10", "steer-egress-watch-11", "steer_egress_guard",
        "steer-egress-watch-x")] + [{"table": {"family": "ip", "name": "steer-egress-watch-12"}}]}
    monkeypatch.setattr(egress, "_run", lambda argv, netns=None, stdin=None: json.dumps(tables))
    assert egress.stale_tables(alive=lambda pid: pid == 11) == ["steer-egress-watch-10"]


@pytest.fixture
def fake_nft(monkeypatch):
    """Stand-ins for nft: the session watch's calls are recorded, counters are given."""
    calls, state = [], {"hits": []}
    monkeypatch.setattr(egress, "unavailable_reason", lambda: None)
    monkeypatch.setattr(egress, "stale_tables", lambda netns=None: [])
    monkeypatch.setattr(egress, "default_route_interfaces", lambda netns=None: ["eth0"])
    monkeypatch.setattr(egress, "install", lambda *a, **k: calls.append(("install", a)))
    monkeypatch.setattr(egress, "remove", lambda *a, **k: calls.append(("remove", a)))
    monkeypatch.setattr(egress, "read_counters", lambda *a, **k: state["hits"])
    return calls, state


def test_a_quiet_run_passes_and_says_what_was_watched(fake_nft):
    calls, state = fake_nft
    watch = egress.SessionWatch("steer-egress-watch-5")
    assert watch.start()
    state["hits"] = [egress.Hit("output", "daddr", "10.244.0.0/16", 0, 0)]
    assert watch.finish() is False and not watch.failed
    assert "0 packets" in watch.summary and "on eth0" in watch.summary
    assert [c[0] for c in calls] == ["install", "remove"]


def test_a_leak_fails_the_run_and_names_range_and_count(fake_nft):
    _, state = fake_nft
    watch = egress.SessionWatch("steer-egress-watch-5")
    watch.start()
    state["hits"] = [egress.Hit("forward", "saddr", "10.244.0.0/16", 3, 252)]
    assert watch.finish() is True and watch.failed
    assert "FAILED" in watch.summary
    assert "3 packet(s), 252 byte(s) with ip saddr in 10.244.0.0/16 at hook forward" \
        in watch.summary


def test_without_root_or_nft_the_check_is_skipped_with_a_warning(monkeypatch):
    monkeypatch.setattr(egress, "unavailable_reason", lambda: "nft is not installed")
    watch = egress.SessionWatch("steer-egress-watch-5")
    assert watch.start() is False
    assert watch.summary == "WARNING egress check skipped: nft is not installed"
    assert watch.finish() is False and not watch.failed


def test_not_root_is_a_reason(monkeypatch):
    monkeypatch.setattr(egress.os, "geteuid", lambda: 1000)
    assert "not root" in egress.unavailable_reason()


class _Session:
    def __init__(self, exitstatus):
        self.exitstatus = exitstatus
        self.config = type("Config", (), {"stash": pytest.Stash()})()


@pytest.mark.parametrize("before, after", [
    (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED),
    (pytest.ExitCode.NO_TESTS_COLLECTED, pytest.ExitCode.TESTS_FAILED),
    (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERRUPTED)])
def test_the_suite_hook_turns_a_leak_into_a_failed_run(fake_nft, before, after):
    from tests import conftest
    _, state = fake_nft
    session = _Session(before)
    conftest.pytest_sessionstart(session)
    state["hits"] = [egress.Hit("postrouting", "daddr", "10.96.0.0/12", 1, 60)]
    conftest.pytest_sessionfinish(session)
    assert session.exitstatus == after


def test_the_suite_hook_leaves_a_quiet_run_alone(fake_nft):
    from tests import conftest
    session = _Session(pytest.ExitCode.OK)
    conftest.pytest_sessionstart(session)
    conftest.pytest_sessionfinish(session)
    assert session.exitstatus == pytest.ExitCode.OK
