"""ControllerRevisions: the template history of DaemonSets and StatefulSets.

Each distinct pod template a DaemonSet or StatefulSet has had is kept as a
ControllerRevision named ``<owner>-<hash>``, owned by it, labelled with the
template's labels plus ``controller-revision-hash``, whose ``data`` is the patch
that restores the template (``{"spec": {"template": {..., "$patch": "replace"}}}``,
as Kubernetes stores it) and whose ``revision`` numbers them in order. This is
what ``kubectl rollout history`` reads and what ``kubectl rollout undo`` sends
back as a strategic merge patch. Going back to an old template reuses its
revision and gives it the next number, as Kubernetes does.

The functions here are pure except ``ensure_revision``, ``truncate`` and
``claim``, which take the REST client.
"""

import copy
import json
import logging

from control.client import AlreadyExists, Conflict, NotFound
from control.controllers.base import get_controller_of, significant
from control.objects import kinds

log = logging.getLogger(__name__)

CONTROLLER_REVISIONS = kinds.lookup("apps", "v1", "controllerrevisions")
HASH_LABEL = "controller-revision-hash"
#: Kubernetes' rand.SafeEncodeString alphabet: no vowels, no confusable digits.
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
#: Room left for "-<hash>" in a 253-character name (history.ControllerRevisionName).
_MAX_PREFIX = 223


class HashCollision(Exception):
    """A revision of this name exists with other data: bump status.collisionCount."""


def template_patch(owner):
    """The ``data`` of a revision of ``owner``: a patch that puts its template back."""
    template = copy.deepcopy(owner["spec"].get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def _fnv32a(data):
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def hash_data(data, collision_count=None):
    """A short, stable, name-safe hash of ``data`` (and the collision count, if any).

    FNV-1a over canonical JSON, spelled with SafeEncodeString's alphabet like
    Kubernetes' hashes (the digits differ: Go hashes its own object dump).
    """
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        raw += str(collision_count).encode()
    return "".join(_SAFE[int(c) % len(_SAFE)] for c in str(_fnv32a(raw)))


def revision_name(owner_name, hash_):
    return f"{owner_name[:_MAX_PREFIX]}-{hash_}"


def new_revision(owner, api_version, kind, revision, collision_count=None):
    """A ControllerRevision (not yet created) holding ``owner``'s current template."""
    meta = owner["metadata"]
    data = template_patch(owner)
    hash_ = hash_data(data, collision_count)
    labels = dict(((owner["spec"].get("template") or {}).get("metadata") or {}).get("labels")
                  or {})
    labels[HASH_LABEL] = hash_
    rev_meta = {"name": revision_name(meta["name"], hash_), "namespace": meta["namespace"],
                "labels": labels,
                "ownerReferences": [{"apiVersion": api_version, "kind": kind,
                                     "name": meta["name"], "uid": meta["uid"],
                                     "controller": True, "blockOwnerDeletion": True}]}
    if meta.get("annotations"):
        # kubectl rollout history shows kubernetes.io/change-cause from here.
        rev_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": rev_meta,
            "data": data, "revision": revision}


def sort_revisions(revisions):
    """Oldest first: by revision number, then creation time, then name."""
    return sorted(revisions, key=lambda r: (r.get("revision") or 0,
                                            r["metadata"].get("creationTimestamp") or "",
                                            r["metadata"]["name"]))


def next_revision(revisions):
    return max((r.get("revision") or 0 for r in revisions), default=0) + 1


def equal_revisions(revisions, data):
    """The revisions (oldest first) whose data is ``data``."""
    return [r for r in sort_revisions(revisions) if r.get("data") == data]


def owned(objects, owner):
    """The objects whose controller reference is ``owner`` (by uid)."""
    uid = owner["metadata"]["uid"]
    return [o for o in objects if (get_controller_of(o) or {}).get("uid") == uid]


def ensure_revision(rest, owner, api_version, kind, revisions):
    """The revision for ``owner``'s current template, created or renumbered as needed.

    ``revisions`` are the owner's existing revisions. Returns (revision, revisions
    now). Raises HashCollision if the name is taken by different data.
    """
    data = template_patch(owner)
    number = next_revision(revisions)
    equal = equal_revisions(revisions, data)
    if equal:
        found = equal[-1]
        if found.get("revision") == number - 1:
            return found, revisions
        # A rollback to an old template: that revision becomes the newest.
        updated = rest.update(CONTROLLER_REVISIONS, found["metadata"]["namespace"],
                              {**found, "revision": number}) or {**found, "revision": number}
        return updated, [updated if r is found else r for r in revisions]
    collision = (owner.get("status") or {}).get("collisionCount")
    candidate = new_revision(owner, api_version, kind, number, collision)
    try:
        created = rest.create(CONTROLLER_REVISIONS, owner["metadata"]["namespace"], candidate)
    except AlreadyExists:
        existing = rest.get(CONTROLLER_REVISIONS, owner["metadata"]["namespace"],
                            candidate["metadata"]["name"])
        if existing.get("data") == data and \
                (get_controller_of(existing) or {}).get("uid") == owner["metadata"]["uid"]:
            return existing, revisions + [existing]     # our own, not yet in the cache
        raise HashCollision(candidate["metadata"]["name"]) from None
    return created, revisions + [created]


def duplicates(revisions, keep):
    """Revisions other than ``keep`` holding the same data (left by hash collisions)."""
    return [r for r in equal_revisions(revisions, keep.get("data"))
            if r["metadata"]["name"] != keep["metadata"]["name"]]


def to_truncate(revisions, live_names, limit):
    """The revisions to delete so at most ``limit`` unused ones remain (oldest go first)."""
    unused = [r for r in sort_revisions(revisions) if r["metadata"]["name"] not in live_names]
    excess = len(unused) - max(limit, 0)
    return unused[:excess] if excess > 0 else []


def truncate(rest, revisions, live_names, limit):
    """Delete the revisions ``to_truncate`` picks; one already gone is fine."""
    for rev in to_truncate(revisions, live_names, limit):
        try:
            rest.delete(CONTROLLER_REVISIONS, rev["metadata"]["namespace"],
                        rev["metadata"]["name"])
        except NotFound:
            pass


def claim(rest, resource, owner, owner_ref, selector, objects):
    """``objects`` that ``owner`` controls after adopting and releasing (ClaimObject).

    An orphan that matches ``selector`` is adopted; an object of ours that no
    longer matches is released (our ownerReference removed) unless the owner is
    being deleted; an object controlled by someone else is left alone. Both are
    patches that fail if the object changed since it was read.
    """
    uid, claimed = owner["metadata"]["uid"], []
    deleting = bool(owner["metadata"].get("deletionTimestamp"))
    for obj in objects:
        meta = obj["metadata"]
        ref = get_controller_of(obj)
        matches = selector.matches(meta.get("labels") or {})
        if ref is not None and ref.get("uid") != uid:
            continue
        if ref is not None and (matches or deleting):
            claimed.append(obj)
            continue
        if ref is None and (deleting or not matches or meta.get("deletionTimestamp")):
            continue
        refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") != uid]
        if ref is None:
            refs.append(owner_ref)
        patch = {"metadata": {"ownerReferences": refs, "uid": meta["uid"],
                              "resourceVersion": meta["resourceVersion"]}}
        try:
            patched = rest.patch(resource, meta["namespace"], meta["name"], patch)
        except NotFound:
            continue
        if ref is None:             # adopted
            claimed.append(patched or {**obj, "metadata": {**meta, "ownerReferences": refs}})
    return claimed


def write_status(rest, resource, obj, status):
    """Write a revisioned object's ``status`` if it differs (DaemonSets, StatefulSets).

    On a Conflict (often our own last write, not yet cached) retry once on a fresh
    read, keeping a collisionCount raised meanwhile; a deleted object is left alone.
    """
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    for attempt in range(2):
        if significant(status) == significant(obj.get("status") or {}):
            return
        try:
            rest.update_status(resource, namespace, {**obj, "status": status})
            return
        except NotFound:
            return
        except Conflict:
            if attempt:
                raise
            obj = rest.get(resource, namespace, name)
            status = {**status, "collisionCount": max(
                status.get("collisionCount") or 0,
                (obj.get("status") or {}).get("collisionCount") or 0)}


def bump_collision_count(rest, resource, obj):
    """Raise status.collisionCount by one on a fresh read (a revision name was taken)."""
    fresh = rest.get(resource, obj["metadata"]["namespace"], obj["metadata"]["name"])
    status = dict(fresh.get("status") or {})
    status["collisionCount"] = (status.get("collisionCount") or 0) + 1
    rest.update_status(resource, obj["metadata"]["namespace"], {**fresh, "status": status})
