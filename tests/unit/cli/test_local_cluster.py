"""Process supervision of the local cluster, with small real processes (sleep, python -c)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from cli import cluster_cmd, supervisor
from cli.local_cluster import LocalCluster, alive, proc_start_time, terminate, wait_all_gone
from cli.main import build_parser, main

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]
# Ignores SIGTERM (as a wedged process would) and forks a helper into its own group.
STUBBORN = [sys.executable, "-c",
            "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print('ready', flush=True); time.sleep(60)"]


def wait_for_log(cluster, name, text, timeout=10):
    deadline = time.monotonic() + timeout
    while text not in cluster.log_tail(name):
        assert time.monotonic() < deadline, f"{name} never logged {text!r}"
        time.sleep(0.02)


@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster(tmp_path)
    yield c
    c.stop(list(c.processes), timeout=1)


def test_start_records_pid_start_time_pid_file_and_log(cluster, tmp_path):
    pid = cluster.start("sleeper", SLEEP, "test")
    proc = cluster.processes["sleeper"]
    assert proc["pid"] == pid and proc["start"] == proc_start_time(pid)
    with open(tmp_path / "cluster" / "pids" / "sleeper.pid") as f:
        assert int(f.read()) == pid
    assert os.path.exists(tmp_path / "cluster" / "logs" / "sleeper.log")
    assert os.getsid(pid) == pid            # its own session: outlives `steer up`
    reloaded = LocalCluster(tmp_path)
    assert reloaded.is_running("sleeper") and reloaded.running() == ["sleeper"]


def test_stop_sends_sigterm_and_forgets_the_pid(cluster, tmp_path):
    pid = cluster.start("sleeper", SLEEP, "test")
    assert cluster.stop(["sleeper"], timeout=5) == []
    assert not alive(pid)
    assert cluster.processes["sleeper"]["pid"] == 0
    assert not os.path.exists(tmp_path / "cluster" / "pids" / "sleeper.pid")
    assert not LocalCluster(tmp_path).is_running("sleeper")


def test_a_process_ignoring_sigterm_is_killed_with_its_group(cluster):
    pid = cluster.start("stubborn", STUBBORN, "test")
    wait_for_log(cluster, "stubborn", "ready")
    helpers = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != pid
               and _pgid(int(p)) == pid]
    assert helpers
    killed = cluster.stop(["stubborn"], timeout=0.5)
    assert killed == [pid]
    assert not alive(pid)
    assert wait_all_gone({h: None for h in helpers}, 5) == {}


def test_a_reused_pid_is_never_taken_for_ours(cluster):
    pid = cluster.start("sleeper", SLEEP, "test")
    cluster.processes["sleeper"]["start"] -= 1       # as if the pid now named another process
    assert not cluster.is_running("sleeper")
    cluster.stop(["sleeper"], timeout=1)
    assert alive(pid)                                # not signalled: not "ours"
    os.kill(pid, signal.SIGKILL)
    wait_all_gone({pid: None}, 5)


def test_terminate_ignores_pids_that_are_gone():
    proc = subprocess.Popen(SLEEP)
    start = proc_start_time(proc.pid)
    proc.kill()
    proc.wait()
    assert terminate({proc.pid: start}, timeout=0.1) == []


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _pgid(pid):
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _fake_container(cluster, node, cid, argv):
    """A container as the process runtime records it: its own session, a pid file."""
    state = os.path.join(cluster.dir, "agents", node, "containers", cid)
    os.makedirs(state)
    with open(os.path.join(state, "out"), "wb") as out:
        proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL,
                                stdout=out)
    with open(os.path.join(state, "pid"), "w") as f:
        json.dump({"pid": proc.pid, "start": proc_start_time(proc.pid)}, f)
    return proc


def test_stop_containers_ends_every_recorded_container(cluster):
    polite = _fake_container(cluster, "node-1", "c1", SLEEP)
    stubborn = _fake_container(cluster, "node-2", "c2", STUBBORN)
    os.makedirs(os.path.join(cluster.dir, "agents", "node-2", "containers", "no-pid-yet"))
    assert {pid for _, pid, _ in cluster.running_containers()} == {polite.pid, stubborn.pid}
    out = os.path.join(cluster.dir, "agents", "node-2", "containers", "c2", "out")
    deadline = time.monotonic() + 10        # its SIGTERM handler is in place once it speaks
    while b"ready" not in _read(out):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert cluster.stop_containers(timeout=1) == 2
    assert polite.wait(5) == -signal.SIGTERM
    assert stubborn.wait(5) == -signal.SIGKILL
    assert cluster.running_containers() == []


def test_wait_for_names_the_process_that_exited(cluster):
    cluster.start("quitter", [sys.executable, "-c", "print('bad flag'); raise SystemExit(2)"],
                  "test")
    with pytest.raises(cluster_cmd.Failure) as err:
        cluster_cmd.wait_for(cluster, ["quitter"], lambda: False, "readiness", timeout=10)
    assert err.value.name == "quitter"
    wait_for_log(cluster, "quitter", "bad flag")


def test_a_failed_up_shows_the_log_tail_and_stops_what_it_started(cluster, capsys):
    pid = cluster.start("sleeper", SLEEP, "test")
    cluster.start("quitter", [sys.executable, "-c", "print('cannot bind'); raise SystemExit(1)"],
                  "test")
    wait_for_log(cluster, "quitter", "cannot bind")
    with pytest.raises(cluster_cmd.CommandError) as err:
        cluster_cmd.fail(cluster, ["sleeper", "quitter"],
                         cluster_cmd.Failure("quitter exited", "quitter"))
    assert "did not come up: quitter exited" in str(err.value)
    assert "cannot bind" in capsys.readouterr().out
    assert not alive(pid)


def test_config_and_kubeconfig(tmp_path):
    kubeconfig = str(tmp_path / "kubeconfig")
    cluster_cmd.write_config(str(tmp_path), "http://127.0.0.1:1234", kubeconfig,
                             str(tmp_path / "cluster"))
    with open(tmp_path / "config") as f:
        assert yaml.safe_load(f) == {"apiServer": "http://127.0.0.1:1234", "token": "",
                                     "kubeconfig": kubeconfig,
                                     "clusterDir": str(tmp_path / "cluster")}
    with open(kubeconfig) as f:
        kube = yaml.safe_load(f)
    assert kube["current-context"] == "steersman"
    context = kube["contexts"][0]["context"]
    assert kube["clusters"][0] == {"name": "steersman",
                                   "cluster": {"server": "http://127.0.0.1:1234"}}
    assert context["cluster"] == "steersman" and context["user"] == "steersman"


def test_up_twice_says_already_up(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STEER_HOME", str(tmp_path))
    c = LocalCluster(tmp_path)
    c.start("sleeper", SLEEP, "test")
    try:
        args = build_parser().parse_args(["up"])
        assert args.func(args) == 0
        assert "already up" in capsys.readouterr().out
    finally:
        supervisor.stop(c, timeout=5)   # "already up" starts the supervisor too
        c.stop(["sleeper"], timeout=1)


def test_down_and_status_without_a_cluster(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STEER_HOME", str(tmp_path))
    assert main(["down"]) == 0
    assert "no local cluster" in capsys.readouterr().out
    assert main(["status"]) == 1
    assert "run `steer up`" in capsys.readouterr().err


def test_purge_removes_only_an_agents_tmpfs_dir(tmp_path):
    victim = tmp_path / "precious"
    victim.mkdir()
    record = tmp_path / "tmpfs-dir"
    record.write_text(f"{victim}\n")           # a record naming a path an agent never makes
    cluster_cmd.remove_agent_tmpfs(str(record))
    assert victim.is_dir()
    made = "/dev/shm/steer-agent-test-" + os.urandom(4).hex()
    os.makedirs(os.path.join(made, "pod"))
    record.write_text(made)
    cluster_cmd.remove_agent_tmpfs(str(record))
    assert not os.path.exists(made)
