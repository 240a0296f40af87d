"""`steer store` end to end: up, put/get/watch, status, members, snapshot, down.

Runs the real command in subprocesses against a real local cluster kept in a
temporary directory, and always stops the cluster it started.
"""

import os
import subprocess
import sys

import pytest

from cli.local_store import LocalStoreCluster


def steer(store_dir, *args, stdin=None, timeout=90):
    env = {**os.environ, "STEER_STORE_DIR": str(store_dir)}
    env.pop("STEER_STORE_ENDPOINTS", None)
    return subprocess.run([sys.executable, "-m", "cli.main", "store", *args],
                          input=stdin, capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=os.path.dirname(os.path.dirname(
                              os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("steer-store")
    result = steer(path, "up")
    try:
        assert result.returncode == 0, result.stderr
        assert "store ready" in result.stdout
        yield path
    finally:
        if os.path.exists(path / "cluster.json"):
            LocalStoreCluster.load(str(path)).stop_all()


def test_put_get_prefix_and_delete(store_dir):
    assert steer(store_dir, "put", "/app/a", "one").returncode == 0
    assert steer(store_dir, "put", "/app/b", "-", stdin="two").returncode == 0
    got = steer(store_dir, "get", "/app/", "--prefix")
    assert got.returncode == 0, got.stderr
    assert got.stdout.split() == ["/app/a", "one", "/app/b", "two"]
    assert steer(store_dir, "del", "/app/", "--prefix").stdout.strip() == "2"
    missing = steer(store_dir, "get", "/app/a")
    assert missing.returncode == 1
    assert "not found" in missing.stderr


def test_watch_replays_history_in_order(store_dir):
    first = steer(store_dir, "put", "/w/k", "v1").stdout
    revision = int(first.split("revision ")[1].rstrip(")\n"))
    steer(store_dir, "put", "/w/k", "v2")
    watched = steer(store_dir, "watch", "/w/", "--prefix", "--rev", str(revision), "--count", "2")
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.splitlines() == [f"PUT rev={revision} /w/k v1",
                                          f"PUT rev={revision + 1} /w/k v2"]


def test_status_and_members_show_one_leader(store_dir):
    status = steer(store_dir, "status")
    assert status.returncode == 0, status.stderr
    rows = status.stdout.splitlines()[1:]
    assert len(rows) == 3 and sum(" yes " in f" {row} " for row in rows) == 1
    members = steer(store_dir, "members").stdout.splitlines()[1:]
    assert sorted(row.split()[1] for row in members) == ["s1", "s2", "s3"]


def test_snapshot_save_and_restore_into_new_cluster(store_dir, tmp_path):
    assert steer(store_dir, "put", "/snap/key", "kept").returncode == 0
    snapshot = tmp_path / "store.snap"
    saved = steer(store_dir, "snapshot", "save", str(snapshot))
    assert saved.returncode == 0, saved.stderr
    restored_dir = tmp_path / "restored"
    try:
        restored = steer(restored_dir, "snapshot", "restore", str(snapshot))
        assert restored.returncode == 0, restored.stderr
        got = steer(restored_dir, "get", "/snap/key")
        assert got.stdout.split() == ["/snap/key", "kept"], got.stderr
    finally:
        if os.path.exists(restored_dir / "cluster.json"):
            LocalStoreCluster.load(str(restored_dir)).stop_all()


def test_errors_are_one_clear_line(store_dir, tmp_path):
    nowhere = steer(tmp_path / "empty", "get", "x")
    assert nowhere.returncode == 1
    assert "steer store up" in nowhere.stderr
    too_big = steer(store_dir, "put", "/big", "-", stdin="x" * (1 << 20 + 1))
    assert too_big.returncode == 1
    assert "value_too_large" in too_big.stderr and "1 MiB" in too_big.stderr


def test_down_then_up_keeps_data(store_dir):
    assert steer(store_dir, "put", "/durable", "yes").returncode == 0
    down = steer(store_dir, "down")
    assert down.returncode == 0 and down.stdout.count("stopped") == 3
    up = steer(store_dir, "up")
    assert up.returncode == 0, up.stderr
    assert steer(store_dir, "get", "/durable").stdout.split() == ["/durable", "yes"]
