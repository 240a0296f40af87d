"""Check a host before installing: OS, python3 + venv, kernel features, ports, clock, disk.

One shell probe runs on the host (as root, through sudo where needed) and prints
``key=value`` lines; ``parse_probe`` and ``evaluate`` turn them into findings without
any I/O, so every rule is unit-tested. Each finding says what is wrong and how to fix
it, so ``steer cluster create`` can stop before touching a host that would fail later.
"""

import time
from dataclasses import dataclass

MAX_SKEW_SECONDS = 2.0
MIN_FREE_BYTES = 2 << 30
MIN_PYTHON = (3, 11)
V1_CONTROLLERS = ("cpu", "memory", "pids")

PROBE = r"""
echo "os=$( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null)"
if command -v python3 >/dev/null 2>&1; then
  echo "python=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  if python3 -c 'import venv, ensurepip' 2>/dev/null; then echo venv=yes; else echo venv=no; fi
else echo python=; fi
f=/proc/sys/net/ipv4/ip_forward
if v=$(cat $f 2>/dev/null) && (echo "$v" > $f) 2>/dev/null; then echo ip_forward=writable
else echo ip_forward=readonly; fi
if [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]; then echo br_netfilter=yes
elif modprobe -n br_netfilter >/dev/null 2>&1; then echo br_netfilter=loadable
else echo br_netfilter=no; fi
if ! command -v nft >/dev/null 2>&1; then echo nftables=nocommand
elif nft list tables >/dev/null 2>&1; then echo nftables=yes; else echo nftables=nokernel; fi
echo "cgroup_fs=$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
echo "cgroup_v1=$(ls /sys/fs/cgroup 2>/dev/null | tr '\n' ' ')"
echo "cgroup_v2=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)"
if [ -d /run/systemd/system ]; then echo manager=systemd
elif command -v supervisord >/dev/null 2>&1; then echo manager=supervisord
else echo manager=none; fi
echo "disk_opt=$(df -Pk /opt 2>/dev/null | awk 'NR==2 {print $4}')"
echo "disk_var_lib=$(df -Pk /var/lib 2>/dev/null | awk 'NR==2 {print $4}')"
ss -Htlnp 2>/dev/null | while read -r state rq sq local peer users; do
  pid=$(echo "$users" | sed -n 's/.*pid=\([0-9]*\).*/\1/p')
  cmd=$(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null | cut -c1-200)
  echo "listen=${local##*:} $cmd"
done
echo "time=$(date +%s.%N)"
"""


@dataclass(frozen=True)
class Finding:
    host: str
    check: str
    ok: bool
    message: str
    fix: str = ""

    def __str__(self):
        mark = "ok  " if self.ok else "FAIL"
        tail = f" -> fix: {self.fix}" if not self.ok and self.fix else ""
        return f"{mark} {self.host} {self.check}: {self.message}{tail}"


def parse_probe(text):
    """``key=value`` lines -> dict; repeated ``listen`` lines -> {port: command}."""
    facts, listening = {}, {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "listen":
            port, _, command = value.partition(" ")
            if port.isdigit():
                listening.setdefault(int(port), command.strip())
        else:
            facts[key] = value.strip()
    facts["listen"] = listening
    return facts


def _python(host, facts):
    version = facts.get("python", "")
    fix = "install Python 3.11 or newer with venv (Debian 12: apt-get install python3 python3-venv)"
    if not version:
        return Finding(host, "python3", False, "python3 not found", fix)
    try:
        found = tuple(int(p) for p in version.split("."))
    except ValueError:
        return Finding(host, "python3", False, f"python3 reports version {version!r}", fix)
    if found < MIN_PYTHON:
        return Finding(host, "python3", False, f"python3 is {version}, need >= 3.11", fix)
    if facts.get("venv") != "yes":
        return Finding(host, "python3", False, f"python3 {version} lacks venv/ensurepip", fix)
    return Finding(host, "python3", True, f"python3 {version} with venv")


def _kernel(host, facts):
    yield Finding(host, "ip_forward", facts.get("ip_forward") == "writable",
                  "/proc/sys/net/ipv4/ip_forward is " + facts.get("ip_forward", "unknown"),
                  "pod routing must turn on IP forwarding: run on a host (not in a "
                  "container) where /proc/sys is writable by root")
    bridge = facts.get("br_netfilter", "no")
    yield Finding(host, "br_netfilter", bridge in ("yes", "loadable"),
                  f"br_netfilter: {bridge}",
                  "load it (modprobe br_netfilter; echo br_netfilter > "
                  "/etc/modules-load.d/steersman.conf) or use a kernel that has it")
    nft = facts.get("nftables", "nocommand")
    yield Finding(host, "nftables", nft == "yes", f"nftables: {nft}",
                  "apt-get install nftables; the kernel needs nf_tables (modprobe nf_tables)")
    kind = facts.get("cgroup_fs", "")
    if kind == "cgroup2fs":
        ok, message = True, f"cgroup v2 ({facts.get('cgroup_v2', '')})"
    else:
        present = facts.get("cgroup_v1", "").split()
        missing = [c for c in V1_CONTROLLERS if c not in present]
        ok = bool(present) and not missing
        message = (f"cgroup v1 with {', '.join(present)}" if ok else
                   f"cgroups: {kind or 'not mounted'}; missing {', '.join(missing)}")
    yield Finding(host, "cgroups", ok, message,
                  "mount cgroup v2 at /sys/fs/cgroup (systemd.unified_cgroup_hierarchy=1) "
                  "or the v1 cpu, memory and pids controllers")


def _manager(host, facts):
    manager = facts.get("manager", "none")
    return Finding(host, "service manager", manager != "none",
                   f"services run under {manager}",
                   "the host has no systemd: apt-get install supervisor")


def _ports(host, facts, ports):
    listening = facts.get("listen", {})
    for port in ports:
        holder = listening.get(port)
        if holder is None:
            yield Finding(host, f"port {port}", True, "free")
        elif "/opt/steersman/" in holder:
            yield Finding(host, f"port {port}", True, f"held by Steersman itself ({holder})")
        else:
            yield Finding(host, f"port {port}", False, f"in use by {holder or 'a process'}",
                          f"stop what listens on {port} or choose another port")


def _clock(host, facts, sent_at, received_at, max_skew):
    try:
        remote = float(facts["time"])
    except (KeyError, ValueError):
        return Finding(host, "clock", False, "could not read the host's clock", "check date(1)")
    skew = remote - (sent_at + received_at) / 2
    return Finding(host, "clock", abs(skew) <= max_skew,
                   f"{skew:+.2f} s from this machine (limit {max_skew:.0f} s)",
                   "synchronise clocks (apt-get install chrony); certificates and leases "
                   "need them within seconds")


def _disk(host, facts, min_free):
    for key, path in (("disk_opt", "/opt"), ("disk_var_lib", "/var/lib")):
        text = facts.get(key, "")
        free = int(text) * 1024 if text.isdigit() else None
        if free is None:
            yield Finding(host, f"disk {path}", False, f"cannot read free space of {path}",
                          "check df(1)")
            continue
        yield Finding(host, f"disk {path}", free >= min_free,
                      f"{free / (1 << 30):.1f} GiB free (need {min_free / (1 << 30):.1f})",
                      f"free space under {path}")


def evaluate(host, facts, *, sent_at, received_at, ports=(), max_skew=MAX_SKEW_SECONDS,
             min_free_bytes=MIN_FREE_BYTES):
    """Findings for one host from its parsed probe and the admin's clock around it."""
    findings = [Finding(host, "os", bool(facts.get("os")), facts.get("os") or "unknown OS",
                        "a Linux with /etc/os-release")]
    findings.append(_python(host, facts))
    findings.extend(_kernel(host, facts))
    findings.append(_manager(host, facts))
    findings.extend(_ports(host, facts, ports))
    findings.append(_clock(host, facts, sent_at, received_at, max_skew))
    findings.extend(_disk(host, facts, min_free_bytes))
    return findings


def check_host(conn, *, ports=(), clock=time.time, max_skew=MAX_SKEW_SECONDS,
               min_free_bytes=MIN_FREE_BYTES):
    """Probe the host behind ``conn``; return its findings (see ``failures``)."""
    sent_at = clock()
    result = conn.run(PROBE, sudo=True, check=False, timeout=60)
    received_at = clock()
    host = str(conn.target)
    if result.exit_status != 0 and not result.stdout:
        return [Finding(host, "probe", False, "the check script failed: "
                        + result.stderr.decode(errors="replace").strip()[-500:],
                        "log in and check that /bin/sh works (and sudo -n, if not root)")]
    facts = parse_probe(result.stdout.decode(errors="replace"))
    return evaluate(host, facts, sent_at=sent_at, received_at=received_at, ports=ports,
                    max_skew=max_skew, min_free_bytes=min_free_bytes)


def failures(findings):
    return [f for f in findings if not f.ok]
