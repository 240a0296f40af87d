"""The files of one simulated host (tests/support/hosts.py) and the script that boots it.

A host's directory on this machine holds what gets bind-mounted over the real paths
inside its mount namespace: Steersman's and containerd's directories, /etc/ssh (its
own host key, sshd_config, authorized keys), /etc/sudoers.d, /root, /home and copies
of the account files with one more user, ``steer-test``, who logs in with a password
and has password-less sudo. The account files are copies, so this machine's own
/etc/passwd and /etc/shadow never change.
"""

import contextlib
import os
import subprocess
import time
from pathlib import Path

# Real paths a host keeps to itself: bind-mounted from the host's own directory
# (all of /etc/cni: the CNI config in net.d and host-local's address leases in ipam).
PER_HOST_DIRS = ("/etc/steersman", "/var/lib/steersman", "/var/log/steersman",
                 "/opt/steersman", "/etc/containerd", "/var/lib/containerd",
                 "/etc/cni", "/var/lib/cni", "/etc/ssh", "/etc/sudoers.d", "/root",
                 "/home")
PER_HOST_FILES = ("/etc/passwd", "/etc/shadow", "/etc/group")
RUN_DIRS = ("/run/sshd", "/run/steersman", "/run/containerd", "/run/lock")
PASSWORD_USER = ("steer-test", "pw")
PASSWORD_UID = 4242
SSHD_CONFIG = """\
ListenAddress {address}:22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile /etc/ssh/authorized_keys/%u
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PidFile /run/sshd.pid
MaxStartups 200
MaxSessions 100
Subsystem sftp internal-sftp
"""
# pid 1 of a host: start sshd, reap every orphan; SIGTERM ends the host.
INIT = """\
import os, signal, subprocess
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"])
while True:
    try:
        os.wait()
    except ChildProcessError:
        signal.pause()
"""


def _run(*argv, input=None):
    return subprocess.run(argv, check=True, capture_output=True, input=input)


def password_hash(password):
    """A SHA-512 crypt hash for /etc/shadow (the password goes on stdin, not argv)."""
    return _run("openssl", "passwd", "-6", "-stdin",
                input=password.encode()).stdout.decode().strip()


def keygen(path, comment):
    """A fresh ed25519 key pair at ``path`` and ``path``.pub (an old one is replaced)."""
    for stale in (Path(path), Path(f"{path}.pub")):
        stale.unlink(missing_ok=True)
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))


def cgroup_mount_lines():
    """Shell lines that mount this machine's cgroup hierarchies again under /sys/fs/cgroup
    (``ip netns exec`` mounts a fresh /sys, which hides them)."""
    out = _run("findmnt", "-rn", "-t", "cgroup,cgroup2", "-o", "TARGET,FSTYPE,OPTIONS")
    lines = ["mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup"]
    for row in out.stdout.decode().splitlines():
        target, fstype, options = row.split(" ", 2)
        if target == "/sys/fs/cgroup" and fstype == "cgroup2":     # a pure v2 machine
            return ["mount -t cgroup2 cgroup2 /sys/fs/cgroup"]
        if not target.startswith("/sys/fs/cgroup/"):
            continue
        if fstype == "cgroup2":
            lines.append(f"mkdir -p {target} && mount -t cgroup2 cgroup2 {target}")
            continue
        opts = [o for o in options.split(",") if o not in ("rw", "ro", "relatime", "nosuid",
                                                            "nodev", "noexec")]
        if "name=systemd" in opts:
            opts = ["none"] + opts
        lines.append(f"mkdir -p {target} && mount -t cgroup -o {','.join(opts)} cgroup {target}")
    return lines


def prepare(root, name, address, *, admin_pub, password_hash):
    """Fill the host directory ``root``: its directories, sshd, keys and accounts."""
    root = Path(root)
    for top in PER_HOST_DIRS:
        (root / top.lstrip("/")).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "root", 0o700)
    ssh_dir = root / "etc/ssh"
    keys = ssh_dir / "authorized_keys"
    keys.mkdir(mode=0o755, exist_ok=True)
    keygen(ssh_dir / "ssh_host_ed25519_key", name)
    (ssh_dir / "sshd_config").write_text(SSHD_CONFIG.format(address=address))
    (keys / "root").write_text(admin_pub)
    _add_password_user(root, password_hash)


def _add_password_user(root, hashed):
    user = PASSWORD_USER[0]
    etc = root / "etc"
    home = root / "home" / user
    home.mkdir(mode=0o700, exist_ok=True)
    os.chown(home, PASSWORD_UID, PASSWORD_UID)
    for name, line in (
            ("passwd", f"{user}:x:{PASSWORD_UID}:{PASSWORD_UID}::/home/{user}:/bin/sh"),
            ("shadow", f"{user}:{hashed}:19000:0:99999:7:::"),
            ("group", f"{user}:x:{PASSWORD_UID}:")):
        text = Path("/etc", name).read_text()
        (etc / name).write_text(text.rstrip("\n") + "\n" + line + "\n")
    os.chmod(etc / "shadow", 0o600)
    sudoers = etc / "sudoers.d" / user      # the host's own: sudo without a password
    sudoers.write_text(f"{user} ALL=(ALL) NOPASSWD: ALL\n")
    os.chmod(sudoers, 0o440)


def boot_script(root, name, cgroup_lines, readonly_paths=()):
    """The ``sh -e`` script unshare runs as the host's pid 1: mounts, then exec INIT."""
    lines = ["# boots one simulated host: run by unshare as its pid 1"]
    lines += cgroup_lines
    lines.append(f"hostname {name}")
    # Files first, /root and /home last: a bind source under them must resolve first.
    for top in PER_HOST_FILES + PER_HOST_DIRS:
        lines.append(f"mount --bind {Path(root) / top.lstrip('/')} {top}")
    lines.append("mount -t tmpfs -o mode=755 run /run")
    lines.append("mkdir -p " + " ".join(RUN_DIRS))
    for path in readonly_paths:
        lines.append(f"mount --bind {path} {path} && mount -o remount,bind,ro {path}")
    lines.append(f"exec /usr/bin/python3 -c {_sh_quote(INIT)}")
    return "\n".join(lines) + "\n"


def _sh_quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


GENERIC_MOUNT_OPTIONS = {"rw", "ro", "relatime", "nosuid", "nodev", "noexec"}


def _cgroup_mounts():
    """{hierarchy as /proc/PID/cgroup names it: its mount point on this machine}."""
    out = _run("findmnt", "-rn", "-t", "cgroup,cgroup2", "-o", "TARGET,FSTYPE,OPTIONS")
    mounts = {}
    for row in out.stdout.decode().splitlines():
        target, fstype, options = row.split(" ", 2)
        key = "" if fstype == "cgroup2" else ",".join(
            o for o in options.split(",") if o not in GENERIC_MOUNT_OPTIONS)
        mounts.setdefault(key, target)
    return mounts


def _cgroup_paths(pid):
    paths = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, key, path = line.split(":", 2)
            paths[key] = path
    return paths


def cgroup_dirs(pids):
    """The cgroup directories of ``pids`` and everything below them, except the
    test's own cgroups and their ancestors (shared with this machine)."""
    own, mounts, found = _cgroup_paths(os.getpid()), _cgroup_mounts(), set()
    for pid in pids:
        for key, path in _cgroup_paths(pid).items():
            mine = own.get(key, "/")
            if key not in mounts or path == "/" or (mine + "/").startswith(path + "/"):
                continue
            top = os.path.join(mounts[key], path.lstrip("/"))
            for dirpath, _, _ in os.walk(top):
                found.add(dirpath)
    return found


def remove_cgroup_dirs(dirs, timeout=10.0):
    """rmdir ``dirs`` deepest first once their processes are gone; return those left."""
    deadline = time.monotonic() + timeout
    left = sorted(dirs, key=lambda d: d.count("/"), reverse=True)
    while left:
        busy = []
        for directory in left:
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError:
                busy.append(directory)
        if not busy or time.monotonic() > deadline:
            return busy
        left = busy
        time.sleep(0.05)
    return []
