"""Delete what nothing owns any more: Kubernetes' garbage collector.

Objects name their owners in ``metadata.ownerReferences``. The collector keeps a
graph of those references over every kind the API serves (fed by one shared
informer per resource) and acts on three kinds of work, each a queue key:

``delete/<uid>``
    Kubernetes' attemptToDeleteItem. Read the object live; look up each owner
    live (never trusting the cache alone, so a slow watch cannot cost a live
    object). With no owner left it is deleted (Background, or as its own
    finalizers ask); with some owners gone, only the dangling references are
    removed. If an owner waits for its dependents (Foreground), the object is
    deleted, in the foreground itself when it has dependents of its own. For an
    owner being deleted in the foreground it means: once no dependent with
    ``blockOwnerDeletion: true`` remains, drop the ``foregroundDeletion``
    finalizer so the API server removes the owner.
``orphan/<uid>``
    The owner was deleted with propagationPolicy Orphan: remove its references
    from every dependent, then its ``orphan`` finalizer.
``virtual/<uid>``
    A dependent names an owner no informer has shown: check it live, and if it
    does not exist, its dependents are garbage.
"""

import collections
import logging
import threading

from control.client import Conflict, NotFound, object_key
from control.client.events import EventRecorder, NullRecorder
from control.controllers import gcdiscovery
from control.controllers.batch import parallel
from control.controllers.controller import Controller
from control.objects import kinds

log = logging.getLogger(__name__)

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
#: Owner uids known to be absent, remembered (as Kubernetes' absentOwnerCache) so
#: that many dependents of one deleted owner cost one GET.
ABSENT_CACHE_SIZE = 4096
FINALIZER_RETRIES = 5
#: Kubernetes' DefaultIgnoredResources: Events are many, short-lived, and own nothing.
IGNORED_RESOURCES = {("", "events"), ("events.k8s.io", "events")}


def resource_of(api_version, kind):
    """The served resource of an ownerReference's apiVersion and kind, or None.

    A reference written with another version of a served group (apps/v1beta2)
    names the same objects, as a RESTMapper would resolve it.
    """
    resource = kinds.by_api_version_kind(api_version or "", kind or "")
    if resource is None:
        group = (api_version or "").rpartition("/")[0]
        resource = next((r for r in kinds.served() if r.group == group and r.kind == kind),
                        None)
    return resource


def watched_resources():
    """The resources whose objects the graph holds: every served one but Events."""
    return [r for r in kinds.RESOURCES
            if r.stored and (r.group, r.plural) not in IGNORED_RESOURCES]


class Node:
    """One object in the graph; ``observed`` is False for an owner only named so far."""

    __slots__ = ("uid", "api_version", "kind", "namespace", "name", "owners", "dependents",
                 "observed", "deleting_dependents")

    def __init__(self, uid, api_version, kind, namespace, name, observed):
        self.uid, self.api_version, self.kind = uid, api_version, kind
        self.namespace, self.name = namespace, name
        self.owners = []            # the object's ownerReferences
        self.dependents = set()     # uids of objects naming this one as an owner
        self.observed = observed
        self.deleting_dependents = False

    @property
    def resource(self):
        return resource_of(self.api_version, self.kind)

    def describe(self):
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name} ({self.uid})"


def _has(obj, finalizer):
    return finalizer in (obj["metadata"].get("finalizers") or ())


def deleting_dependents(obj):
    """Being deleted in the foreground: deletionTimestamp and foregroundDeletion."""
    return bool(obj["metadata"].get("deletionTimestamp")) and _has(obj, FOREGROUND)


class Graph:
    """The ownerReference graph; every method returns the queue keys it makes due."""

    def __init__(self):
        self._lock = threading.Lock()
        self._nodes = {}

    def get(self, uid):
        with self._lock:
            return self._nodes.get(uid)

    def __len__(self):
        with self._lock:
            return len(self._nodes)

    def dependents(self, uid):
        """The observed dependent nodes of ``uid``."""
        with self._lock:
            node = self._nodes.get(uid)
            deps = [self._nodes.get(d) for d in node.dependents] if node else []
            return [d for d in deps if d is not None and d.observed]

    def blocking_dependents(self, uid):
        """Dependents whose reference to ``uid`` has blockOwnerDeletion: true."""
        return [d for d in self.dependents(uid)
                if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in d.owners)]

    def observe(self, obj):
        """An object was added or updated: record it and its references."""
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return []
        work = []
        with self._lock:
            node = self._nodes.get(uid)
            if node is None:
                node = self._nodes[uid] = Node(uid, None, None, None, None, True)
            node.observed = True
            node.api_version, node.kind = obj.get("apiVersion"), obj.get("kind")
            node.namespace, node.name = meta.get("namespace"), meta.get("name")
            old, new = node.owners, list(meta.get("ownerReferences") or ())
            old_by_uid = {r.get("uid"): r for r in old}
            new_by_uid = {r.get("uid"): r for r in new}
            for owner_uid, ref in new_by_uid.items():
                if owner_uid in old_by_uid:
                    continue
                owner = self._nodes.get(owner_uid)
                if owner is None:
                    resource = resource_of(ref.get("apiVersion"), ref.get("kind"))
                    namespace = node.namespace if resource is None or resource.namespaced \
                        else None
                    owner = self._nodes[owner_uid] = Node(owner_uid, ref.get("apiVersion"),
                                                          ref.get("kind"), namespace,
                                                          ref.get("name"), False)
                    work.append(f"virtual/{owner_uid}")
                owner.dependents.add(uid)
            for owner_uid in old_by_uid:
                if owner_uid not in new_by_uid:
                    self._unlink(owner_uid, uid)
            for owner_uid in set(old_by_uid) | set(new_by_uid):
                # A removed or unblocked reference may be what a foreground owner awaits.
                owner = self._nodes.get(owner_uid)
                if owner is not None and owner.deleting_dependents and \
                        old_by_uid.get(owner_uid) != new_by_uid.get(owner_uid):
                    work.append(f"delete/{owner_uid}")
            node.owners = new
            if meta.get("deletionTimestamp") and _has(obj, ORPHAN):
                work.append(f"orphan/{uid}")
            if deleting_dependents(obj):
                if not node.deleting_dependents:
                    node.deleting_dependents = True
                    work.extend(f"delete/{d}" for d in sorted(node.dependents))
                work.append(f"delete/{uid}")
            else:
                node.deleting_dependents = False
        return work

    def forget(self, obj):
        """An object was deleted: drop it; its dependents and waiting owners are due."""
        uid = (obj.get("metadata") or {}).get("uid")
        with self._lock:
            node = self._nodes.pop(uid, None)
            if node is None:
                return []
            work = [f"delete/{d}" for d in sorted(node.dependents)]
            for ref in node.owners:
                owner = self._nodes.get(ref.get("uid"))
                if owner is not None and owner.deleting_dependents:
                    work.append(f"delete/{owner.uid}")
                self._unlink(ref.get("uid"), uid)
        return work

    def forget_virtual(self, uid):
        """A named owner turned out not to exist: drop it; its dependents are due."""
        with self._lock:
            node = self._nodes.get(uid)
            if node is None or node.observed:
                return []
            del self._nodes[uid]
            return [f"delete/{d}" for d in sorted(node.dependents)]

    def _unlink(self, owner_uid, dependent_uid):
        owner = self._nodes.get(owner_uid)
        if owner is None:
            return
        owner.dependents.discard(dependent_uid)
        if not owner.observed and not owner.dependents:
            del self._nodes[owner_uid]


class GarbageCollector(Controller):
    """Act on the ownerReference graph: background, foreground and orphan deletion."""

    def __init__(self, rest, informers, queue=None, recorder=None,
                 discovery_period=gcdiscovery.DEFAULT_PERIOD):
        super().__init__("garbagecollector", informers, queue)
        #: Custom resources (CRDs) join the graph as discovery shows them (None: off).
        self.discovery = (gcdiscovery.DiscoveredResources(rest, self.monitor,
                                                          discovery_period)
                          if rest is not None and discovery_period else None)
        self.rest = rest
        self.recorder = recorder or (EventRecorder(rest, "garbage-collector-controller")
                                     if rest is not None else NullRecorder())
        self.graph = Graph()
        self._absent = collections.OrderedDict()
        self._absent_lock = threading.Lock()
        for informer in self.informers:
            informer.add_handler(self._added, self._updated, self._deleted)

    def monitor(self, informer):
        """Feed one more informer's objects (a discovered custom resource) to the graph."""
        informer.add_handler(self._added, self._updated, self._deleted)

    def run(self, workers, stop_event):
        if self.discovery is not None:
            self.discovery.start(stop_event)
        super().run(workers, stop_event)

    # -- handlers: keep the graph, queue what became due -------------------------------
    def _queue(self, keys):
        for key in keys:
            self.queue.add(key)

    def _added(self, obj):
        self._queue(self.graph.observe(obj))

    def _updated(self, old, new):
        if old["metadata"].get("resourceVersion") != new["metadata"].get("resourceVersion"):
            self._queue(self.graph.observe(new))

    def _deleted(self, obj):
        self._note_absent(obj["metadata"].get("uid"))
        self._queue(self.graph.forget(obj))

    def _note_absent(self, uid):
        with self._absent_lock:
            self._absent[uid] = True
            self._absent.move_to_end(uid)
            while len(self._absent) > ABSENT_CACHE_SIZE:
                self._absent.popitem(last=False)

    def _is_absent(self, uid):
        with self._absent_lock:
            return uid in self._absent

    # -- the work ---------------------------------------------------------------------
    def sync(self, key):
        verb, _, uid = key.partition("/")
        if verb == "delete":
            self.attempt_to_delete(uid)
        elif verb == "orphan":
            self.attempt_to_orphan(uid)
        elif verb == "virtual":
            self.check_virtual(uid)

    def _get_live(self, node):
        """The object ``node`` stands for, read from the API server; None if gone."""
        resource = node.resource
        if resource is None or (resource.namespaced and not node.namespace):
            return None
        try:
            obj = self.rest.get(resource, node.namespace if resource.namespaced else None,
                                node.name)
        except NotFound:
            return None
        return obj if obj["metadata"].get("uid") == node.uid else None

    def check_virtual(self, uid):
        node = self.graph.get(uid)
        if node is None or node.observed:
            return
        resource = node.resource
        if resource is None or (resource.namespaced and not node.namespace):
            log.warning("garbage collector: cannot look up owner %s", node.describe())
            return
        if self._get_live(node) is not None:
            return      # it exists; an informer will show it
        self._note_absent(uid)
        self._queue(self.graph.forget_virtual(uid))

    def classify(self, dependent):
        """Split the owners of ``dependent`` into (solid, dangling, waiting) references.

        Waiting owners are being deleted in the foreground, waiting for their
        dependents. An owner reference that cannot be resolved (an unknown kind, or
        a namespaced owner of a cluster-scoped object) counts as solid: it is never
        a reason to delete.
        """
        solid, dangling, waiting = [], [], []
        namespace = dependent["metadata"].get("namespace")
        for ref in dependent["metadata"].get("ownerReferences") or ():
            uid = ref.get("uid")
            if self._is_absent(uid):
                dangling.append(ref)
                continue
            resource = resource_of(ref.get("apiVersion"), ref.get("kind"))
            if resource is None:
                log.warning("garbage collector: %s names an owner of unknown kind %s/%s",
                            object_key(dependent), ref.get("apiVersion"), ref.get("kind"))
                solid.append(ref)
                continue
            if resource.namespaced and not namespace:
                self.recorder.event(dependent, "Warning", "OwnerRefInvalidNamespace",
                                    f"ownerRef [{ref.get('apiVersion')}/{ref.get('kind')}, "
                                    f"namespace: , name: {ref.get('name')}, uid: {uid}] does "
                                    "not exist in namespace \"\"")
                solid.append(ref)
                continue
            try:
                owner = self.rest.get(resource, namespace if resource.namespaced else None,
                                      ref.get("name"))
            except NotFound:
                owner = None
            if owner is None or owner["metadata"].get("uid") != uid:
                self._note_absent(uid)
                dangling.append(ref)
            elif deleting_dependents(owner):
                waiting.append(ref)
            else:
                solid.append(ref)
        return solid, dangling, waiting

    def attempt_to_delete(self, uid):
        node = self.graph.get(uid)
        if node is None or not node.observed:
            return
        obj = self._get_live(node)
        if obj is None:
            return
        meta = obj["metadata"]
        if deleting_dependents(obj):
            self.process_deleting_dependents(node, obj)
            return
        if meta.get("deletionTimestamp") or not meta.get("ownerReferences"):
            return
        solid, dangling, waiting = self.classify(obj)
        if solid:
            if not dangling and not waiting:
                return
            gone = {r.get("uid") for r in dangling + waiting}
            log.info("garbage collector: removing owner references %s from %s",
                     sorted(gone), node.describe())
            self._patch_owners(obj, [r for r in meta["ownerReferences"]
                                     if r.get("uid") not in gone])
            return
        if waiting and self.graph.dependents(uid):
            if any(d.deleting_dependents for d in self.graph.dependents(uid)):
                # A cycle of foreground deletions would wait forever: stop blocking ours.
                waiting_uids = {r.get("uid") for r in waiting}
                self._patch_owners(obj, [{**r, "blockOwnerDeletion": False}
                                         if r.get("uid") in waiting_uids else r
                                         for r in meta["ownerReferences"]])
            self._delete(node, obj, "Foreground")
            return
        if _has(obj, ORPHAN):
            policy = "Orphan"
        elif _has(obj, FOREGROUND):
            policy = "Foreground"
        else:
            policy = "Background"
        self._delete(node, obj, policy)

    def process_deleting_dependents(self, node, obj):
        """An owner deleted in the foreground: finish once nothing blocks it."""
        blocking = self.graph.blocking_dependents(node.uid)
        if not blocking:
            log.info("garbage collector: %s has no blocking dependents left; removing %s",
                     node.describe(), FOREGROUND)
            self.remove_finalizer(node, FOREGROUND)
            return
        for dependent in blocking:
            if not dependent.deleting_dependents:
                self.queue.add(f"delete/{dependent.uid}")

    def attempt_to_orphan(self, uid):
        node = self.graph.get(uid)
        if node is None:
            return
        owner = self._get_live(node)
        if owner is None or not owner["metadata"].get("deletionTimestamp") or \
                not _has(owner, ORPHAN):
            return
        errors = []

        def release(dependent):
            for _ in range(FINALIZER_RETRIES):
                obj = self._get_live(dependent)
                refs = (obj or {}).get("metadata", {}).get("ownerReferences") or ()
                if not any(r.get("uid") == uid for r in refs):
                    return
                try:
                    self._patch_owners(obj, [r for r in refs if r.get("uid") != uid])
                    return
                except NotFound:
                    return
                except Conflict:
                    continue
                except Exception as exc:    # noqa: BLE001 - reported after the others
                    errors.append(exc)
                    return
            errors.append(Conflict(409, "Conflict", f"{dependent.describe()} kept changing"))

        parallel(release, self.graph.dependents(uid))
        if errors:
            raise errors[0]
        log.info("garbage collector: orphaned the dependents of %s", node.describe())
        self.remove_finalizer(node, ORPHAN)

    # -- writes -------------------------------------------------------------------------
    def _patch_owners(self, obj, refs):
        """Set ownerReferences, failing (409) if the object changed since it was read."""
        meta = obj["metadata"]
        patch = {"metadata": {"ownerReferences": refs or None, "uid": meta["uid"],
                              "resourceVersion": meta["resourceVersion"]}}
        resource = resource_of(obj.get("apiVersion"), obj.get("kind"))
        self.rest.patch(resource, meta.get("namespace"), meta["name"], patch)

    def _delete(self, node, obj, policy):
        log.info("garbage collector: deleting %s (propagationPolicy %s)", node.describe(), policy)
        meta = obj["metadata"]
        try:
            self.rest.delete(node.resource, meta.get("namespace"), meta["name"],
                             propagation_policy=policy, preconditions={"uid": node.uid})
        except NotFound:
            pass

    def remove_finalizer(self, node, finalizer):
        """Drop ``finalizer`` from the live object, retrying on conflicts."""
        for _ in range(FINALIZER_RETRIES):
            obj = self._get_live(node)
            if obj is None or not _has(obj, finalizer):
                return
            meta = obj["metadata"]
            rest = [f for f in meta["finalizers"] if f != finalizer]
            try:
                self.rest.patch(node.resource, meta.get("namespace"), meta["name"],
                                {"metadata": {"finalizers": rest or None,
                                              "resourceVersion": meta["resourceVersion"]}})
                return
            except NotFound:
                return
            except Conflict:
                continue
        raise Conflict(409, "Conflict", f"{node.describe()} kept changing while its "
                                        f"{finalizer} finalizer was removed")
