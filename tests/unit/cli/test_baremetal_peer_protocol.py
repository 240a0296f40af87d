"""Reading a release's store peer protocol (wheel, host unit) and choosing the upgrade mode."""

import json
import zipfile
from pathlib import Path

import pytest

from cli.baremetal import peer_protocol as pp
from store import version

ROOT = Path(__file__).resolve().parents[3]


def wheel(tmp_path, files):
    path = tmp_path / "steersman-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return tmp_path, {"project_wheel": path.name}


def test_this_checkouts_constant_is_what_a_wheel_of_it_reports(tmp_path):
    text = (ROOT / "store" / "version.py").read_text()
    found = pp.of_wheelhouse(*wheel(tmp_path, {"store/version.py": text,
                                               "store/peer_transport.py": ""}))
    assert found == pp.Protocol(version.PEER_PROTOCOL, tuple(version.READS_DATA_OF))


def test_releases_before_the_constant_are_known_by_their_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    tls = pp.of_wheelhouse(*wheel(tmp_path / "a", {"store/peer_transport.py": ""}))
    pickled = pp.of_wheelhouse(*wheel(tmp_path / "b", {"store/raft.py": ""}))
    assert tls == pp.Protocol(2, (2,)) and pickled == pp.Protocol(1, (1,))


def test_the_running_version_comes_from_the_store_members_unit():
    unit = ("[program:steersman-store]\ncommand=/opt/steersman/0.1.0-next/venv/bin/steer-store "
            "--name h1 --data-dir /var/lib/steersman/store\n")
    assert pp.running_version(unit) == "0.1.0-next"
    assert pp.running_version("") is None and pp.running_version(None) is None


class FakeConn:
    def __init__(self, unit, answer):
        self.unit, self.answer, self.ran = unit, answer, []

    def read_bytes(self, path):
        return self.unit

    def run(self, argv, sudo=False, timeout=None):
        self.ran.append(argv)
        return type("R", (), {"stdout": json.dumps(self.answer).encode()})()


def test_a_host_is_asked_with_the_python_of_the_release_its_member_runs():
    conn = FakeConn(b"ExecStart=/opt/steersman/0.0.9/venv/bin/steer-store --name h1\n",
                    {"protocol": 1, "reads": [1]})
    assert pp.of_host(conn, "systemd") == pp.Protocol(1, (1,))
    assert conn.ran[0][:2] == ["/opt/steersman/0.0.9/venv/bin/python", "-c"]
    assert pp.of_host(FakeConn(None, {}), "systemd") is None      # no member on this host


def test_the_probe_reads_this_checkout():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", pp.PROBE], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out) == {"protocol": version.PEER_PROTOCOL,
                               "reads": list(version.READS_DATA_OF)}


NEW = pp.Protocol(2, (1, 2))


@pytest.mark.parametrize("asked,running,mode", [
    ("auto", {"h1": pp.Protocol(2), "h2": pp.Protocol(2)}, "rolling"),
    ("auto", {"h1": pp.Protocol(1), "h2": pp.Protocol(1)}, "together"),
    ("auto", {"h1": pp.Protocol(2), "h2": pp.Protocol(1)}, "together"),   # half upgraded
    ("together", {"h1": pp.Protocol(2)}, "together"),
    ("rolling", {"h1": pp.Protocol(2), "h2": None}, "rolling"),
])
def test_choose(asked, running, mode):
    assert pp.choose(asked, running, NEW) == mode


def test_choose_refuses_what_cannot_work():
    with pytest.raises(pp.ModeError, match="--mode together"):
        pp.choose("rolling", {"h1": pp.Protocol(1)}, NEW)
    with pytest.raises(pp.ModeError, match="cannot read the store data of peer protocol 1"):
        pp.choose("auto", {"h1": pp.Protocol(1)}, pp.Protocol(3, (2, 3)))
    with pytest.raises(pp.ModeError, match="one of auto, rolling, together"):
        pp.choose("sideways", {}, NEW)
