"""Forget UDP conntrack entries that point at endpoints which are gone (kube-proxy's cleanup).

A TCP client whose endpoint disappears gets a reset and reconnects through the new
rules. A UDP "connection" has no end: its conntrack entry keeps the old DNAT as long
as the client keeps sending (a resolver asking the cluster DNS every second), so the
client talks to a dead pod forever. And a UDP client that sent while a Service had
no endpoints holds an entry that was never DNATed, which shadows the endpoints once
they come. So, as kube-proxy does, after each sync delete:

- the entries of a UDP Service port (ClusterIP and NodePort) DNATed to an endpoint
  that is no longer among its endpoints;
- every entry to a UDP Service port that had no endpoints and now has some.

The diff is pure; ``flush`` runs Debian's ``conntrack`` tool inside the node's
network namespace. ``conntrack -D`` exits 1 when nothing matched, which is normal.
"""

import logging
import shutil
import subprocess
from dataclasses import dataclass

log = logging.getLogger("steer.conntrack")


@dataclass(frozen=True, order=True)
class Deletion:
    """Entries to delete: UDP to ``address:port``, only those DNATed to ``endpoint`` if set."""

    address: str
    port: int
    endpoint: str = ""

    def argv(self):
        argv = ["-D", "-p", "udp", "--orig-dst", self.address, "--orig-port-dst", str(self.port)]
        return argv + (["--dst-nat", self.endpoint] if self.endpoint else [])


def udp_view(service_ports, node_ips=()):
    """(address, port) -> endpoint IPs, for every UDP ClusterIP and NodePort of the node."""
    view = {}
    for sp in service_ports:
        if sp.protocol != "UDP":
            continue
        endpoints = frozenset(ep.ip for ep in sp.endpoints)
        view[(sp.cluster_ip, sp.port)] = endpoints
        if sp.node_port:
            for node_ip in node_ips:
                view[(node_ip, sp.node_port)] = endpoints
    return view


def stale_entries(before, after):
    """The deletions that going from view ``before`` to view ``after`` calls for, sorted."""
    deletions = set()
    for key, old in before.items():
        new = after.get(key, frozenset())
        deletions.update(Deletion(key[0], key[1], ip) for ip in old - new)
    for key, new in after.items():
        if new and not before.get(key):
            deletions.add(Deletion(key[0], key[1]))
    return sorted(deletions)


def conntrack_command(netns_path=None):
    """The argv prefix that runs ``conntrack`` inside ``netns_path`` (None: here), or None."""
    tool = shutil.which("conntrack")
    if tool is None:
        return None
    if netns_path:
        return [shutil.which("nsenter") or "nsenter", f"--net={netns_path}", tool]
    return [tool]


def flush(deletions, netns_path=None, run=subprocess.run):
    """Delete each group of entries; return how many commands failed (a warning each)."""
    prefix = conntrack_command(netns_path)
    if deletions and prefix is None:
        log.warning("msg=conntrack not installed: stale UDP entries stay until they time "
                    "out fix=\"apt-get install conntrack\" count=%d", len(deletions))
        return len(deletions)
    failures = 0
    for deletion in deletions:
        done = run(prefix + deletion.argv(), capture_output=True, timeout=30, check=False)
        # Exit 1 with "0 flow entries have been deleted" is a miss, not an error.
        if done.returncode not in (0, 1):
            failures += 1
            log.warning("msg=conntrack delete failed deletion=%s exit=%d error=%s", deletion,
                        done.returncode, done.stderr.decode(errors="replace").strip()[:300])
    return failures
