"""The collection's plan_files module and plan filters, called as plain Python."""

import importlib.util
import json
import os
from pathlib import Path

import pytest

pytest.importorskip("ansible", reason="ansible-core is not installed: pip install -e '.[test]'")
from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.common.text.converters import to_bytes  # noqa: E402

PLUGINS = Path(__file__).resolve().parents[2] / "ansible" / "plugins"


def load(relative):
    spec = importlib.util.spec_from_file_location(relative.replace("/", "_"), PLUGINS / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


plan_files = load("modules/plan_files.py")
filters = load("filter/plan.py")


def call(monkeypatch, capsys, check_mode=False, diff=True, **params):
    args = {**params, "_ansible_check_mode": check_mode, "_ansible_diff": diff}
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)   # ansible-core 2.19+
    with pytest.raises(SystemExit):
        plan_files.main()
    return json.loads(capsys.readouterr().out)


FILES = [{"path": "/etc/steersman/a.conf", "content": "a\n", "mode": "0644",
          "services": ["svc-a"]},
         {"path": "/etc/steersman/pki/key", "content": "SECRET\n", "mode": "0600",
          "services": ["svc-b"], "secret": True}]
DIRS = [{"path": "/etc/steersman", "mode": "0755"}, {"path": "/etc/steersman/pki", "mode": "0700"}]


def test_writes_then_changes_nothing(tmp_path, monkeypatch, capsys):
    first = call(monkeypatch, capsys, root=str(tmp_path), directories=DIRS, files=FILES)
    assert first["changed"] and first["services"] == ["svc-a", "svc-b"]
    assert (tmp_path / "etc/steersman/pki/key").read_text() == "SECRET\n"
    assert os.stat(tmp_path / "etc/steersman/pki").st_mode & 0o777 == 0o700
    assert os.stat(tmp_path / "etc/steersman/pki/key").st_mode & 0o777 == 0o600
    assert all("SECRET" not in d["after"] for d in first["diff"])
    again = call(monkeypatch, capsys, root=str(tmp_path), directories=DIRS, files=FILES)
    assert not again["changed"] and again["paths"] == []


def test_check_mode_predicts_and_writes_nothing(tmp_path, monkeypatch, capsys):
    result = call(monkeypatch, capsys, check_mode=True, root=str(tmp_path), directories=DIRS,
                  files=FILES)
    assert result["changed"] and "/etc/steersman/a.conf" in result["paths"]
    assert not (tmp_path / "etc").exists()


def test_a_mode_change_alone_restarts_nothing(tmp_path, monkeypatch, capsys):
    call(monkeypatch, capsys, root=str(tmp_path), directories=DIRS, files=FILES)
    os.chmod(tmp_path / "etc/steersman/pki/key", 0o644)
    result = call(monkeypatch, capsys, root=str(tmp_path), directories=DIRS, files=FILES)
    assert result["paths"] == ["/etc/steersman/pki/key"] and result["services"] == []
    assert os.stat(tmp_path / "etc/steersman/pki/key").st_mode & 0o777 == 0o600


def test_filters_pick_a_roles_files_and_what_to_restart():
    plan = {"files": [{**f, "secret": f.get("secret", False)} for f in FILES]
            + [{"path": "/x", "content": "", "mode": "0644", "services": [], "secret": False}]}
    assert [f["path"] for f in filters.files_for(plan, ["svc-a"], False)] == ["/etc/steersman/a.conf"]
    assert [f["path"] for f in filters.files_for(plan, ["svc-a", "svc-b"], True)] == [
        "/etc/steersman/pki/key"]
    assert [f["path"] for f in filters.files_for(plan, [])] == ["/x"]
    assert filters.to_restart(["b", "a"], ["a", "b", "c"], started=["b"]) == ["a"]
