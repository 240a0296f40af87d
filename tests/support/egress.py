"""Count (and drop) any packet of a test cluster that would leave the machine.

Pods, Services and node LANs of test clusters exist only inside network namespaces
the project creates, so nothing with those addresses should ever reach the machine's
default-route interface. tests/conftest.py installs a watch table in the root
namespace at the start of the run and fails the run if a counter moved by the end.

The table hooks output (locally sent packets, after DNAT and rerouting), forward
(packets of other namespaces routed by this one) and postrouting (anything rerouted
later, before source NAT rewrites a pod address). It runs before the filter priority
so a stricter firewall of the machine cannot hide a leak from the count; each rule
also drops, so a leak is stopped as well as counted.
"""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass

TABLE_PREFIX = "steer-egress-watch-"
FAMILY = "inet"

# The test clusters' ranges: pod CIDR, the local cluster's node LAN, the service range
# and the simulated bare-metal hosts' LAN (tests/support/hosts.py)
# (the tests' loopback ClusterIP ranges live on 127.0.0.0/8 and are not watched).
WATCHED_RANGES = ("10.244.0.0/16", "172.31.250.0/24", "10.96.0.0/12", "172.31.240.0/24")

# (hook, priority): before filter (0) in output/forward; before srcnat (100) after routing.
HOOKS = (("output", -10), ("forward", -10), ("postrouting", 90))
DIRECTIONS = ("daddr", "saddr")


@dataclass(frozen=True)
class Hit:
    """One counter of the watch table: packets of ``cidr`` (as ``direction``) seen at ``hook``."""

    hook: str
    direction: str
    cidr: str
    packets: int
    bytes: int

    def describe(self):
        return (f"{self.packets} packet(s), {self.bytes} byte(s) with ip {self.direction} "
                f"in {self.cidr} at hook {self.hook}")


def table_name(pid=None):
    """The watch table's name for the run of process ``pid`` (unique per concurrent run)."""
    return f"{TABLE_PREFIX}{os.getpid() if pid is None else pid}"


def _comment(direction, cidr):
    return f"{direction} {cidr}"


def table_text(name, interfaces, ranges=WATCHED_RANGES):
    """Return the ``nft -f`` text that (re)creates table ``name`` watching ``interfaces``.

    The text adds, flushes and deletes the table before defining it, so one
    transaction replaces whatever a previous run with the same name left behind.
    """
    if not interfaces:
        raise ValueError("no interface to watch: the namespace has no default route")
    oif = ", ".join(json.dumps(i) for i in interfaces)
    lines = [f"table {FAMILY} {name}", f"delete table {FAMILY} {name}",
             f"table {FAMILY} {name} {{"]
    for hook, priority in HOOKS:
        lines += [f"\tchain watch-{hook} {{",
                  f"\t\ttype filter hook {hook} priority {priority}; policy accept;"]
        for cidr in ranges:
            for direction in DIRECTIONS:
                lines.append(f"\t\toifname {{ {oif} }} ip {direction} {cidr} counter drop "
                             f"comment {json.dumps(_comment(direction, cidr))}")
        lines.append("\t}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _run(argv, netns=None, stdin=None):
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): "
                           f"{done.stderr.strip()}")
    return done.stdout


def unavailable_reason():
    """Why the watch cannot run here (not root, no nft, no ip), or None if it can."""
    if os.geteuid() != 0:
        return "not root: nftables tables need CAP_NET_ADMIN (run the suite as root)"
    for tool, package in (("nft", "nftables"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install {package})"
    return None


def default_route_interfaces(netns=None):
    """The interfaces of the IPv4 and IPv6 default routes (multipath hops too), sorted."""
    found = set()
    for family in ("-4", "-6"):
        for route in json.loads(_run(["ip", "-j", family, "route", "show", "default"],
                                     netns) or "[]"):
            hops = route.get("nexthops") or [route]
            found.update(hop["dev"] for hop in hops if hop.get("dev"))
    return sorted(found)


def install(name, interfaces, netns=None, ranges=WATCHED_RANGES):
    """Create (or replace) the watch table ``name`` in one ``nft -f`` transaction."""
    _run(["nft", "-f", "-"], netns, stdin=table_text(name, interfaces, ranges))


def remove(name, netns=None):
    """Delete the watch table ``name``; a table already gone is not an error."""
    _run(["nft", "-f", "-"], netns,
         stdin=f"table {FAMILY} {name}\ndelete table {FAMILY} {name}\n")


def read_counters(name, netns=None):
    """Every counter of the watch table ``name`` as Hits (zero ones included)."""
    listing = json.loads(_run(["nft", "-j", "list", "table", FAMILY, name], netns))
    return parse_counters(listing)


def parse_counters(listing):
    """The Hits in the JSON of ``nft -j list table`` (rules without our comment skipped)."""
    hits = []
    for item in listing.get("nftables", []):
        rule = item.get("rule")
        if rule is None or " " not in rule.get("comment", ""):
            continue
        direction, cidr = rule["comment"].split(" ", 1)
        counter = next((e["counter"] for e in rule.get("expr", []) if "counter" in e), None)
        if counter is None:
            continue
        hits.append(Hit(rule["chain"].removeprefix("watch-"), direction, cidr,
                        counter["packets"], counter["bytes"]))
    return hits


def leaks(hits):
    """The Hits whose counters moved."""
    return [hit for hit in hits if hit.packets or hit.bytes]


def stale_tables(netns=None, alive=None):
    """Watch tables in the namespace left by runs whose process is gone (to remove)."""
    alive = alive or _pid_alive
    listing = json.loads(_run(["nft", "-j", "list", "tables"], netns))
    stale = []
    for item in listing.get("nftables", []):
        table = item.get("table")
        if not table or table["family"] != FAMILY:
            continue
        suffix = table["name"].removeprefix(TABLE_PREFIX)
        if suffix != table["name"] and suffix.isdigit() and not alive(int(suffix)):
            stale.append(table["name"])
    return stale


def _pid_alive(pid):
    return os.path.exists(f"/proc/{pid}")


class SessionWatch:
    """The whole run's watch: ``start`` at session start, ``finish`` at session end.

    ``summary`` is the line for the terminal summary: a warning when the watch could
    not run, otherwise what was watched and whether anything leaked.
    """

    def __init__(self, name=None, netns=None):
        self.name = name or table_name()
        self.netns = netns           # None: the root namespace (the suite's own watch)
        self.interfaces = []
        self.active = False
        self.summary = ""
        self.failed = False

    def start(self):
        """Install the table (removing ones of dead runs first); False when skipped."""
        reason = unavailable_reason()
        if reason is None:
            try:
                for old in stale_tables(self.netns):
                    remove(old, self.netns)
                self.interfaces = default_route_interfaces(self.netns)
                if not self.interfaces:
                    reason = "the namespace has no default route: nothing can leave"
                else:
                    install(self.name, self.interfaces, self.netns)
                    self.active = True
            except (RuntimeError, ValueError, OSError) as error:
                reason = f"could not install the nftables watch table: {error}"
        if reason is not None:
            self.summary = f"WARNING egress check skipped: {reason}"
        return self.active

    def finish(self):
        """Read the counters and remove the table; True when something leaked."""
        if not self.active:
            return False
        try:
            hits = read_counters(self.name, self.netns)
        except RuntimeError as error:
            self.failed = True
            self.summary = (f"egress check FAILED: the watch table {self.name} could not be "
                            f"read ({error}); was it deleted during the run?")
            return True
        finally:
            self.active = False
            try:
                remove(self.name, self.netns)
            except RuntimeError:
                pass
        moved = leaks(hits)
        where = ", ".join(self.interfaces)
        if moved:
            self.failed = True
            self.summary = "\n".join(
                [f"egress check FAILED: test-cluster packets reached {where} "
                 "(dropped by the watch):"] + [f"  {hit.describe()}" for hit in moved])
        else:
            self.summary = (f"egress check: 0 packets to or from "
                            f"{', '.join(WATCHED_RANGES)} on {where} over the whole run")
        return self.failed

    def abandon(self):
        """Remove the table without judging (the run ended before ``finish``)."""
        if self.active:
            self.active = False
            try:
                remove(self.name, self.netns)
            except RuntimeError:
                pass
