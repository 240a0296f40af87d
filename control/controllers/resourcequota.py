"""Keep every ResourceQuota's status true: Kubernetes' resource quota controller.

status.hard is spec.hard; status.used is recounted from the namespace's objects
(pods that finished or whose deletion grace period is over are not counted;
scopes select pods). A quota is recounted when it is created or its spec
changes, when a pod, Service or claim in its namespace is deleted or a pod
finishes (replenishment: the admission plugin charges creates, only the
controller gives back), and every ``--resource-quota-sync-period`` (5 minutes by
default) in case a charged write then failed. Objects are listed fresh from the
API server, and the status is written with the quota's resourceVersion, so a
recount never overwrites a charge made meanwhile (a conflict retries).
"""

import logging
import threading

from control.client import NotFound
from control.controllers.controller import Controller, by_namespace, split_key
from control.objects import kinds, meta
from control.objects import quota as evaluation
from control.objects import quota_amounts as amounts

log = logging.getLogger(__name__)

RESOURCEQUOTAS = kinds.lookup("", "v1", "resourcequotas")
#: kube-controller-manager's --resource-quota-sync-period default (seconds).
SYNC_PERIOD = 300.0
TERMINAL = ("Succeeded", "Failed")


def desired_status(quota, lister, now=None):
    """Return the status a quota should have; ``lister(resource, namespace)`` lists objects."""
    hard = dict((quota.get("spec") or {}).get("hard") or {})
    namespace = quota["metadata"].get("namespace")
    by_resource = {}
    for name in hard:
        resource = evaluation.resource_for(name)
        if resource is not None:
            by_resource.setdefault(resource, []).append(name)
    used = {}
    for resource, names in by_resource.items():
        objects = lister(resource, namespace)
        used.update(evaluation.total_usage(quota, resource, objects, names, now))
    return {"hard": hard, "used": amounts.to_api(used)}


def status_differs(current, desired):
    """Return whether a stored status differs in value from the desired one."""
    current = current or {}
    for field in ("hard", "used"):
        if not amounts.equal(amounts.parse_list(current.get(field)),
                             amounts.parse_list(desired.get(field))):
            return True
        if set(current.get(field) or {}) != set(desired.get(field) or {}):
            return True
    return False


def _ignore(obj):
    """Do nothing with an added object."""


class ResourceQuotaController(Controller):
    """Recount quotas' usage on changes and every ``sync_period`` seconds."""

    def __init__(self, rest, quota_informer, watched_informers=(), queue=None,
                 sync_period=SYNC_PERIOD, clock=meta.utcnow):
        super().__init__("resourcequota", [quota_informer, *watched_informers], queue)
        self.rest, self.quotas = rest, quota_informer.store
        self.sync_period, self.clock = sync_period, clock
        quota_informer.add_handler(self.enqueue, self._quota_updated)
        for informer in watched_informers:
            # Creates are charged by admission: only updates and deletions matter here.
            informer.add_handler(_ignore, self._object_updated, self._object_deleted)

    def _quota_updated(self, old, new):
        spec_changed = (old.get("spec") or {}) != (new.get("spec") or {})
        hard = (new.get("spec") or {}).get("hard") or {}
        if spec_changed or (new.get("status") or {}).get("hard") != hard:
            self.enqueue(new)

    def _object_updated(self, old, new):
        # A pod that finished no longer counts: give its usage back.
        old_phase = (old.get("status") or {}).get("phase")
        new_phase = (new.get("status") or {}).get("phase")
        if new_phase in TERMINAL and old_phase not in TERMINAL:
            self._enqueue_namespace(new)
        elif (new.get("metadata") or {}).get("deletionTimestamp") and not \
                (old.get("metadata") or {}).get("deletionTimestamp"):
            self._enqueue_namespace(new)

    def _object_deleted(self, obj):
        self._enqueue_namespace(obj)

    def _enqueue_namespace(self, obj):
        namespace = (obj.get("metadata") or {}).get("namespace")
        if namespace:
            for quota in by_namespace(self.quotas, namespace):
                self.enqueue(quota)

    def _list(self, resource, namespace):
        items, _ = self.rest.list_all(resource, namespace)
        return items

    def sync(self, key):
        namespace, _ = split_key(key)
        quota = self.quotas.get(key)
        if quota is None:
            return
        status = desired_status(quota, self._list, self.clock())
        if status_differs(quota.get("status"), status):
            log.info("resourcequota %s: status.used %s", key, status["used"])
            try:
                # The cached resourceVersion: a stale cache is a Conflict, and a retry.
                self.rest.update_status(RESOURCEQUOTAS, namespace, {**quota, "status": status})
            except NotFound:
                pass

    def resync_all(self):
        """Queue every quota for a recount (what each sync period does)."""
        for quota in self.quotas.list():
            self.enqueue(quota)

    def _resync_loop(self, stop_event):
        while not stop_event.wait(self.sync_period):
            self.resync_all()

    def run(self, workers, stop_event):
        if self.sync_period:
            threading.Thread(target=self._resync_loop, args=(stop_event,), daemon=True,
                             name="resourcequota-resync").start()
        super().run(workers, stop_event)


# -- kube-controller-manager wiring -------------------------------------------------------------
def add_flags(parser):
    """Add --resource-quota-sync-period (a Go duration, as kube-controller-manager's)."""
    from control.controllers.manager import duration  # noqa: PLC0415 - manager imports us

    parser.add_argument("--resource-quota-sync-period", type=duration, default=SYNC_PERIOD,
                        help="how often every ResourceQuota's usage is recounted (default 5m)")


def controller_factory(rest, informers, options):
    """Build the controller over the manager's shared informers."""
    watched = [informers.informer(kinds.lookup("", "v1", plural))
               for plural in ("pods", "services", "persistentvolumeclaims")]
    period = getattr(options, "resource_quota_sync_period", None) or SYNC_PERIOD
    return ResourceQuotaController(rest, informers.informer(RESOURCEQUOTAS), watched,
                                   sync_period=period)
