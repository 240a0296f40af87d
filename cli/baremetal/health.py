"""Wait, with a deadline, until each part of a bare-metal cluster answers.

The admin's side asks the cluster itself, as kubeadm does: the store members with the
store CA's admin certificate (a leader agreed and a linearizable read served), each
API server's /readyz and the Lease objects the scheduler and controller manager hold
while they lead, then every node's Ready condition -- all through ``reach``
(cli/baremetal/reach.py), so the same code works from inside the test LAN namespace.
A wait that runs out raises a StepError naming the host, what did not happen and
where its log is.
"""

import json
import ssl
import time
import urllib.error
import urllib.request

from cli.baremetal.fleet import StepError
from control.objects import conditions
from store.client import StoreClient, StoreError

STORE_CLIENT_PORT = 2379
API_PORT = 6443
LOGS = "/var/log/steersman"


class Health:
    """The waits of `steer cluster create`; ``ports`` maps "store"/"api" to port numbers."""

    def __init__(self, credentials, reach, timeout=180.0, ports=None, clock=time.monotonic,
                 sleep=time.sleep):
        self.credentials, self.reach, self.timeout = credentials, reach, timeout
        self.ports = {"store": STORE_CLIENT_PORT, "api": API_PORT, **(ports or {})}
        self.clock, self.sleep = clock, sleep

    # -- plumbing -----------------------------------------------------------------------
    def _until(self, check, host, what, fix):
        deadline = self.clock() + self.timeout
        last = None
        while True:
            try:
                result = check()
                if result:
                    return result
            except (OSError, StoreError, ValueError) as exc:
                last = exc
            if self.clock() > deadline:
                detail = f" (last: {last})" if last else ""
                raise StepError(host, what, f"not within {self.timeout:g}s{detail}", fix)
            self.sleep(0.5)

    def admin_context(self):
        context = ssl.create_default_context(cafile=self.credentials.ca_file)
        context.load_cert_chain(*self.credentials.admin_cert())
        return context

    def api_url(self, host):
        return "https://%s:%d" % self.reach.address(host.address, self.ports["api"])

    def get_json(self, host, path, timeout=5.0):
        """GET ``path`` from ``host``'s API server as the admin; the JSON, or None."""
        try:
            with urllib.request.urlopen(self.api_url(host) + path, timeout=timeout,
                                        context=self.admin_context()) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError:
            return None
        except urllib.error.URLError as exc:
            raise OSError(str(exc.reason)) from None

    # -- the waits, in the order of create ----------------------------------------------
    def store_quorum(self, topology, say):
        members = topology.control
        tls = self.credentials.store_admin_tls()
        for host in members:
            endpoint = self.reach.endpoint(host.address, self.ports["store"])

            def agreed(endpoint=endpoint):
                with StoreClient([endpoint], timeout=3.0, **tls) as client:
                    status = client.status()
                    return bool(status.get("leader_peer"))

            self._until(agreed, host.name, "wait for the store member to join a quorum",
                        f"read {LOGS}/steersman-store.log on {host.name}; every control host "
                        f"must reach the others on their peer port")
        endpoints = [self.reach.endpoint(h.address, self.ports["store"]) for h in members]

        def readable():
            with StoreClient(endpoints, timeout=3.0, **tls) as client:
                client.get(b"/steersman/quorum-probe")
                return True

        self._until(readable, members[0].name, "wait for a linearizable store read",
                    f"read {LOGS}/steersman-store.log on the control hosts")
        say(f"store: {len(members)} members agree on a leader")

    def apiservers_ready(self, topology, say):
        for host in topology.control:
            self._until(lambda h=host: self._readyz(h), host.name,
                        "wait for the API server's /readyz",
                        f"read {LOGS}/steersman-apiserver.log on {host.name}")
            say(f"{host.name}: API server ready")

    def _readyz(self, host):
        try:
            with urllib.request.urlopen(self.api_url(host) + "/readyz", timeout=5.0,
                                        context=self.admin_context()) as resp:
                return resp.status == 200
        except urllib.error.URLError as exc:
            raise OSError(str(getattr(exc, "reason", exc))) from None

    def controllers_running(self, topology, say):
        first = topology.control[0]
        for lease, log in (("steer-scheduler", "steersman-scheduler"),
                           ("steer-controller-manager", "steersman-controller-manager")):
            path = f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{lease}"
            self._until(lambda path=path: (self.get_json(first, path) or {}).get("spec", {})
                        .get("holderIdentity"), first.name, f"wait for the {lease} leader",
                        f"read {LOGS}/{log}.log on the control hosts")
        say("scheduler and controller manager: leaders elected")

    def nodes_ready(self, topology, say, hosts=None):
        """Wait until the Node of every worker (or of each of ``hosts``) is Ready."""
        first = topology.control[0]
        for host in topology.workers if hosts is None else hosts:
            self._until(lambda h=host: conditions.is_ready(
                self.get_json(first, f"/api/v1/nodes/{h.name}")), host.name,
                "wait for the node to be Ready",
                f"read {LOGS}/steersman-agent.log and containerd's log on {host.name}")
            say(f"{host.name}: node Ready")
