"""Keep one API server process's resource table in step with the stored CRDs.

Every gunicorn worker runs a ``CRDSync``: it lists the CRDs at start, then
follows them with a store watch (relisting after any failure), so a CRD created,
changed or deleted through any process is served, re-served or dropped here. A
request naming a resource the table does not hold yet asks the store for its CRD
(``plural.group``) before answering 404, so the watch's lag never shows.

Deleting a CRD marks it (the ``customresourcecleanup`` finalizer); this process
then deletes its objects (each as a client's DELETE would, finalizers honoured)
and removes the finalizer once none is left, as kube-apiserver's finalizer
controller does. Several processes may race at it: every step is idempotent.
"""

import logging
import threading
import time

from control import errors
from control.api.crd import model
from control.objects import kinds
from control.registry import watch_event

log = logging.getLogger("steer.apiserver.crd")
CRDS = kinds.CUSTOMRESOURCEDEFINITIONS
#: Seconds between relists after the watch failed, and between cleanup passes.
RETRY = 1.0
WATCH_POLL = 5.0


class CRDSync:
    """Serve the stored CRDs in ``table``; empty the deleted ones."""

    def __init__(self, service, table=kinds.TABLE, sleep=time.sleep):
        self.service = service
        self.registry = service.registry
        self.table = table
        self.sleep = sleep
        self._cleaning = set()
        self._applied = {}      # CRD name -> the resourceVersion now served
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    # -- the table --------------------------------------------------------------------
    def apply(self, crd):
        """Serve what ``crd`` defines now (nothing, if it is not established)."""
        name = crd["metadata"]["name"]
        version = crd["metadata"].get("resourceVersion")
        if self._applied.get(name) != version or name not in self.table.custom_owners():
            # Only a changed CRD makes new Resources (each is a key of cached strategies).
            self.table.set_custom(name, model.resources_for(crd))
            self._applied[name] = version
        if crd["metadata"].get("deletionTimestamp") and \
                model.CLEANUP_FINALIZER in (crd["metadata"].get("finalizers") or ()):
            self._start_cleanup(name)

    def resync(self):
        """List every CRD and serve exactly those; return the list's revision."""
        items, revision, _ = self.registry.list(CRDS)
        present = set()
        for crd in items:
            present.add(crd["metadata"]["name"])
            self.apply(crd)
        for gone in set(self._applied) - present:
            self.table.remove_custom(gone)
            self._applied.pop(gone, None)
        return revision

    def on_miss(self, group, version, plural):
        """Look the CRD of an unknown resource up in the store (kinds.ResourceTable)."""
        try:
            crd = self.registry.get(CRDS, None, f"{plural}.{group}")
        except errors.NotFound:
            return None
        self.apply(crd)
        return next((r for r in self.table.custom_of(crd["metadata"]["name"])
                     if r.version == version), None)

    # -- following the store ----------------------------------------------------------
    def start(self):
        """Install the miss hook and follow the CRDs in a daemon thread."""
        self.table.on_miss = self.on_miss
        self.table.refresh = self.resync
        threading.Thread(target=self._follow, name="crd-sync", daemon=True).start()
        return self

    def stop(self):
        self._stopped.set()

    def _follow(self):
        while not self._stopped.is_set():
            try:
                self._watch_from(self.resync())
            except Exception as exc:        # noqa: BLE001 - keep following; relist
                log.warning("event=crd_watch_failed error=%r", exc)
            self.sleep(RETRY)

    def _watch_from(self, revision):
        watch = self.registry.watch(CRDS, None, revision)
        try:
            while not self._stopped.is_set():
                asked = time.monotonic()
                event = watch.next_event(timeout=WATCH_POLL)
                if event is None:
                    if time.monotonic() - asked < WATCH_POLL / 2:
                        # Woken without an event (other keys changed): do not spin.
                        self._stopped.wait(RETRY)
                    continue
                kind, crd = watch_event(event)
                if kind == "DELETED":
                    self.table.remove_custom(crd["metadata"].get("name", ""))
                    self._applied.pop(crd["metadata"].get("name", ""), None)
                else:
                    self.apply(crd)
        finally:
            watch.cancel()

    # -- customresourcecleanup --------------------------------------------------------
    def _start_cleanup(self, name):
        with self._lock:
            if name in self._cleaning:
                return
            self._cleaning.add(name)
        threading.Thread(target=self._cleanup, args=(name,), name=f"crd-cleanup-{name}",
                         daemon=True).start()

    def _cleanup(self, name):
        try:
            while not self._stopped.is_set():
                try:
                    if self.cleanup_pass(name):
                        return
                except errors.ApiError as exc:
                    log.warning("event=crd_cleanup_failed crd=%s error=%r", name, exc.message)
                self.sleep(RETRY)
        finally:
            with self._lock:
                self._cleaning.discard(name)

    def cleanup_pass(self, name):
        """Delete the CRD's objects; once none is left drop its finalizer. True when done."""
        try:
            crd = self.registry.get(CRDS, None, name)
        except errors.NotFound:
            return True
        finalizers = crd["metadata"].get("finalizers") or []
        if not crd["metadata"].get("deletionTimestamp") or \
                model.CLEANUP_FINALIZER not in finalizers:
            return True
        if model.condition(crd, "Terminating").get("status") != "True":
            crd = self._mark_terminating(crd)
        resource = storage_resource(crd)
        items, _, _ = self.service.list(resource)
        for obj in items:
            if obj["metadata"].get("deletionTimestamp"):
                continue        # waiting for its own finalizers
            try:
                self.service.delete(resource, obj["metadata"].get("namespace"),
                                    obj["metadata"]["name"])
            except errors.NotFound:
                pass
        if self.service.list(resource, limit=1)[0]:
            return False
        crd["metadata"]["finalizers"] = [f for f in finalizers if f != model.CLEANUP_FINALIZER]
        try:
            self.service.update(CRDS, None, name, crd)
        except (errors.Conflict, errors.NotFound):
            return False
        log.info("event=crd_cleaned crd=%s", name)
        return True


    def _mark_terminating(self, crd):
        """Set the CRD's Terminating condition, as kube-apiserver's finalizer does."""
        status = dict(crd.get("status") or {})
        status["conditions"] = [c for c in status.get("conditions") or ()
                                if c.get("type") != "Terminating"] + [{
            "type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
            "message": "CustomResource deletion is in progress",
            "lastTransitionTime": crd["metadata"]["deletionTimestamp"]}]
        try:
            return self.service.update(CRDS, None, crd["metadata"]["name"],
                                       {**crd, "status": status}, subresource="status")
        except errors.Conflict:
            return self.registry.get(CRDS, None, crd["metadata"]["name"])


def storage_resource(crd):
    """The Resource of a CRD's storage version (served or not): where its objects live."""
    spec, names = crd["spec"], crd["spec"]["names"]
    stored = model.storage_version(crd)
    info = model.CustomInfo(crd["metadata"]["name"], spec["group"], stored, stored,
                            schema={}, singular=names.get("singular") or names["kind"].lower(),
                            list_kind=names.get("listKind") or names["kind"] + "List",
                            terminating=True)
    return kinds.Resource(spec["group"], stored, names["kind"], names["plural"],
                          spec["scope"] == "Namespaced", custom=info)


def start(service):
    """Start following the CRDs for the process's app; return the CRDSync."""
    return CRDSync(service).start()
