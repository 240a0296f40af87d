"""The garbage collector's view of resources served at run time (CRDs), by discovery.

As Kubernetes' garbage collector re-reads discovery every resync period and
starts a monitor for each new deletable resource, ``DiscoveredResources`` asks
the API server for every group/version (/apis, then each APIResourceList) and
gives the collector an informer for each resource it did not know: the custom
objects then join the ownerReference graph, and ownerReferences naming custom
kinds resolve (they are added to this process's kinds.TABLE).
"""

import logging
import threading

from control.client import ApiException, Informer
from control.objects import kinds

log = logging.getLogger(__name__)

#: kube-controller-manager's default --garbage-collector resync of discovery.
DEFAULT_PERIOD = 30.0
OWNER = "discovery:garbagecollector"
NEEDED_VERBS = {"list", "watch", "delete"}


def discover(rest, table=kinds.TABLE):
    """Return the Resources the server serves beyond the built-in ones (every version)."""
    found = []
    groups = (rest.request("GET", "/apis") or {}).get("groups") or []
    for group in groups:
        name = group.get("name", "")
        if table.is_builtin_group(name):
            continue
        for entry in group.get("versions") or ():
            version = entry.get("version", "")
            try:
                listed = rest.request("GET", f"/apis/{name}/{version}") or {}
            except ApiException as exc:
                log.info("discovery of %s/%s failed: %s", name, version, exc)
                continue
            for item in listed.get("resources") or ():
                if "/" in item.get("name", "") or not NEEDED_VERBS <= set(item.get("verbs") or ()):
                    continue
                found.append(kinds.Resource(name, version, item["kind"], item["name"],
                                            bool(item.get("namespaced")),
                                            tuple(item.get("shortNames") or ()), (),
                                            tuple(item.get("categories") or ())))
    return found


class DiscoveredResources:
    """Every ``period`` seconds: serve new custom resources to ``add_informer``."""

    def __init__(self, rest, add_informer, period=DEFAULT_PERIOD, table=kinds.TABLE,
                 new_informer=None):
        self.rest, self.add_informer = rest, add_informer
        self.new_informer = new_informer or (lambda resource: Informer(rest, resource))
        self.period, self.table = period, table
        self.monitored = {}

    def sync_once(self):
        """Discover once; start an informer for each new resource, stop those gone."""
        found = discover(self.rest, self.table)
        self.table.set_custom(OWNER, found)
        # One informer per group/plural: the versions of a CRD hold the same objects.
        wanted = {}
        for resource in found:
            wanted.setdefault((resource.group, resource.plural), resource)
        for key, resource in wanted.items():
            if key not in self.monitored:
                informer = self.new_informer(resource)
                self.add_informer(informer)
                informer.start()
                self.monitored[key] = informer
                log.info("garbage collector: monitoring %s", resource.qualified)
        for key in set(self.monitored) - set(wanted):
            self.monitored.pop(key).stop()
            log.info("garbage collector: no longer monitoring %s.%s", key[1], key[0])

    def run(self, stop_event):
        try:
            while not stop_event.is_set():
                try:
                    self.sync_once()
                except Exception as exc:        # noqa: BLE001 - try again next period
                    log.warning("garbage collector: discovery failed: %r", exc)
                stop_event.wait(self.period)
        finally:
            for informer in self.monitored.values():
                informer.stop()

    def start(self, stop_event):
        threading.Thread(target=self.run, args=(stop_event,), name="gc-discovery",
                         daemon=True).start()
