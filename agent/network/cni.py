"""Give containerd the node's pod network once the Node has a spec.podCIDR.

The node IPAM controller assigns each Node a podCIDR after it registers; until the
CNI configuration for that range exists, containerd cannot give a sandbox an
address ("cni plugin not initialized") and pods wait. So the agent of a node whose
runtime is containerd watches its own Node and writes the configuration (a bridge
with host-local addresses from the podCIDR, and hostPorts: agent/provision) as soon
as the range is known, and again if it ever changes.
"""

import logging
import threading

from agent.provision.containerd_config import write_pod_network
from control.client import ApiException
from control.objects import kinds

log = logging.getLogger(__name__)


def pod_cidr_of(node):
    spec = (node or {}).get("spec") or {}
    return spec.get("podCIDR") or next(iter(spec.get("podCIDRs") or ()), None)


class PodNetwork:
    """Write the node's CNI configuration for the podCIDR its Node carries."""

    def __init__(self, rest, node_name, cni_conf_dir, network_name=None, poll=1.0,
                 ip_masq=False):
        self.rest, self.node_name = rest, node_name
        self.cni_conf_dir = cni_conf_dir
        self.network_name = network_name or f"steer-{node_name}"
        self.poll = poll
        #: The bridge masquerades pod traffic itself: no HostGateway does it here.
        self.ip_masq = ip_masq
        self.pod_cidr = None
        self._stop = threading.Event()

    def observe(self, node):
        """Write the configuration if ``node`` carries a podCIDR we have not written yet."""
        cidr = pod_cidr_of(node)
        if not cidr or cidr == self.pod_cidr:
            return False
        path = write_pod_network(self.cni_conf_dir, cidr, self.network_name, self.ip_masq)
        log.info("node=%s pod_cidr=%s cni_config=%s msg=pod network configured",
                 self.node_name, cidr, path)
        self.pod_cidr = cidr
        return True

    def check_once(self):
        try:
            return self.observe(self.rest.get(kinds.NODES, None, self.node_name))
        except ApiException as exc:
            log.info("node=%s msg=cannot read the Node for its podCIDR yet error=%s",
                     self.node_name, exc)
            return False

    def start(self):
        """Poll the Node until it has a podCIDR (the heartbeat keeps an eye after that)."""
        def loop():
            while self.pod_cidr is None and not self._stop.wait(self.poll):
                self.check_once()
        threading.Thread(target=loop, name="pod-network", daemon=True).start()

    def stop(self):
        self._stop.set()
