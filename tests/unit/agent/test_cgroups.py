"""cgroup v2 limits, against a directory shaped like /sys/fs/cgroup."""

from agent.runtime import cgroups


def test_limits_are_written_where_cgroup_v2_is_writable(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    path = cgroups.create("abc", memory_bytes=64 * 1024 * 1024, cpu_millis=500, root=str(tmp_path))
    assert (tmp_path / "steersman" / "abc" / "memory.max").read_text() == str(64 * 1024 * 1024)
    assert (tmp_path / "steersman" / "abc" / "cpu.max").read_text() == "50000 100000"
    assert path == str(tmp_path / "steersman" / "abc")


def test_skipped_without_cgroup_v2_or_without_limits(tmp_path):
    assert cgroups.create("abc", memory_bytes=1, root=str(tmp_path)) is None
    (tmp_path / "cgroup.controllers").write_text("")
    assert cgroups.create("abc", root=str(tmp_path)) is None


def test_oom_kill_is_read_from_memory_events(tmp_path):
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroups.oom_killed(str(tmp_path))
    (tmp_path / "memory.events").write_text("oom_kill 0\n")
    assert not cgroups.oom_killed(str(tmp_path))
