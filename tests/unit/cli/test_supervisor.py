"""The local cluster's supervisor with a fake clock and fake processes; the key file."""

import json
import os
import signal
import stat

import yaml

from cli import encryption_config, supervisor
from cli.local_cluster import LocalCluster


class FakeChild:
    def __init__(self, pid):
        self.pid, self.returncode = pid, None

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        return self.returncode


class World:
    """Processes that live until the test ends them; a clock the test moves."""

    def __init__(self):
        self.now = 0.0
        self.live = set()
        self.children = {}
        self.next_pid = 1000
        self.spawned = []

    def clock(self):
        return self.now

    def alive(self, pid, start=None):
        return pid in self.live

    def spawn(self, argv, log, cwd):
        self.next_pid += 1
        child = FakeChild(self.next_pid)
        self.children[child.pid] = child
        self.live.add(child.pid)
        self.spawned.append(argv)
        return child

    def die(self, pid, code=None):
        self.live.discard(pid)
        if pid in self.children:
            self.children[pid].returncode = code


def recorded_cluster(tmp_path, world):
    cluster = LocalCluster(str(tmp_path))
    for pid, (name, kind) in enumerate([("store-s1", "store"), ("apiserver", "apiserver"),
                                        ("scheduler", "scheduler"), ("node-1", "agent")],
                                       start=1):
        cluster.processes[name] = {"argv": ["run", name], "pid": pid, "start": 7,
                                   "log": str(tmp_path / f"{name}.log"), "kind": kind}
        world.live.add(pid)
    cluster.save()
    return cluster


def make(tmp_path, world, kinds=supervisor.DEFAULT_KINDS):
    return supervisor.Supervisor(str(tmp_path), kinds, clock=world.clock, wall=lambda: 1e9,
                                 spawn=world.spawn, alive=world.alive,
                                 start_time=lambda pid: 42)


def test_adopts_only_the_kinds_it_is_given(tmp_path):
    world = World()
    recorded_cluster(tmp_path, world)
    s = make(tmp_path, world, kinds=("store", "apiserver", "scheduler"))
    assert set(s.programs) == {"store-s1", "apiserver", "scheduler"}
    assert not s.step()


def test_steer_up_supervises_every_kind_it_starts(tmp_path):
    world = World()
    recorded_cluster(tmp_path, world)
    assert set(make(tmp_path, world).programs) == {"store-s1", "apiserver", "scheduler", "node-1"}


def test_an_exited_program_restarts_with_doubling_delays_up_to_30s(tmp_path):
    world = World()
    recorded_cluster(tmp_path, world)
    s = make(tmp_path, world)
    world.die(3)                                 # the adopted scheduler: code unknown
    assert s.step()
    program = s.programs["scheduler"]
    assert program.state == "backoff" and "unknown" in program.last_exit
    delays = []
    for _ in range(7):
        start = world.now
        while program.state != "running":
            world.now += 0.25
            s.step()
        delays.append(world.now - start)
        world.now += 5                           # up 5 s: not long enough to reset
        world.die(program.pid, -signal.SIGKILL)
        s.step()
        assert program.last_exit == "killed by SIGKILL"
    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert program.restarts == 7 and world.spawned[-1] == ["run", "scheduler"]


def test_a_program_up_for_a_minute_starts_again_after_one_second(tmp_path):
    world = World()
    recorded_cluster(tmp_path, world)
    s = make(tmp_path, world)
    program = s.programs["apiserver"]
    program.delay = 16.0
    world.now = 100.0
    world.die(2)
    s.step()
    assert program.next_start == 101.0
    world.now = 101.0
    s.step()
    assert program.state == "running"
    world.die(program.pid, 3)
    s.step()
    assert program.last_exit == "exited with code 3" and program.delay == 2.0


def test_restarts_are_recorded_in_the_state_file_and_cluster_json(tmp_path):
    world = World()
    cluster = recorded_cluster(tmp_path, world)
    s = make(tmp_path, world)
    world.die(1)
    s.step()
    world.now += 1
    s.step()
    s.save()
    new_pid = s.programs["store-s1"].pid
    assert LocalCluster(str(tmp_path)).processes["store-s1"]["pid"] == new_pid
    state = supervisor.read_state(cluster)
    assert state["programs"]["store-s1"]["restarts"] == 1
    assert state["kinds"] == list(supervisor.DEFAULT_KINDS)
    path = os.path.join(cluster.dir, supervisor.STATE_FILE)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(os.path.join(cluster.pids_dir, "store-s1.pid")) as f:
        assert int(f.read()) == new_pid


def test_supervised_names_need_a_running_supervisor(tmp_path):
    world = World()
    cluster = recorded_cluster(tmp_path, world)
    assert supervisor.supervised(cluster, ["scheduler", "node-1"]) == []
    state = {"pid": os.getpid(), "start": None, "kinds": ["scheduler"], "programs": {}}
    with open(os.path.join(cluster.dir, supervisor.STATE_FILE), "w") as f:
        json.dump(state, f)
    assert supervisor.supervised(cluster, ["scheduler", "node-1"]) == ["scheduler"]


def test_encryption_config_is_written_once_0600(tmp_path):
    path = encryption_config.ensure(str(tmp_path), random=lambda n: b"k" * n)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path) as f:
        doc = yaml.safe_load(f)
    providers = doc["resources"][0]["providers"]
    assert doc["kind"] == "EncryptionConfiguration" and doc["resources"][0]["resources"] == [
        "secrets"]
    assert list(providers[0]) == ["secretbox"] and providers[-1] == {"identity": {}}
    before = open(path).read()
    encryption_config.ensure(str(tmp_path), random=lambda n: b"z" * n)
    assert open(path).read() == before
