"""Apply a HostPlan to a host: write the files that differ, restart only what changed.

Works over a HostConnection (agent/provision/ssh.py: ``run``, ``put_bytes``,
``read_bytes``) with whichever service manager the host has: systemd where it runs
(/run/systemd/system exists), else supervisord (Debian's ``supervisor``) with its own
configuration under /etc/steersman/supervisor and its socket in /run/steersman.
A service is restarted when its unit or program changed or when a file it reads
(FileSpec.services) changed; a release upgrade changes the unit (it names the
version), so exactly the services of the new release restart. Applying the same plan
twice changes nothing the second time.
"""

import dataclasses
import posixpath
import shlex
import time

from agent.provision import units
from agent.provision.plan import RUN_DIR, SUPERVISOR_DIR, SYSTEMD_DIR

SYSTEMD_MARKER = "/run/systemd/system"
SUPERVISORCTL = ["supervisorctl", "-c", units.SUPERVISORD_CONF]
MARKER = "Managed by Steersman"


class ProvisionError(RuntimeError):
    """A host cannot run the plan: what is wrong on which host, and what to do."""


@dataclasses.dataclass
class Changes:
    """What one apply did on a host; ``changed`` is False when it found all as planned."""

    host: str
    manager: str
    directories: list = dataclasses.field(default_factory=list)
    files: list = dataclasses.field(default_factory=list)
    modes: list = dataclasses.field(default_factory=list)
    started: list = dataclasses.field(default_factory=list)
    restarted: list = dataclasses.field(default_factory=list)
    removed: list = dataclasses.field(default_factory=list)

    @property
    def changed(self):
        return any((self.directories, self.files, self.modes, self.started, self.restarted,
                    self.removed))


@dataclasses.dataclass(frozen=True)
class ServiceStatus:
    """One service as its manager reports it: state (e.g. RUNNING, active) and main pid."""

    name: str
    state: str
    pid: int = 0
    detail: str = ""

    @property
    def running(self):
        return self.state in ("RUNNING", "active")


def _text(data):
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")


def _sh(conn, script, check=True, timeout=60):
    result = conn.run(script, sudo=True, check=check, timeout=timeout)
    return result.exit_status, _text(result.stdout)


def detect_manager(conn):
    """Return "systemd" where systemd runs, else "supervisord" (or say what to install)."""
    status, out = _sh(conn, f"if [ -d {SYSTEMD_MARKER} ]; then echo systemd; "
                            "elif command -v supervisord >/dev/null; then echo supervisord; "
                            "else echo none; fi")
    manager = out.strip()
    if manager not in units.MANAGERS:
        raise ProvisionError("the host runs no systemd and has no supervisord: install "
                             "Debian's `supervisor` package (apt-get install supervisor)")
    return manager


def desired_files(plan, manager):
    """The plan's files plus the units or programs of its services."""
    return [*plan.files, *units.service_files(manager, plan.services)]


def apply_host(conn, plan, manager=None, prune=False, clock=time.monotonic):
    """Bring the host to ``plan``; return the Changes (empty when it already was).

    Services the plan does not name are left alone (a plan may be cut to the phases
    started so far) unless ``prune``: then Steersman's other units are stopped and removed.
    """
    manager = manager or detect_manager(conn)
    changes = Changes(plan.host.name, manager)
    files = desired_files(plan, manager)
    changes.directories = _ensure_directories(conn, plan, manager, files)
    unit_paths = {units.unit_path(manager, s.name) for s in plan.services}
    created = set()
    for spec in files:
        current = conn.read_bytes(spec.path)
        if current != spec.content:
            conn.put_bytes(spec.content, spec.path, mode=spec.mode)
            changes.files.append(spec.path)
            if current is None:
                created.add(spec.path)
    changes.modes = _fix_modes(conn, [f for f in files if f.path not in changes.files])
    written = set(changes.files)
    touched = {s for f in files if f.path in written for s in f.services}
    names = [s.name for s in plan.services]
    stale = [n for n in _managed_services(conn, manager) if n not in names] if prune else []
    if manager == "systemd":
        _apply_systemd(conn, changes, names, touched, stale, unit_paths & written)
    else:
        _apply_supervisord(conn, changes, names, touched, stale,
                           units.SUPERVISORD_CONF in written, clock)
    return changes


def _ensure_directories(conn, plan, manager, files):
    wanted = {path: (mode, True) for path, mode in
              (*plan.directories, *units.manager_directories(manager))}
    for spec in files:
        parent = posixpath.dirname(spec.path)
        wanted.setdefault(parent, (0o755, False))
    lines = []
    for path in sorted(wanted, key=lambda p: p.count("/")):
        mode, enforce = wanted[path]
        q, m = shlex.quote(path), f"{mode:o}"
        line = f'if [ ! -d {q} ]; then install -d -m {m} {q} && echo "{path}";'
        if enforce:
            line += f' elif [ "$(stat -c %a {q})" != {m} ]; then chmod {m} {q} && echo "{path}";'
        lines.append(line + " fi")
    _, out = _sh(conn, "set -e\n" + "\n".join(lines))
    return out.split()


def _fix_modes(conn, files):
    """chmod the unchanged files whose mode differs from the plan's; return their paths."""
    if not files:
        return []
    _, out = _sh(conn, "stat -c '%a %n' " + " ".join(shlex.quote(f.path) for f in files))
    actual = {}
    for line in out.splitlines():
        mode, _, path = line.partition(" ")
        actual[path] = mode
    fixed = [f for f in files if actual.get(f.path) != f"{f.mode:o}"]
    for spec in fixed:
        _sh(conn, f"chmod {spec.mode:o} {shlex.quote(spec.path)}")
    return [f.path for f in fixed]


def _managed_services(conn, manager):
    """Names of the units/programs on the host that Steersman wrote (its marker inside)."""
    pattern = (f"{SYSTEMD_DIR}/*.service" if manager == "systemd"
               else f"{SUPERVISOR_DIR}/conf.d/*.conf")
    _, out = _sh(conn, f"grep -l '{MARKER}' {pattern} 2>/dev/null || true")
    return [posixpath.splitext(posixpath.basename(p))[0] for p in out.split()]


# -- systemd ------------------------------------------------------------------------
def _apply_systemd(conn, changes, names, touched, stale, units_written):
    systemctl = ["systemctl"]
    for name in stale:
        conn.run([*systemctl, "disable", "--now", f"{name}.service"], sudo=True, check=False)
        conn.run(["rm", "-f", units.unit_path("systemd", name)], sudo=True)
        changes.removed.append(name)
    if units_written or stale:
        conn.run([*systemctl, "daemon-reload"], sudo=True)
    for name in names:
        active = conn.run([*systemctl, "is-active", "--quiet", f"{name}.service"],
                          sudo=True, check=False).exit_status == 0
        if not active:
            conn.run([*systemctl, "enable", "--now", f"{name}.service"], sudo=True)
            changes.started.append(name)
        elif name in touched:
            conn.run([*systemctl, "restart", f"{name}.service"], sudo=True)
            changes.restarted.append(name)
        else:
            enabled = conn.run([*systemctl, "is-enabled", "--quiet", f"{name}.service"],
                               sudo=True, check=False).exit_status == 0
            if not enabled:
                conn.run([*systemctl, "enable", f"{name}.service"], sudo=True)
                changes.started.append(name)


# -- supervisord ----------------------------------------------------------------------
def supervisord_running(conn):
    """True when this host's supervisord answers on its socket."""
    return conn.run([*SUPERVISORCTL, "pid"], sudo=True, check=False).exit_status == 0


def _start_supervisord(conn, clock, timeout=20.0):
    # It daemonizes itself; its descriptors must not hold the SSH channel open.
    _sh(conn, f"install -d -m 700 {RUN_DIR} && supervisord -c "
              f"{shlex.quote(units.SUPERVISORD_CONF)} </dev/null >/dev/null 2>&1")
    deadline = clock() + timeout
    while not supervisord_running(conn):
        if clock() > deadline:
            raise ProvisionError(f"supervisord did not answer on {RUN_DIR}/supervisor.sock "
                                 f"within {timeout:g}s: see /var/log/steersman/supervisord.log")
        time.sleep(0.1)


def _apply_supervisord(conn, changes, names, touched, stale, conf_written, clock):
    for name in stale:
        conn.run(["rm", "-f", units.unit_path("supervisord", name)], sudo=True)
        changes.removed.append(name)
    if not supervisord_running(conn):
        _start_supervisord(conn, clock)
        changes.started.extend(names)       # it starts every program (autostart)
        return
    if conf_written:
        conn.run([*SUPERVISORCTL, "reload"], sudo=True)
        changes.restarted.extend(names)
        return
    conn.run([*SUPERVISORCTL, "reread"], sudo=True)
    _, out = _sh(conn, shlex.join([*SUPERVISORCTL, "update"]))
    updated = set()
    for line in out.splitlines():
        name, _, what = line.partition(":")
        if "added" in what:
            changes.started.append(name.strip())
        elif "updated" in what:
            changes.restarted.append(name.strip())
        updated.add(name.strip())
    restart = [n for n in names if n in touched and n not in updated]
    if restart:
        conn.run([*SUPERVISORCTL, "restart", *restart], sudo=True)
        changes.restarted.extend(restart)
    for status in _supervisor_statuses(conn):
        if status.name in names and status.name not in updated and status.state in (
                "STOPPED", "EXITED", "FATAL"):
            conn.run([*SUPERVISORCTL, "start", status.name], sudo=True)
            changes.started.append(status.name)


def _supervisor_statuses(conn, names=()):
    result = conn.run([*SUPERVISORCTL, "status", *names], sudo=True, check=False)
    statuses = []
    for line in _text(result.stdout).splitlines():
        parts = line.split(None, 2)
        if len(parts) < 2:
            continue
        detail = parts[2] if len(parts) > 2 else ""
        pid = 0
        if detail.startswith("pid "):
            pid = int(detail[4:].split(",")[0])
        statuses.append(ServiceStatus(parts[0], parts[1], pid, detail))
    return statuses


# -- status and stop ------------------------------------------------------------------
def service_status(conn, name, manager=None):
    """Return the ServiceStatus of ``name`` on the host."""
    manager = manager or detect_manager(conn)
    if manager == "systemd":
        out = _text(conn.run(["systemctl", "show", "-p", "ActiveState", "-p", "MainPID",
                              f"{name}.service"], sudo=True, check=False).stdout)
        fields = dict(line.partition("=")[::2] for line in out.splitlines())
        return ServiceStatus(name, fields.get("ActiveState", "unknown"),
                             int(fields.get("MainPID") or 0))
    if not supervisord_running(conn):
        return ServiceStatus(name, "STOPPED", 0, "supervisord is not running")
    for status in _supervisor_statuses(conn, [name]):
        if status.name == name:
            return status
    return ServiceStatus(name, "UNKNOWN", 0, "no such program")


def stop_all(conn, manager=None):
    """Stop (and disable) every service Steersman runs on the host; return their names."""
    manager = manager or detect_manager(conn)
    names = _managed_services(conn, manager)
    if manager == "systemd":
        for name in names:
            conn.run(["systemctl", "disable", "--now", f"{name}.service"], sudo=True,
                     check=False)
        return names
    if supervisord_running(conn):
        conn.run([*SUPERVISORCTL, "stop", "all"], sudo=True, check=False, timeout=120)
        conn.run([*SUPERVISORCTL, "shutdown"], sudo=True, check=False)
    return names
