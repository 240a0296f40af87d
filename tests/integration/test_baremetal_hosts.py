"""SSH, host checks and install on simulated bare-metal hosts (tests/support/hosts.py).

One bed per module: three hosts with sshd, plus one whose ip_forward is read-only
(a bind mount inside its mount namespace) standing in for a host without the
kernel feature.
"""

import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from agent.provision import hostcheck, install, ssh
from agent.provision.wheelhouse import build_wheelhouse
from tests.support.hosts import host_bed

pytestmark = [
    pytest.mark.baremetal,
    pytest.mark.skipif(shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists(),
                       reason="sshd is missing: apt-get install openssh-server (make deb-packages)"),
]
PROJECT = Path(__file__).resolve().parents[2]
IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    with host_bed(3, tmp_path_factory.mktemp("hosts")) as bed:
        bed.add_host(readonly_paths=[IP_FORWARD])
        yield bed


def open_conn(bed, host, **kwargs):
    kwargs.setdefault("known_hosts", bed.known_hosts)
    if "password" not in kwargs:
        kwargs.setdefault("key_filename", bed.admin_key)
    target = kwargs.pop("target", host.target)
    return ssh.connect(target, sock=bed.sock(host.address), **kwargs)


@pytest.fixture(scope="module")
def conns(bed):
    opened = [open_conn(bed, host) for host in bed.hosts]
    yield opened
    for conn in opened:
        conn.close()


def keygen_fingerprint(host):
    out = subprocess.run(["ssh-keygen", "-lf", str(host.root / "etc/ssh/ssh_host_ed25519_key.pub")],
                         check=True, capture_output=True, text=True).stdout
    return out.split()[1]


def test_connect_by_key_checked_against_known_hosts(bed, conns):
    for host, conn in zip(bed.hosts, conns, strict=True):
        assert conn.run("hostname").stdout.decode().strip() == host.name
        assert conn.run(["id", "-u"]).stdout == b"0\n"


def test_an_unknown_host_key_is_refused_with_its_fingerprint(bed, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = bed.hosts[0]
    with pytest.raises(ssh.HostKeyError) as err:
        open_conn(bed, host, known_hosts=empty)
    assert "is not known" in str(err.value)
    assert keygen_fingerprint(host) in str(err.value)
    assert "--fingerprint" in str(err.value)


def test_a_changed_host_key_is_refused(bed, tmp_path):
    first, second = bed.hosts[0], bed.hosts[1]
    forged = tmp_path / "known_hosts"
    forged.write_text(f"{first.address} {' '.join(second.host_key_pub.split()[:2])}\n")
    with pytest.raises(ssh.HostKeyError) as err:
        open_conn(bed, first, known_hosts=forged)
    message = str(err.value)
    assert "CHANGED" in message and "ssh-keygen -R" in message
    assert keygen_fingerprint(first) in message and keygen_fingerprint(second) in message


def test_a_fingerprint_given_on_the_command_line_is_accepted(bed, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = bed.hosts[1]
    with open_conn(bed, host, known_hosts=empty, fingerprint=keygen_fingerprint(host)) as conn:
        assert conn.run("hostname").stdout.decode().strip() == host.name
    with pytest.raises(ssh.HostKeyError, match="does not match the fingerprint"):
        open_conn(bed, host, fingerprint=keygen_fingerprint(bed.hosts[0]))


def test_a_wrong_password_is_an_auth_error(bed):
    user, password = bed.password_user
    host = bed.hosts[0]
    with pytest.raises(ssh.AuthError, match="wrong password or unknown user 'steer-test'"):
        open_conn(bed, host, target=f"{user}@{host.address}", password=password + "x")
    with open_conn(bed, host, target=f"{user}@{host.address}", password=password) as conn:
        assert conn.run("id -un").stdout == b"steer-test\n"
        assert not conn.is_root


def test_a_login_that_is_not_root_goes_through_sudo(bed):
    user, password = bed.password_user
    host = bed.hosts[2]
    with open_conn(bed, host, target=f"{user}@{host.address}", password=password) as conn:
        assert conn.run("id -u", sudo=True).stdout == b"0\n"
        conn.put_bytes(b"secret", "/etc/steersman/sudo/token", mode=0o600)
        assert conn.run("stat -c '%U %a' /etc/steersman/sudo/token /etc/steersman/sudo",
                        sudo=True).stdout == b"root 600\nroot 700\n"
        assert conn.read_bytes("/etc/steersman/sudo/token") == b"secret"
        assert conn.read_bytes("/etc/steersman/sudo/none") is None
        assert conn.run(f"find /tmp -maxdepth 1 -user {user}").stdout == b""   # no staging left
        findings = hostcheck.check_host(conn)
        assert not hostcheck.failures(findings), "\n".join(map(str, findings))


def test_a_key_the_host_does_not_know_is_refused(bed, tmp_path):
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    with pytest.raises(ssh.AuthError, match="refused every key"):
        open_conn(bed, bed.hosts[0], key_filename=stranger)


def test_run_reports_output_status_and_failures(conns):
    conn = conns[0]
    result = conn.run("cat; echo err >&2", input=b"fed in")
    assert (result.exit_status, result.stdout, result.stderr) == (0, b"fed in", b"err\n")
    assert conn.run("exit 4", check=False).exit_status == 4
    with pytest.raises(ssh.RemoteCommandError) as err:
        conn.run(["sh", "-c", "echo nope >&2; exit 3"])
    assert err.value.exit_status == 3 and "nope" in str(err.value)
    with pytest.raises(ssh.RemoteCommandError, match="did not finish in time"):
        conn.run("sleep 30", timeout=0.5)


def test_put_bytes_is_atomic_with_its_mode(bed, conns):
    conn = conns[0]
    path = "/etc/steersman/pki/secret.key"
    conn.put_bytes(b"first", path)
    conn.put_bytes(b"second", path)
    assert conn.read_bytes(path) == b"second"
    assert conn.run(["stat", "-c", "%a", path, "/etc/steersman/pki"]).stdout == b"600\n700\n"
    assert conn.run(["ls", "-A", "/etc/steersman/pki"]).stdout == b"secret.key\n"
    conn.put_bytes(b"#!/bin/sh\necho hi\n", "/etc/steersman/hello.sh", mode=0o755)
    assert conn.run("/etc/steersman/hello.sh").stdout == b"hi\n"
    assert conn.read_bytes("/etc/steersman/none") is None
    assert bed.hosts[0].path(path).read_bytes() == b"second"


def test_hosts_do_not_see_each_others_files(bed, conns):
    conns[0].put_bytes(b"one", "/etc/steersman/whoami")
    assert conns[1].read_bytes("/etc/steersman/whoami") is None
    conns[1].put_bytes(b"two", "/var/lib/steersman/whoami")
    assert conns[0].read_bytes("/var/lib/steersman/whoami") is None
    assert not Path("/etc/steersman/whoami").exists()      # nor does this machine


def test_hosts_have_no_route_out(bed, conns):
    for conn in conns:
        routes = conn.run(["ip", "route"]).stdout.decode()
        assert "default" not in routes and "172.31.240.0/24" in routes
    lan = subprocess.run(["ip", "-n", bed.lan_netns, "route"], check=True,
                         capture_output=True, text=True).stdout
    assert "default" not in lan


def test_hostcheck_passes_a_good_host(conns):
    findings = hostcheck.check_host(conns[0], ports=(6443, 2380))
    assert not hostcheck.failures(findings), "\n".join(map(str, findings))


def test_hostcheck_finds_the_missing_kernel_feature(conns):
    findings = hostcheck.check_host(conns[3], ports=(22,))
    failed = {f.check: f for f in hostcheck.failures(findings)}
    assert set(failed) == {"ip_forward", "port 22"}, "\n".join(map(str, findings))
    assert "readonly" in failed["ip_forward"].message and failed["ip_forward"].fix
    assert "sshd" in failed["port 22"].message


@pytest.fixture(scope="module")
def wheelhouse():
    directory, _ = build_wheelhouse(PROJECT)
    return directory


def test_install_release_runs_steer_over_ssh_and_twice_is_a_no_op(conns, wheelhouse):
    conn = conns[1]
    first = install.install_release(conn, wheelhouse, "0.1.0-test")
    assert first.changed
    assert conn.run("readlink /opt/steersman/current").stdout == b"0.1.0-test\n"
    out = conn.run("/opt/steersman/current/venv/bin/steer --help").stdout.decode()
    assert "usage: steer" in out
    assert conn.run("ls -A /opt/steersman").stdout.decode().split() == ["0.1.0-test", "current"]
    again = install.install_release(conn, wheelhouse, "0.1.0-test")
    assert not again.changed and again.hash == first.hash
    assert conns[0].read_bytes("/opt/steersman/0.1.0-test/installed.json") is None


def test_a_failed_install_leaves_nothing_behind(conns, wheelhouse, tmp_path):
    broken = tmp_path / "wheelhouse"
    shutil.copytree(wheelhouse, broken)
    manifest = (broken / "wheelhouse.json").read_text()
    (broken / "wheelhouse.json").write_text(manifest.replace('"pip_wheel": "pip-',
                                                             '"pip_wheel": "nopip-'))
    with pytest.raises(install.InstallError, match="pip install"):
        install.install_release(conns[2], broken, "0.1.0-broken")
    assert conns[2].run("ls -A /opt/steersman").stdout == b""


def test_kill_and_start_a_host(bed):
    host = bed.hosts[2]
    bed.kill_host(host)
    assert host.pids() == []
    with pytest.raises(OSError):
        bed.sock(host.address, timeout=1).close()
    bed.start_host(host)
    with open_conn(bed, host) as conn:
        assert conn.run("hostname").stdout.decode().strip() == host.name


def test_a_door_reaches_a_host_from_loopback(bed):
    host = bed.hosts[0]
    port = bed.door(host.address, 22)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with ssh.connect(host.target, known_hosts=bed.known_hosts, key_filename=bed.admin_key,
                     sock=sock) as conn:
        assert conn.run("hostname").stdout.decode().strip() == host.name


def _wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_bed_leaves_nothing_behind_even_after_a_failure(tmp_path):
    group = f"/sys/fs/cgroup/pids/steer-bed-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError, match="the test failed"):
        with host_bed(1, tmp_path / "bed") as small:
            host = small.hosts[0]
            with open_conn(small, host) as conn:
                conn.run(f"mkdir {group} && (sh -c 'echo $$ > {group}/cgroup.procs; "
                         "exec sleep 600' >/dev/null 2>&1 &)")
                _wait_for(lambda: Path(group, "cgroup.procs").read_text().strip())
            names, root, pids = (host.netns, small.lan_netns), host.root, host.pids()
            assert len(pids) >= 4      # unshare, pid 1, sshd, the sleep
            raise RuntimeError("the test failed")
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not any(name in listed for name in names)
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]    # nor zombies
    assert not root.exists() and not Path(group).exists()
