"""The order and idempotence of `steer cluster create` (cli/baremetal/orchestrate.py), with fakes."""

import threading
from dataclasses import dataclass, field

import pytest

from cli.baremetal import topology as topo
from cli.baremetal.fleet import StepError
from cli.baremetal.orchestrate import Create, cut, phase_of
from cli.baremetal.peer_protocol import ModeError, Protocol


@dataclass
class Service:
    name: str


@dataclass
class Plan:
    files: list = field(default_factory=list)
    services: list = field(default_factory=list)


@dataclass
class Finding:
    host: str
    check: str
    ok: bool
    message: str = ""
    fix: str = ""


class FakeConn:
    def __init__(self, host):
        self.host, self.closed = host, False

    def close(self):
        self.closed = True


class FakeOps:
    """Hosts held in memory: what is installed and running on each; a log of every call."""

    def __init__(self, fail=None):
        self.log, self.lock = [], threading.Lock()
        self.installed, self.running, self.files = {}, {}, {}
        self.fail = fail or {}          # (step, host name) -> exception
        self.conns = []
        self.restarted = {}
        self.protocols, self.new_protocol = {}, Protocol(2, (1, 2))   # store peer protocols

    def _record(self, step, host):
        with self.lock:
            self.log.append((step, host))
        if (step, host) in self.fail:
            raise self.fail[(step, host)]

    def connect(self, host):
        self._record("connect", host.name)
        conn = FakeConn(host.name)
        self.conns.append(conn)
        return conn

    def fix_for(self, error):
        return "do the fix"

    def check(self, conn, host):
        self._record("check", host.name)
        bad = self.fail.get(("finding", host.name))
        return [Finding(host.name, "python", True), *([bad] if bad else [])]

    def wheelhouse(self):
        return "/wheels"

    def install(self, conn, wheelhouse, version):
        self._record("install", conn.host)
        changed = self.installed.get(conn.host) != version
        self.installed[conn.host] = version
        return changed

    def credentials(self, topology):
        self._record("pki", "-")

    def plan(self, topology, host):
        names = (["steersman-store", "steersman-apiserver", "steersman-scheduler",
                  "steersman-controller-manager"] if host.control else []) + \
                (["containerd", "steersman-agent", "steersman-proxy"] if host.worker else [])
        return Plan(files=[f"/etc/steersman/{host.name}.conf"], services=[Service(n) for n in names])

    def existing_services(self, conn, plan):
        return set(self.running.get(conn.host, ()))

    def apply(self, conn, plan):
        self._record("apply", conn.host)
        running = self.running.setdefault(conn.host, set())
        removed = running - {s.name for s in plan.services}     # as services.apply_host does
        running -= removed
        started = [s.name for s in plan.services if s.name not in running]
        running.update(started)
        self.files[conn.host] = list(plan.files)
        return started + [f"removed {n}" for n in removed]

    def describe(self, changes):
        return [n if n.startswith("removed") else f"started {n}" for n in changes]

    def restart(self, conn, names):
        self._record("restart", conn.host)
        self.restarted.setdefault(conn.host, []).extend(names)

    def stop(self, conn, names):
        self._record("stop", conn.host)
        self.running[conn.host] = self.running.get(conn.host, set()) - set(names)

    def peer_protocol(self, conn):
        self._record("probe", conn.host)
        return self.protocols.get(conn.host, Protocol(2, (1, 2)))

    def release_protocol(self, wheelhouse):
        return self.new_protocol

    def teardown(self, conn, host, plan):
        self._record("teardown", host.name)
        self.running.pop(host.name, None)
        self.files.pop(host.name, None)
        self.installed.pop(host.name, None)


class FakeHealth:
    def __init__(self, ops, fail_at=None):
        self.ops, self.fail_at = ops, fail_at
        self.seen = {}

    def _wait(self, what):
        self.ops._record(f"wait {what}", "-")
        self.seen[what] = set().union(*self.ops.running.values())
        if what == self.fail_at:
            raise StepError("h1", f"wait {what}", "timed out", "read the log")

    def store_quorum(self, topology, say):
        self._wait("store")

    def apiservers_ready(self, topology, say):
        self._wait("api")

    def controllers_running(self, topology, say):
        self._wait("controllers")

    def nodes_ready(self, topology, say, hosts=None):
        self._wait("nodes")


def make_topology(dedicated=False):
    return topo.build("t", "0.1.0", ["root@h1", "root@h2", "root@h3"], ["root@h4", "root@h5"],
                      dedicated_control=dedicated, resolve=lambda name: "192.0.2." + name[1:])


def run(ops, health=None, **kwargs):
    lines = []
    create = Create(make_topology(kwargs.pop("dedicated", False)), ops,
                    health or FakeHealth(ops), lines.append, **kwargs)
    return create.run(), lines


def test_phases_start_in_order_each_after_its_wait():
    ops = FakeOps()
    health = FakeHealth(ops)
    run(ops, health)
    steps = [step for step, _ in ops.log]
    order = ["connect", "check", "install", "pki", "wait store", "wait api",
             "wait controllers", "wait nodes"]
    positions = [max(i for i, s in enumerate(steps) if s == name) for name in order]
    assert positions == sorted(positions)
    assert steps.count("apply") == 3 + 3 + 3 + 5        # phase by phase, only hosts with work
    # What ran while each wait began: nothing started before what it needs answered.
    assert health.seen["store"] == {"steersman-store"}
    assert health.seen["api"] == {"steersman-store", "steersman-apiserver"}
    assert "steersman-agent" not in health.seen["controllers"]
    assert "steersman-agent" in health.seen["nodes"]
    assert ops.running["h4"] == {"containerd", "steersman-agent", "steersman-proxy"}
    assert "steersman-store" in ops.running["h1"] and "steersman-agent" in ops.running["h1"]
    assert all(c.closed for c in ops.conns)


def test_cut_keeps_services_of_earlier_phases_and_every_file():
    plan = Plan(files=["a"], services=[Service("steersman-agent"), Service("steersman-store"),
                                       Service("steersman-apiserver")])
    assert [s.name for s in cut(plan, 0).services] == ["steersman-store"]
    assert [s.name for s in cut(plan, 1).services] == ["steersman-store", "steersman-apiserver"]
    assert cut(plan, 0).files == ["a"]
    assert [s.name for s in cut(plan, 0, {"steersman-agent"}).services] == \
        ["steersman-agent", "steersman-store"]
    assert phase_of("steersman-controller-manager") == 2
    assert phase_of("containerd") == 3


def test_second_run_reports_unchanged_on_every_host():
    ops = FakeOps()
    first, _ = run(ops)
    assert set(first["changed"]) == {"h1", "h2", "h3", "h4", "h5"}
    second, lines = run(ops)
    assert second["changed"] == {}
    for name in ("h1", "h2", "h3", "h4", "h5"):
        assert f"{name}: unchanged" in lines


def test_dedicated_control_hosts_run_no_agent():
    ops = FakeOps()
    run(ops, dedicated=True)
    assert "steersman-agent" not in ops.running["h1"]
    assert "steersman-agent" in ops.running["h5"]


def test_failed_host_check_stops_before_anything_is_installed():
    bad = Finding("h3", "ip_forward", False, "not writable", "sysctl -w net.ipv4.ip_forward=1")
    ops = FakeOps(fail={("finding", "h3"): bad})
    with pytest.raises(StepError) as caught:
        run(ops)
    assert caught.value.host == "h3" and "ip_forward" in caught.value.step
    assert "sysctl" in caught.value.fix
    assert not any(step in ("install", "apply", "teardown") for step, _ in ops.log)


def test_connect_failure_names_the_host_and_touches_nothing():
    ops = FakeOps(fail={("connect", "h2"): OSError("host key mismatch SHA256:abc")})
    with pytest.raises(StepError) as caught:
        run(ops)
    assert caught.value.host == "h2" and caught.value.step == "connect"
    assert "SHA256:abc" in str(caught.value)
    assert not any(step in ("check", "install", "teardown") for step, _ in ops.log)
    assert all(c.closed for c in ops.conns)


def test_failure_after_install_removes_everything_on_a_fresh_create():
    ops = FakeOps()
    with pytest.raises(StepError) as caught:
        run(ops, FakeHealth(ops, fail_at="api"))
    assert caught.value.step == "wait api"
    assert sorted(h for step, h in ops.log if step == "teardown") == ["h1", "h2", "h3", "h4", "h5"]
    assert ops.running == {} and ops.installed == {}


def test_keep_on_failure_leaves_hosts_as_they_are():
    ops = FakeOps()
    with pytest.raises(StepError):
        run(ops, FakeHealth(ops, fail_at="nodes"), keep_on_failure=True)
    assert not any(step == "teardown" for step, _ in ops.log)
    assert ops.running["h1"]


def test_a_failed_rerun_of_an_existing_cluster_removes_nothing():
    ops = FakeOps()
    run(ops)
    with pytest.raises(StepError):
        run(ops, FakeHealth(ops, fail_at="store"), new_hosts=set())
    assert not any(step == "teardown" for step, _ in ops.log)


def test_a_failed_join_removes_only_the_new_host():
    ops = FakeOps()
    run(ops)
    with pytest.raises(StepError):
        run(ops, FakeHealth(ops, fail_at="nodes"), new_hosts={"h5"})
    assert [h for step, h in ops.log if step == "teardown"] == ["h5"]
    assert "h5" not in ops.running and ops.running["h4"]


def test_install_failure_on_one_host_names_it_with_the_fix():
    ops = FakeOps(fail={("install", "h4"): RuntimeError("pip: no space left")})
    with pytest.raises(StepError) as caught:
        run(ops)
    assert caught.value.host == "h4" and caught.value.step == "install the release"
    assert caught.value.fix == "do the fix"


def test_topology_rejects_two_control_hosts_and_duplicates():
    with pytest.raises(ValueError, match="1, 3 or 5"):
        topo.build("t", "1", ["root@a", "root@b"], [], resolve=lambda n: "192.0.2.1")
    with pytest.raises(ValueError, match="named twice"):
        topo.build("t", "1", ["root@a"], ["root@a"], resolve=lambda n: "192.0.2.1")
    assert topo.split_target("admin@10.0.0.1:2222") == ("admin", "10.0.0.1", 2222)
    with pytest.raises(ValueError):
        topo.split_target("10.0.0.1")


def test_topology_round_trips_through_its_record():
    t = make_topology()
    assert topo.Topology.from_json(t.to_json()) == t


def test_a_new_build_of_the_same_version_restarts_what_runs_it_phase_by_phase():
    ops = FakeOps()
    run(ops)
    ops.installed["h1"] = "an older build"
    second, lines = run(ops)
    assert ops.restarted == {"h1": ["steersman-store", "steersman-apiserver", "steersman-scheduler",
                                    "steersman-controller-manager",
                                    "steersman-agent", "steersman-proxy"]}
    assert "h1" in second["changed"] and "h2" not in second["changed"]


def test_upgrade_goes_one_host_at_a_time_store_members_first_each_after_health():
    import dataclasses

    from cli.baremetal.upgrade import Upgrade
    ops = FakeOps()
    run(ops)
    ops.log.clear()
    topology = dataclasses.replace(make_topology(), version="0.2.0")
    Upgrade(topology, ops, FakeHealth(ops)).run()
    installs = [h for step, h in ops.log if step == "install"]
    assert installs == ["h1", "h2", "h3", "h4", "h5"]
    steps = [step for step, _ in ops.log]
    # Each control host is installed, applied, then waited for before the next.
    first, second = steps.index("install"), steps.index("install", steps.index("install") + 1)
    assert steps[first:second] == ["install", "apply", "wait store", "wait api", "wait nodes",
                                   "connect"]
    assert set(ops.installed.values()) == {"0.2.0"}


def test_upgrade_stops_at_the_failing_host():
    import dataclasses

    from cli.baremetal.upgrade import Upgrade
    ops = FakeOps(fail={("install", "h2"): RuntimeError("no space left")})
    topology = dataclasses.replace(make_topology(), version="0.2.0")
    with pytest.raises(StepError) as caught:
        Upgrade(topology, ops, FakeHealth(ops)).run()
    assert caught.value.host == "h2"
    assert [h for step, h in ops.log if step == "install"] == ["h1", "h2"]


def upgrade_to(ops, version="0.2.0", mode="auto"):
    import dataclasses

    from cli.baremetal.upgrade import Upgrade
    topology = dataclasses.replace(make_topology(), version=version)
    Upgrade(topology, ops, FakeHealth(ops), mode=mode).run()


def test_auto_rolls_when_the_store_protocol_is_unchanged():
    ops = FakeOps()
    run(ops)
    ops.log.clear()
    upgrade_to(ops)
    steps = [step for step, _ in ops.log]
    assert "stop" not in steps
    assert steps.index("wait store") < steps.index("install", steps.index("install") + 1)


def test_auto_goes_together_across_a_protocol_change_store_members_first():
    ops = FakeOps()
    run(ops)
    ops.log.clear()
    ops.protocols = {h: Protocol(1, (1,)) for h in ("h1", "h2", "h3")}
    upgrade_to(ops)
    log = ops.log
    stops = [i for i, (step, _) in enumerate(log) if step == "stop"]
    installs = [i for i, (step, _) in enumerate(log) if step == "install"]
    applies = [i for i, (step, _) in enumerate(log) if step == "apply"]
    assert sorted(log[i][1] for i in stops) == ["h1", "h2", "h3"]
    # Every control host installed before any member stops; all stopped before any starts.
    assert max(installs[:3]) < min(stops) and max(stops) < min(applies)
    assert sorted(log[i][1] for i in applies[:3]) == ["h1", "h2", "h3"]
    wait_store = log.index(("wait store", "-"))
    assert max(applies[:3]) < wait_store < log.index(("wait api", "-")) < installs[3]
    assert [log[i][1] for i in installs[3:]] == ["h4", "h5"]     # workers one at a time
    assert set(ops.installed.values()) == {"0.2.0"}


def test_rolling_across_a_protocol_change_is_refused_before_anything_changes():
    ops = FakeOps()
    run(ops)
    ops.log.clear()
    ops.protocols = {"h2": Protocol(1, (1,))}
    with pytest.raises(ModeError, match="rolling upgrade is impossible.*h2 speaks 1.*"
                                        "--mode together"):
        upgrade_to(ops, mode="rolling")
    assert not [s for s, _ in ops.log if s in ("install", "stop", "apply")]


def test_together_is_refused_when_the_new_release_cannot_read_the_data():
    ops = FakeOps()
    run(ops)
    ops.log.clear()
    ops.protocols = {h: Protocol(1, (1,)) for h in ("h1", "h2", "h3")}
    ops.new_protocol = Protocol(3, (2, 3))
    with pytest.raises(ModeError, match="cannot read the store data of peer protocol 1"):
        upgrade_to(ops, mode="together")
    assert not [s for s, _ in ops.log if s in ("install", "stop", "apply")]


def test_together_may_be_asked_for_the_same_protocol():
    ops = FakeOps()
    run(ops)
    ops.log.clear()
    upgrade_to(ops, mode="together")
    assert sorted(h for s, h in ops.log if s == "stop") == ["h1", "h2", "h3"]


def test_together_stops_before_any_member_starts_when_one_host_fails_to_stop():
    ops = FakeOps(fail={("stop", "h2"): RuntimeError("supervisorctl: no such process")})
    run(ops)
    ops.fail = {("stop", "h2"): RuntimeError("supervisorctl: no such process")}
    ops.log.clear()
    ops.protocols = {h: Protocol(1, (1,)) for h in ("h1", "h2", "h3")}
    with pytest.raises(StepError) as caught:
        upgrade_to(ops)
    assert caught.value.host == "h2" and caught.value.step == "stop the store member"
    assert "apply" not in [s for s, _ in ops.log]
    assert all(conn.closed for conn in ops.conns)
