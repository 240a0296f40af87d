"""Applying a host plan (agent/provision/services.py) over a fake connection.

The fake host keeps its files under a temp dir (absolute paths are mapped into it,
shell commands run locally with the paths rewritten) and simulates systemctl or
supervisorctl/supervisord, recording every start, restart and reload.
"""

import os
import re
import shlex
import subprocess
from types import SimpleNamespace

import pytest

from agent.provision import plan as planmod
from agent.provision import services, units
from agent.provision.plan import ClusterSpec, HostSpec

_ABSOLUTE = re.compile(r"(?<![\w./-])/(etc|var|run|opt)/")


class FakeHost:
    """A HostConnection (run, put_bytes, read_bytes) over ``root``, with a fake manager."""

    def __init__(self, root, manager):
        self.root, self.manager = str(root), manager
        self.log = []
        self.active = {}            # systemd: unit -> active; supervisord: program -> state
        self.loaded = {}            # supervisord: program -> conf content loaded
        self.supervisord = False
        if manager == "systemd":
            os.makedirs(self.local("/run/systemd/system"))

    def local(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def read_bytes(self, path):
        try:
            with open(self.local(path), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def put_bytes(self, data, path, mode=0o600):
        self.log.append(("put", path))
        with open(self.local(path), "wb") as f:
            f.write(data)
        os.chmod(self.local(path), mode)

    def run(self, command, *, sudo=False, check=True, timeout=60, input=None):
        argv = shlex.split(command) if isinstance(command, str) and not command.startswith(
            ("if ", "set -e", "stat ", "grep ", "chmod ", "install ")) else command
        if isinstance(argv, list) and argv[0] in ("systemctl", "supervisorctl"):
            status, out = getattr(self, argv[0])(argv[1:])
        elif isinstance(argv, list) and argv[0] == "rm":
            os.remove(self.local(argv[-1]))
            status, out = 0, ""
        else:
            script = command if isinstance(command, str) else shlex.join(command)
            if "supervisord -c" in script:
                return self.start_supervisord()
            script = _ABSOLUTE.sub(lambda m: self.local("/" + m.group(1)) + "/", script)
            done = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
            status, out = done.returncode, done.stdout.replace(self.root, "")
        if check and status:
            raise RuntimeError(f"{command!r} exited {status}")
        return SimpleNamespace(exit_status=status, stdout=out, stderr="")

    # -- systemd ---------------------------------------------------------------------------
    def systemctl(self, args):
        verb, names = args[0], [a.removesuffix(".service") for a in args[1:] if a[0] != "-"]
        self.log.append((verb, *names))
        if verb == "is-active":
            return (0 if self.active.get(names[0]) else 3), ""
        if verb == "is-enabled":
            return 0, ""
        if verb == "show":
            state = "active" if self.active.get(names[-1]) else "inactive"
            return 0, f"ActiveState={state}\nMainPID=42\n"
        if verb in ("enable", "restart", "start"):
            for name in names:
                self.active[name] = True
        if verb == "disable":
            for name in names:
                self.active.pop(name, None)
        return 0, ""

    # -- supervisord ---------------------------------------------------------------------
    def programs(self):
        directory = self.local("/etc/steersman/supervisor/conf.d")
        return {name[:-5]: open(os.path.join(directory, name)).read()
                for name in sorted(os.listdir(directory))}

    def start_supervisord(self):
        self.log.append(("supervisord",))
        self.supervisord = True
        self.loaded = self.programs()
        self.active = {name: "RUNNING" for name in self.loaded}
        return SimpleNamespace(exit_status=0, stdout="", stderr="")

    def supervisorctl(self, args):
        args = args[2:]         # -c CONF
        verb, names = args[0], args[1:]
        if not self.supervisord:
            return 7, ""
        self.log.append((verb, *names))
        if verb == "pid":
            return 0, "1234\n"
        if verb == "update":
            now, lines = self.programs(), []
            for name in sorted(set(now) | set(self.loaded)):
                if name not in self.loaded:
                    lines.append(f"{name}: added process group")
                    self.active[name] = "RUNNING"
                elif name not in now:
                    lines.append(f"{name}: removed process group")
                    self.active.pop(name)
                elif now[name] != self.loaded[name]:
                    lines.append(f"{name}: stopped\n{name}: updated process group")
            self.loaded = now
            return 0, "\n".join(lines)
        if verb == "status":
            return 0, "\n".join(f"{n:<30} {s:<9} pid 1, uptime 0:00:01"
                                for n, s in self.active.items())
        if verb in ("start", "restart"):
            for name in names:
                self.active[name] = "RUNNING"
        return 0, ""

    def actions(self, *verbs):
        return [entry for entry in self.log if entry[0] in verbs]


H1 = HostSpec("h1", "172.31.240.1")
H4 = HostSpec("h4", "172.31.240.4")


def host_plan(version="0.1.0", host=H1, pod_cidr="10.244.0.0/16"):
    cluster = ClusterSpec("demo", version, control=(H1,), workers=(H1, H4), pod_cidr=pod_cidr)
    creds = {name: f"<{name}>".encode() for c in planmod.credentials_needed(cluster, host)
             for name in c.files}
    return planmod.plan_host(cluster, host, creds)


@pytest.fixture(params=["systemd", "supervisord"])
def fake(request, tmp_path):
    return FakeHost(tmp_path, request.param)


def test_first_apply_writes_everything_and_starts_every_service(fake):
    plan = host_plan()
    assert services.detect_manager(fake) == fake.manager
    changes = services.apply_host(fake, plan)
    names = [s.name for s in plan.services]
    assert changes.changed and changes.started == names and not changes.restarted
    for spec in services.desired_files(plan, fake.manager):
        assert fake.read_bytes(spec.path) == spec.content
        assert os.stat(fake.local(spec.path)).st_mode & 0o777 == spec.mode
    assert os.stat(fake.local("/etc/steersman/pki")).st_mode & 0o777 == 0o700
    assert services.service_status(fake, "steersman-agent").running


def test_second_apply_changes_nothing(fake):
    services.apply_host(fake, host_plan())
    fake.log.clear()
    changes = services.apply_host(fake, host_plan())
    assert not changes.changed, changes
    assert not fake.actions("put", "restart", "enable", "daemon-reload", "supervisord")


def test_a_changed_config_restarts_only_the_services_that_read_it(fake):
    services.apply_host(fake, host_plan())
    fake.log.clear()
    changes = services.apply_host(fake, host_plan(pod_cidr="10.200.0.0/16"))
    # --cluster-cidr is on the controller manager's, agent's and proxy's command lines.
    assert sorted(changes.restarted) == ["steersman-agent", "steersman-controller-manager",
                                         "steersman-proxy"]
    assert "steersman-store" not in str(fake.actions("restart"))


def test_a_changed_credential_restarts_its_reader(fake):
    plan = host_plan()
    services.apply_host(fake, plan)
    secret = next(f for f in plan.files if f.path.endswith("store-server.key"))
    with open(fake.local(secret.path), "wb") as f:
        f.write(b"tampered")
    changes = services.apply_host(fake, plan)
    assert changes.files == [secret.path]
    assert changes.restarted == ["steersman-store"]


def test_an_upgrade_restarts_steersman_but_not_containerd(fake):
    services.apply_host(fake, host_plan())
    changes = services.apply_host(fake, host_plan(version="0.2.0"))
    assert "containerd" not in changes.restarted
    assert sorted(changes.restarted) == sorted(
        s.name for s in host_plan().services if s.name != "containerd")


def test_a_mode_loosened_by_hand_is_put_back(fake):
    plan = host_plan()
    services.apply_host(fake, plan)
    os.chmod(fake.local("/etc/steersman/pki/sa.key"), 0o644)
    changes = services.apply_host(fake, plan)
    assert changes.modes == ["/etc/steersman/pki/sa.key"]
    assert os.stat(fake.local("/etc/steersman/pki/sa.key")).st_mode & 0o777 == 0o600


def test_a_cut_plan_leaves_other_services_alone_and_prune_removes_them(fake):
    full = host_plan()
    services.apply_host(fake, full)
    store_only = planmod.HostPlan(full.host, full.version, full.files,
                                  (full.service("steersman-store"),), full.directories)
    assert not services.apply_host(fake, store_only).removed
    changes = services.apply_host(fake, store_only, prune=True)
    assert sorted(changes.removed) == sorted(s.name for s in full.services[1:])
    assert fake.read_bytes(units.unit_path(fake.manager, "steersman-agent")) is None


def test_stop_all_stops_every_managed_service(fake):
    plan = host_plan()
    services.apply_host(fake, plan)
    stopped = services.stop_all(fake)
    assert sorted(stopped) == sorted(s.name for s in plan.services)


def test_a_host_without_any_manager_is_told_what_to_install(tmp_path, monkeypatch):
    host = FakeHost(tmp_path, "none")
    monkeypatch.setattr(host, "run", lambda *a, **k: SimpleNamespace(
        exit_status=0, stdout="none\n", stderr=""))
    with pytest.raises(services.ProvisionError, match="apt-get install supervisor"):
        services.detect_manager(host)
