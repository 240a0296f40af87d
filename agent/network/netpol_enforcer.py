"""NetworkPolicy for one node, run by the nftables proxy (as kube-router does both).

Informers keep NetworkPolicies, Pods and Namespaces of the whole cluster (a peer
may be any pod anywhere); every change asks its own SyncRunner for a sync, which
computes this node's isolated pods (agent/network/netpol.py), builds the
``inet steer-netpol`` table (netpol_rules.py) and hands it to a Syncer of its own,
so a slow or failing policy sync never holds back Service rules. The table goes
when the proxy stops: rules nobody keeps up to date would drop traffic forever.

Pod-to-pod traffic on one bridge reaches the forward hook only with br_netfilter
(net.bridge.bridge-nf-call-iptables=1 in the node's namespace); ``bridge_filtering``
checks it at start so an operator learns why policy does not bite.
"""

import logging
import threading
import time

from agent import netns
from agent.network.netpol import compute
from agent.network.netpol_rules import FAMILY, TABLE, build_ruleset
from agent.network.nft_apply import NftError, Syncer, run_script
from agent.network.sync_runner import DEBOUNCE, RESYNC, SyncRunner, run_when_synced
from control.client import Informer
from control.objects import kinds

log = logging.getLogger("steer.netpol")

BRIDGE_NF_SYSCTL = "/proc/sys/net/bridge/bridge-nf-call-iptables"


def delete_script():
    """Remove the policy table; harmless when it is absent."""
    return f"add table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n"


def _read_sysctl(path):
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return None


def bridge_filtering(netns_path=None, read=_read_sysctl):
    """(ok, why): whether bridged IPv4 traffic passes nftables in that namespace."""
    try:
        value = netns.run_in(netns_path, lambda: read(BRIDGE_NF_SYSCTL))
    except OSError as exc:
        return False, f"cannot read {BRIDGE_NF_SYSCTL}: {exc}"
    if value is None:
        return False, (f"{BRIDGE_NF_SYSCTL} is missing (br_netfilter not loaded): "
                       "load it with `modprobe br_netfilter`")
    if value != "1":
        return False, (f"{BRIDGE_NF_SYSCTL} is {value}: set it with "
                       "`sysctl -w net.bridge.bridge-nf-call-iptables=1` in the node's "
                       "network namespace")
    return True, "ok"


class NetpolEnforcer:
    """Keep this node's steer-netpol table in line with the cluster's policies."""

    def __init__(self, rest, node_name, netns_path=None, syncer=None, informers=None,
                 debounce=DEBOUNCE, resync=RESYNC, clock=time.monotonic, wall=time.time):
        self.node_name, self.netns_path = node_name, netns_path
        self.syncer = syncer or Syncer(netns_path, log=log)
        if informers is None:
            informers = (Informer(rest, kinds.NETWORKPOLICIES), Informer(rest, kinds.PODS),
                         Informer(rest, kinds.NAMESPACES))
        self.policies, self.pods, self.namespaces = informers
        self.runner = SyncRunner(self.sync, clock=clock, wall=wall, debounce=debounce,
                                 resync=resync, what="network policy rules")
        self.isolated = 0
        self._stop = threading.Event()
        self._thread = None

    def _on_change(self, *_):
        self.runner.request()

    def sync(self, full):
        """Compute this node's pods' access and put the table in place."""
        if full:
            self.syncer.forget()
        accesses = compute(self.policies.store.list(), self.pods.store.list(),
                           self.namespaces.store.list(), self.node_name)
        if self.syncer.sync(build_ruleset(accesses)):
            log.info("node=%s isolated_pods=%d full=%s msg=network policy rules applied",
                     self.node_name, len(accesses), full)
        self.isolated = len(accesses)

    def start(self):
        """Start the informers; once they hold a full list, the sync thread."""
        ok, why = bridge_filtering(self.netns_path)
        if not ok:
            log.warning("node=%s msg=NetworkPolicy will not apply between pods on this "
                        "node's bridge: %s", self.node_name, why)
        for informer in self.informers():
            informer.add_handler(self._on_change, self._on_change, self._on_change)
            informer.start()
        self._thread = threading.Thread(target=self._run, name="netpol-sync", daemon=True)
        self._thread.start()
        return self

    def informers(self):
        return (self.policies, self.pods, self.namespaces)

    def _run(self):
        run_when_synced(self.informers(), self.runner, self._stop)

    def stop(self, remove_table=True):
        """Stop syncing; then remove the table."""
        self._stop.set()
        self.runner.wake()
        if self._thread is not None:
            self._thread.join(30)
        for informer in self.informers():
            informer.stop(timeout=2)
        if remove_table:
            try:
                run_script(delete_script(), self.netns_path)
                log.info("node=%s msg=network policy table removed", self.node_name)
            except NftError as exc:
                log.warning("node=%s msg=could not remove the network policy table "
                            "error=%s", self.node_name, exc)

    def healthy(self):
        """(ok, why), as NftProxy.healthy."""
        if self.runner.last_error:
            return False, f"the last network policy sync failed: {self.runner.last_error}"
        if not self.runner.syncs:
            return False, "no network policy sync yet (waiting for the informers)"
        return True, "ok"

    def metrics_lines(self):
        r = self.runner
        return ["# TYPE steer_proxy_netpol_syncs_total counter",
                f"steer_proxy_netpol_syncs_total {r.syncs}",
                "# TYPE steer_proxy_netpol_sync_errors_total counter",
                f"steer_proxy_netpol_sync_errors_total {r.errors}",
                "# TYPE steer_proxy_netpol_isolated_pods gauge",
                f"steer_proxy_netpol_isolated_pods {self.isolated}"]
