"""Read cpu and memory of host processes, for the process runtime's container stats.

A process-runtime container is a process group (its first process leads its own
session, see shim.py), so its usage is the sum over the group's processes: cpu is
utime+stime plus what reaped children left in cutime+cstime (/proc/<pid>/stat), memory
the resident set. Where the container has a cgroup v2 directory (limits enforced,
cgroups.py) the cgroup's own counters are used instead: they also count processes
that left the group.
"""

import os

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
NS_PER_SECOND = 1_000_000_000


def parse_stat(data):
    """Return (pgrp, cpu ticks, rss pages) from the bytes of a /proc/<pid>/stat file."""
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = data[data.rindex(b")") + 2:].split()
    # fields[0] is field 3 (state): pgrp is field 5, utime..cstime 14..17, rss 24.
    ticks = sum(int(value) for value in fields[11:15])
    return int(fields[2]), ticks, int(fields[21])


def group_usage(proc="/proc"):
    """Return {pgrp: (cpu ns, rss bytes)} over every process readable under ``proc``."""
    usage = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "stat"), "rb") as f:
                pgrp, ticks, rss = parse_stat(f.read())
        except (OSError, ValueError, IndexError):
            continue            # the process ended while we looked
        cpu, memory = usage.get(pgrp, (0, 0))
        usage[pgrp] = (cpu + ticks * NS_PER_SECOND // CLOCK_TICKS, memory + rss * PAGE_SIZE)
    return usage


def cgroup_usage(path):
    """Return (cpu ns, working set bytes) of a cgroup v2 directory, or None if unreadable.

    The working set is memory.current less inactive file pages, as kubelet counts it.
    """
    try:
        with open(os.path.join(path, "cpu.stat")) as f:
            cpu = dict(line.split() for line in f if line.strip())
        with open(os.path.join(path, "memory.current")) as f:
            current = int(f.read())
        with open(os.path.join(path, "memory.stat")) as f:
            memory = dict(line.split() for line in f if line.strip())
    except (OSError, ValueError):
        return None
    inactive = int(memory.get("inactive_file", 0))
    return int(cpu.get("usage_usec", 0)) * 1000, max(0, current - inactive)
