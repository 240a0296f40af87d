"""The wheelhouse cache (agent/provision/wheelhouse.py) with a stand-in for pip."""

import json
import sys

import pytest

from agent.provision import wheelhouse

FAKE_PIP = r"""
import pathlib, sys
args = sys.argv[1:]
out = pathlib.Path(args[args.index("--wheel-dir") + 1])
out.mkdir(parents=True)
for name in ("steersman-0.1.0-py3-none-any.whl", "pip-24.0-py3-none-any.whl",
             "msgpack-1.0-py3-none-any.whl"):
    (out / name).write_bytes(b"wheel")
with open(sys.argv[0] + ".calls", "a") as calls:
    calls.write("x")
"""


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    for rel in ("setup.cfg", "pyproject.toml", "store/__init__.py", "agent/a.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / "agent/__pycache__").mkdir()
    (root / "agent/__pycache__/a.cpython-311.pyc").write_bytes(b"x")
    return root


def build(project, tmp_path):
    pip = tmp_path / "fake_pip.py"
    pip.write_text(FAKE_PIP)
    return wheelhouse.build_wheelhouse(project, tmp_path / "cache", pip=(sys.executable, str(pip)))


def calls(tmp_path):
    path = tmp_path / "fake_pip.py.calls"
    return len(path.read_text()) if path.exists() else 0


def test_second_build_is_served_from_the_cache(project, tmp_path):
    first, digest = build(project, tmp_path)
    again, same = build(project, tmp_path)
    assert (first, digest) == (again, same) and calls(tmp_path) == 1
    manifest = json.loads((first / wheelhouse.MANIFEST).read_text())
    assert manifest["hash"] == digest
    assert manifest["project_wheel"] == "steersman-0.1.0-py3-none-any.whl"
    assert manifest["pip_wheel"] == "pip-24.0-py3-none-any.whl"
    assert len(manifest["wheels"]) == 3


def test_a_changed_source_file_makes_a_new_build(project, tmp_path):
    _, before = build(project, tmp_path)
    (project / "agent/a.py").write_text("changed")
    _, after = build(project, tmp_path)
    assert before != after and calls(tmp_path) == 2


def test_bytecode_is_not_part_of_the_hash(project, tmp_path):
    assert "agent/__pycache__/a.cpython-311.pyc" not in wheelhouse.source_files(project)
    before = wheelhouse.source_hash(project)
    (project / "agent/__pycache__/a.cpython-311.pyc").write_bytes(b"other")
    assert wheelhouse.source_hash(project) == before


def test_a_failed_pip_says_so_and_leaves_no_build(project, tmp_path):
    pip = tmp_path / "bad_pip.py"
    pip.write_text("import sys; print('no index', file=sys.stderr); sys.exit(1)")
    with pytest.raises(RuntimeError, match="no index"):
        wheelhouse.build_wheelhouse(project, tmp_path / "cache", pip=(sys.executable, str(pip)))
    assert list((tmp_path / "cache").iterdir()) == []


def test_read_manifest_refuses_a_plain_directory(tmp_path):
    with pytest.raises(ValueError, match="not a wheelhouse"):
        wheelhouse.read_manifest(tmp_path)
