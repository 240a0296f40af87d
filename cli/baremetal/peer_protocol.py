"""Which store peer protocol a release speaks: the one running on a host, or a wheel's.

`steer cluster upgrade` rolls one store member at a time only when the running
members and the new release speak the same protocol (store/version.py); across a
change the members cannot form one Raft group, so every member stops and all start
on the new release together. Releases from before store/version.py existed are
recognised by their files: store/peer_transport.py came with protocol 2 (mutual
TLS, msgpack); without it, protocol 1 (pickle and a shared secret).
"""

import ast
import dataclasses
import json
import re
import zipfile
from pathlib import Path

from agent.provision import plan as planmod
from agent.provision import units

STORE_SERVICE = "steersman-store"
MODES = ("auto", "rolling", "together")

#: Run by a release's own python on a host; prints {"protocol": N, "reads": [...]}.
PROBE = """\
import importlib.util, json
try:
    from store import version
    found = {"protocol": version.PEER_PROTOCOL, "reads": list(version.READS_DATA_OF)}
except ImportError:
    protocol = 2 if importlib.util.find_spec("store.peer_transport") else 1
    found = {"protocol": protocol, "reads": [protocol]}
print(json.dumps(found))
"""


@dataclasses.dataclass(frozen=True)
class Protocol:
    """A release's peer protocol and the protocols whose store data it reads."""
    protocol: int
    reads: tuple = ()

    def reads_data_of(self, other):
        return other.protocol in (self.reads or (self.protocol,))


def from_sources(version_text, has_peer_transport):
    """The Protocol of a release from its store/version.py text (None if it has none)."""
    if version_text is None:
        protocol = 2 if has_peer_transport else 1
        return Protocol(protocol, (protocol,))
    values = {}
    for node in ast.parse(version_text).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    protocol = int(values["PEER_PROTOCOL"])
    return Protocol(protocol, tuple(values.get("READS_DATA_OF") or (protocol,)))


def of_wheelhouse(wheelhouse_dir, manifest):
    """The Protocol of the steersman wheel in a wheelhouse (read from the wheel's files)."""
    wheel = Path(wheelhouse_dir) / manifest["project_wheel"]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        text = archive.read("store/version.py").decode() if "store/version.py" in names \
            else None
    return from_sources(text, "store/peer_transport.py" in names)


def running_version(unit_text):
    """The release a store member's unit runs (its path names the version), or None."""
    match = re.search(re.escape(planmod.OPT_DIR) + r"/([^/\s]+)/venv/bin/steer-store",
                      unit_text or "")
    return match.group(1) if match else None


def of_host(conn, manager):
    """The Protocol of the store member running on a control host (None: no member)."""
    unit = conn.read_bytes(units.unit_path(manager, STORE_SERVICE))
    version = running_version(unit.decode(errors="replace") if unit else None)
    if version is None:
        return None
    result = conn.run([planmod.bin_path(version, "python"), "-c", PROBE], sudo=True,
                      timeout=60)
    found = json.loads(result.stdout.decode())
    return Protocol(int(found["protocol"]), tuple(found.get("reads") or ()))


class ModeError(ValueError):
    """The asked mode cannot upgrade between these releases; the message says why."""


def choose(requested, running, new):
    """``rolling`` or ``together`` for an upgrade; ``running``: {host: Protocol or None}.

    Raises ModeError when the asked mode cannot work, or when the new release
    cannot read the running members' data.
    """
    if requested not in MODES:
        raise ModeError(f"--mode {requested!r}: one of {', '.join(MODES)}")
    spoken = {host: p for host, p in running.items() if p is not None}
    differ = sorted(h for h, p in spoken.items() if p.protocol != new.protocol)
    if not differ:
        return "together" if requested == "together" else "rolling"
    names = ", ".join(f"{h} speaks {spoken[h].protocol}" for h in differ)
    if requested == "rolling":
        raise ModeError(
            f"a rolling upgrade is impossible: the new release's store members speak peer "
            f"protocol {new.protocol} and the running ones cannot talk to them ({names}); "
            "run `steer cluster upgrade --mode together` (every store member stops, then all "
            "start on the new release: the API is down meanwhile)")
    unreadable = sorted(h for h in differ if not new.reads_data_of(spoken[h]))
    if unreadable:
        raise ModeError(
            f"the new release cannot read the store data of peer protocol "
            f"{spoken[unreadable[0]].protocol} ({', '.join(unreadable)}): nothing was "
            "changed; upgrade through a release that reads it first")
    return "together"
