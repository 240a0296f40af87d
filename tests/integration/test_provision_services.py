"""services.apply_host on a simulated host (tests/support/hosts.py) over real SSH.

Two dummy services (``python3 -m http.server`` on the host's address), each reading a
file of its own: the host has no systemd, so they run under supervisord, started by
apply_host itself. Re-applying changes nothing; changing one file restarts only its
service; a service killed by pid comes back (supervisord restarts it).
"""

import shutil
import time
from pathlib import Path

import pytest

from agent.provision import services, ssh
from agent.provision.plan import FileSpec, HostPlan, HostSpec, ServiceSpec
from tests.support.hosts import host_bed

pytestmark = [
    pytest.mark.baremetal,
    pytest.mark.skipif(shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists(),
                       reason="sshd is missing: apt-get install openssh-server"),
    pytest.mark.skipif(shutil.which("supervisord") is None,
                       reason="supervisord is missing: apt-get install supervisor"),
]
PORTS = {"steersman-dummy-a": 18080, "steersman-dummy-b": 18081}


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    with host_bed(1, tmp_path_factory.mktemp("hosts")) as bed:
        yield bed


@pytest.fixture(scope="module")
def conn(bed):
    host = bed.hosts[0]
    connection = ssh.connect(host.target, known_hosts=bed.known_hosts,
                             key_filename=bed.admin_key, sock=bed.sock(host.address))
    yield connection
    try:
        services.stop_all(connection)
    finally:
        connection.close()


def dummy_plan(address, config_a=b"a-1\n"):
    www = "/var/lib/steersman/www"
    return HostPlan(
        host=HostSpec("h1", address), version="test",
        files=(FileSpec("/etc/steersman/dummy-a.conf", config_a, 0o600, ("steersman-dummy-a",)),
               FileSpec("/etc/steersman/dummy-b.conf", b"b-1\n", 0o600, ("steersman-dummy-b",))),
        services=tuple(ServiceSpec(name, ("/usr/bin/python3", "-m", "http.server", "--bind",
                                          address, "--directory", www, str(port)),
                                   description=f"dummy {name}")
                       for name, port in PORTS.items()),
        directories=(("/etc/steersman", 0o755), ("/var/lib/steersman", 0o700), (www, 0o700),
                     ("/var/log/steersman", 0o750), ("/run/steersman", 0o700)))


def wait_for(condition, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def answers(bed, address, port):
    try:
        sock = bed.sock(address, port, timeout=1.0)
    except OSError:
        return False
    sock.close()
    return True


def running_pid(conn, name):
    status = services.service_status(conn, name, manager="supervisord")
    return status.pid if status.running else 0


def test_first_apply_starts_supervisord_and_the_services(bed, conn):
    address = bed.hosts[0].address
    changes = services.apply_host(conn, dummy_plan(address))
    assert changes.manager == "supervisord"
    assert changes.started == list(PORTS)
    for port in PORTS.values():
        wait_for(lambda p=port: answers(bed, address, p), f"the dummy service on :{port}")
    socket_dir = bed.hosts[0].root / "etc/steersman"      # files land on the host
    assert (socket_dir / "dummy-a.conf").stat().st_mode & 0o777 == 0o600
    mode = conn.run(["stat", "-c", "%a", "/run/steersman"]).stdout.decode().strip()
    assert mode == "700"
    no_inet = conn.run("grep -c inet_http_server /etc/steersman/supervisor/supervisord.conf",
                       check=False).stdout.decode().strip()
    assert no_inet == "0"


def test_reapplying_changes_nothing(bed, conn):
    before = {name: wait_for(lambda n=name: running_pid(conn, n), name) for name in PORTS}
    changes = services.apply_host(conn, dummy_plan(bed.hosts[0].address))
    assert not changes.changed, changes
    assert {name: running_pid(conn, name) for name in PORTS} == before


def test_a_changed_file_restarts_only_its_service(bed, conn):
    address = bed.hosts[0].address
    pid_a = wait_for(lambda: running_pid(conn, "steersman-dummy-a"), "dummy-a")
    pid_b = wait_for(lambda: running_pid(conn, "steersman-dummy-b"), "dummy-b")
    changes = services.apply_host(conn, dummy_plan(address, config_a=b"a-2\n"))
    assert changes.files == ["/etc/steersman/dummy-a.conf"]
    assert changes.restarted == ["steersman-dummy-a"]
    new_a = wait_for(lambda: running_pid(conn, "steersman-dummy-a"), "dummy-a again")
    assert new_a != pid_a
    assert running_pid(conn, "steersman-dummy-b") == pid_b
    wait_for(lambda: answers(bed, address, PORTS["steersman-dummy-a"]), "dummy-a answering")


def test_a_killed_service_is_restarted_by_supervisord(bed, conn):
    address = bed.hosts[0].address
    pid = wait_for(lambda: running_pid(conn, "steersman-dummy-b"), "dummy-b")
    conn.run(["kill", "-9", str(pid)])
    wait_for(lambda: running_pid(conn, "steersman-dummy-b") not in (0, pid),
             "supervisord to restart dummy-b")
    wait_for(lambda: answers(bed, address, PORTS["steersman-dummy-b"]), "dummy-b answering")


def test_stop_all_stops_the_services_and_supervisord(bed, conn):
    stopped = services.stop_all(conn)
    assert sorted(stopped) == sorted(PORTS)
    assert not services.supervisord_running(conn)
    for port in PORTS.values():
        wait_for(lambda p=port: not answers(bed, bed.hosts[0].address, p),
                 f"nothing on :{port}")
