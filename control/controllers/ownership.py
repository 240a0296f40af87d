"""Owners and their children: controllerRefs, adoption and release, child events.

One toolkit, as client-go's ControllerRefManager and each workload controller's
getXForPod / addPod / updatePod / deletePod, for every controller that owns
objects (ReplicaSets own pods, Deployments own ReplicaSets, DaemonSets,
StatefulSets and Jobs own pods, DaemonSets and StatefulSets own revisions):

* ``Owners`` resolves a child's controllerRef to its cached owner (same kind and
  API group, same uid) and finds the owners whose selector matches an orphan;
* ``ChildEvents`` turns a child informer's events into owner keys to sync;
* ``RefManager`` claims children for one owner: keeps its own, adopts matching
  orphans and releases its children that stopped matching.
"""

import logging

from control.client import Invalid, NotFound, object_key
from control.controllers.controller import by_namespace
from control.objects.selectors import LabelSelector, SelectorError

log = logging.getLogger(__name__)


def controller_ref(owner, api_version, kind):
    """An ownerReference naming ``owner`` as the managing controller of a dependent."""
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": True}


def get_controller_of(obj):
    """The ownerReference of ``obj`` with ``controller: true``, or None."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def create_owned(rest, resource, namespace, body, owner, api_version, kind):
    """Create ``body`` (not mutated) with ``owner`` as its controller; return the result."""
    meta = dict(body.get("metadata") or {})
    refs = [r for r in meta.get("ownerReferences") or () if not r.get("controller")]
    meta["ownerReferences"] = refs + [controller_ref(owner, api_version, kind)]
    return rest.create(resource, namespace, {**body, "metadata": meta})


def _group(api_version):
    return (api_version or "").rpartition("/")[0]


def selector_of(owner):
    """The owner's spec.selector as a LabelSelector; raises SelectorError if invalid."""
    return LabelSelector.from_object((owner.get("spec") or {}).get("selector"))


class Owners:
    """The cached owners of one kind (``resource``), as their children refer to them."""

    def __init__(self, store, resource):
        self.store, self.resource = store, resource

    def ref(self, owner):
        """The controllerRef a child of ``owner`` carries."""
        return controller_ref(owner, self.resource.api_version, self.resource.kind)

    def resolve(self, namespace, ref):
        """The cached owner ``ref`` names, or None unless kind, group and uid all match."""
        if ref is None or ref.get("kind") != self.resource.kind or \
                _group(ref.get("apiVersion")) != self.resource.group:
            return None
        owner = self.store.get(f"{namespace}/{ref.get('name')}" if namespace
                               else ref.get("name"))
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return owner

    def owner_of(self, child):
        """The cached owner controlling ``child``, or None."""
        return self.resolve(child["metadata"].get("namespace"), get_controller_of(child))

    def matching(self, child):
        """The owners in the child's namespace whose (valid, non-empty) selector matches it."""
        labels = child["metadata"].get("labels") or {}
        found = []
        for owner in by_namespace(self.store, child["metadata"].get("namespace")):
            try:
                selector = selector_of(owner)
            except SelectorError:
                continue
            if not selector.empty and selector.matches(labels):
                found.append(owner)
        return found


def _ignore(*args):
    pass


class ChildEvents:
    """Informer handlers for an owner's children that only find owners and enqueue them.

    ``created(owner, child)`` and ``deleted(owner, child)`` let a controller note its
    expectations; ``updated(owner, old, new)`` lets it look again later (say, when a
    pod becomes Ready under minReadySeconds). A child seen with a deletionTimestamp
    counts as deleted: a graceful delete starts with an update. The informer hands
    a delete the object's last known state, so there is no tombstone to unwrap.
    """

    def __init__(self, owners, enqueue, created=_ignore, deleted=_ignore, updated=_ignore):
        self.owners, self.enqueue = owners, enqueue
        self.created, self.deleted, self.updated = created, deleted, updated

    def attach(self, informer):
        informer.add_handler(self.on_add, self.on_update, self.on_delete)

    def on_add(self, child):
        if child["metadata"].get("deletionTimestamp"):
            # Seen first while being deleted (a restart): count it as a deletion.
            self.on_delete(child)
            return
        ref = get_controller_of(child)
        if ref is not None:
            owner = self.owners.resolve(child["metadata"].get("namespace"), ref)
            if owner is not None:
                self.created(owner, child)
                self.enqueue(owner)
            return
        for owner in self.owners.matching(child):   # an orphan: someone may adopt it
            self.enqueue(owner)

    def on_update(self, old, new):
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return          # a resync: nothing changed
        labels_changed = old["metadata"].get("labels") != new["metadata"].get("labels")
        if new["metadata"].get("deletionTimestamp"):
            self.on_delete(new)
            if labels_changed:
                self.on_delete(old)
            return
        namespace = new["metadata"].get("namespace")
        old_ref, new_ref = get_controller_of(old), get_controller_of(new)
        ref_changed = old_ref != new_ref
        if ref_changed and old_ref is not None:
            owner = self.owners.resolve(namespace, old_ref)
            if owner is not None:
                self.enqueue(owner)
        if new_ref is not None:
            owner = self.owners.resolve(namespace, new_ref)
            if owner is not None:
                self.enqueue(owner)
                self.updated(owner, old, new)
            return
        if labels_changed or ref_changed:
            for owner in self.owners.matching(new):
                self.enqueue(owner)

    def on_delete(self, child):
        owner = self.owners.owner_of(child)
        if owner is not None:
            self.deleted(owner, child)
            self.enqueue(owner)


class RefManager:
    """Claim children for one owner, as client-go's ControllerRefManager.

    ``owner_resource`` is the owner's kind (for its controllerRef and the fresh
    read before adopting); ``member`` optionally narrows the selector (a
    StatefulSet claims only pods named like its members).
    """

    def __init__(self, rest, owner_resource, owner, selector, member=None):
        self.rest, self.resource, self.owner = rest, owner_resource, owner
        self.selector, self.member = selector, member
        self.uid = owner["metadata"]["uid"]
        self._can_adopt = None          # checked once, on the first adoption

    def matches(self, child):
        return self.selector.matches(child["metadata"].get("labels") or {}) and \
            (self.member is None or self.member(child))

    def claim(self, child_resource, children):
        """The ``children`` the owner controls after adopting and releasing.

        Someone else's child is never touched; our child that stopped matching is
        released (unless the owner is being deleted: then it is only not claimed);
        a matching orphan is adopted if neither it nor the owner is being deleted.
        Every child has its turn; then the first error (other than the child
        being gone) is raised.
        """
        deleting = bool(self.owner["metadata"].get("deletionTimestamp"))
        claimed, errors = [], []
        for child in children:
            ref = get_controller_of(child)
            try:
                if ref is not None:
                    if ref.get("uid") != self.uid:
                        continue
                    if self.matches(child):
                        claimed.append(child)
                    elif not deleting:
                        self.release(child_resource, child)
                    continue
                if deleting or not self.matches(child) or \
                        child["metadata"].get("deletionTimestamp"):
                    continue
                claimed.append(self.adopt(child_resource, child))
            except NotFound:
                continue
            except Exception as exc:    # noqa: BLE001 - the others get their turn first
                errors.append(exc)
        if errors:
            raise errors[0]
        return claimed

    def can_adopt(self):
        """Raise unless the owner, read fresh from the API, is still this one and alive.

        Kubernetes' RecheckDeletionTimestamp: the cache may not show a deletion yet.
        """
        if self._can_adopt is None:
            meta = self.owner["metadata"]
            fresh = self.rest.get(self.resource, meta.get("namespace"), meta["name"])
            if fresh["metadata"].get("uid") != self.uid:
                self._can_adopt = f"original {object_key(self.owner)} is gone"
            elif fresh["metadata"].get("deletionTimestamp"):
                self._can_adopt = f"{object_key(self.owner)} is being deleted"
            else:
                self._can_adopt = ""
        if self._can_adopt:
            raise RuntimeError(f"cannot adopt: {self._can_adopt}")

    def adopt(self, child_resource, child):
        """Add the owner's controllerRef to an orphan; return the child as patched."""
        self.can_adopt()
        refs = list(child["metadata"].get("ownerReferences") or ())
        refs.append(controller_ref(self.owner, self.resource.api_version, self.resource.kind))
        return self._patch_refs(child_resource, child, refs)

    def release(self, child_resource, child):
        """Remove the owner's reference from a child; one gone or invalid meanwhile is fine."""
        refs = [r for r in child["metadata"].get("ownerReferences") or ()
                if r.get("uid") != self.uid]
        try:
            self._patch_refs(child_resource, child, refs)
        except (NotFound, Invalid):
            pass

    def _patch_refs(self, child_resource, child, refs):
        """Set ownerReferences; the uid and resourceVersion make it fail if the child changed.

        The whole list is replaced (a merge patch), so the resourceVersion guards
        against overwriting a concurrent change to it.
        """
        meta = child["metadata"]
        patch = {"metadata": {"ownerReferences": refs, "uid": meta["uid"],
                              "resourceVersion": meta.get("resourceVersion")}}
        patched = self.rest.patch(child_resource, meta.get("namespace"), meta["name"], patch)
        return patched or {**child, "metadata": {**meta, "ownerReferences": refs}}
