"""The process runtime with real processes: start, logs, exit codes, signals, re-adoption."""

import json
import os
import signal

import pytest

from agent import logs
from agent.runtime.base import ContainerConfig, RuntimeError_
from agent.runtime.process import ProcessRuntime
from tests.support.apiproc import eventually


def _config(tmp_path, command, name="c", attempt=0):
    workdir = tmp_path / "root"
    workdir.mkdir(exist_ok=True)
    return ContainerConfig("uid1", "default/p", name, attempt, command, {"GREETING": "hello"},
                           str(workdir), str(tmp_path / "logs" / name / f"{attempt}.log"))


def test_exit_code_and_logs(tmp_path):
    runtime = ProcessRuntime(str(tmp_path / "data"))
    record = runtime.start(_config(tmp_path, ["sh", "-c", "echo $GREETING; echo oops >&2; "
                                                          "exit 3"]))
    done = eventually(lambda: (r := runtime.inspect(record.container_id)) and not r.running
                      and r, timeout=30)
    assert done.exit_code == 3 and done.reason == "Error"
    text = b"".join(logs.read(record.log_path)).decode()
    assert "hello" in text and "oops" in text


def test_signal_kills_the_process_group_and_readoption_checks_start_time(tmp_path):
    data = str(tmp_path / "data")
    runtime = ProcessRuntime(data)
    record = runtime.start(_config(tmp_path, ["sh", "-c", "sleep 1000 & sleep 1000"]))
    assert record.running and record.pid
    again = ProcessRuntime(data)           # an agent restarted: state is on disk
    [adopted] = again.list()
    assert adopted.running and adopted.pid == record.pid
    again.signal(record.container_id, signal.SIGTERM)
    done = eventually(lambda: (r := again.inspect(record.container_id)) and not r.running
                      and r, timeout=30)
    assert done.exit_code == 128 + signal.SIGTERM
    eventually(lambda: _group_gone(record.pid), timeout=30, message="process group gone")


def test_a_reused_pid_is_not_adopted(tmp_path):
    data = str(tmp_path / "data")
    runtime = ProcessRuntime(data)
    record = runtime.start(_config(tmp_path, ["sleep", "1000"]))
    pid_file = os.path.join(data, "containers", record.container_id, "pid")
    with open(pid_file) as f:
        text = f.read()
    # Pretend the recorded process started at another time (its pid was reused).
    info = json.loads(text)
    info["start"] += 1
    with open(pid_file, "w") as f:
        json.dump(info, f)
    assert not ProcessRuntime(data)._alive(info)
    info["start"] -= 1
    with open(pid_file, "w") as f:
        json.dump(info, f)
    runtime.signal(record.container_id, signal.SIGKILL)
    eventually(lambda: not runtime.inspect(record.container_id).running, timeout=30)


def test_missing_program_is_a_start_error(tmp_path):
    runtime = ProcessRuntime(str(tmp_path / "data"))
    with pytest.raises(RuntimeError_):
        runtime.start(_config(tmp_path, ["no-such-program-xyz"]))


def test_exec(tmp_path):
    runtime = ProcessRuntime(str(tmp_path / "data"))
    record = runtime.start(_config(tmp_path, ["sleep", "1000"]))
    try:
        assert runtime.exec(record.container_id, ["sh", "-c", "test $GREETING = hello"], 5)[0] \
            == 0
        assert runtime.exec(record.container_id, ["false"], 5)[0] == 1
    finally:
        runtime.signal(record.container_id, signal.SIGKILL)
    eventually(lambda: not runtime.inspect(record.container_id).running, timeout=30)


def _group_gone(pgid):
    try:
        os.killpg(pgid, 0)
        return False
    except ProcessLookupError:
        return True
