"""ControllerRevisions: the template history of DaemonSets and StatefulSets.

Each distinct pod template a DaemonSet or StatefulSet has had is kept as a
ControllerRevision named ``<owner>-<hash>``, owned by it, labelled with the
template's labels plus ``controller-revision-hash``, whose ``data`` is the patch
that restores the template (``{"spec": {"template": {..., "$patch": "replace"}}}``,
as Kubernetes stores it) and whose ``revision`` numbers them in order. This is
what ``kubectl rollout history`` reads and what ``kubectl rollout undo`` sends
back as a strategic merge patch. Going back to an old template reuses its
revision and gives it the next number, as Kubernetes does.

The functions here are pure except ``ensure_revision``, ``truncate``,
``write_status`` and ``bump_collision_count``, which take the REST client.
Claiming revisions (adopting and releasing) is ownership.RefManager's job.
"""

import copy
import json
import logging

from control.client import AlreadyExists, NotFound
from control.controllers import status as statusutil
from control.controllers.ownership import controller_ref, get_controller_of
from control.objects import kinds

log = logging.getLogger(__name__)

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
                "ownerReferences": [controller_ref(owner, api_version, kind)]}
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
        updated = rest.update(kinds.CONTROLLERREVISIONS, found["metadata"]["namespace"],
                              {**found, "revision": number}) or {**found, "revision": number}
        return updated, [updated if r is found else r for r in revisions]
    collision = (owner.get("status") or {}).get("collisionCount")
    candidate = new_revision(owner, api_version, kind, number, collision)
    try:
        created = rest.create(kinds.CONTROLLERREVISIONS, owner["metadata"]["namespace"], candidate)
    except AlreadyExists:
        existing = rest.get(kinds.CONTROLLERREVISIONS, owner["metadata"]["namespace"],
                            candidate["metadata"]["name"])
        if existing.get("data") == data and \
                (get_controller_of(existing) or {}).get("uid") == owner["metadata"]["uid"]:
            return existing, revisions + [existing]     # our own, not yet in the cache
        raise HashCollision(candidate["metadata"]["name"]) from None
    return created, revisions + [created]


def current_revision(rest, resource, owner, revisions):
    """``ensure_revision`` for an owner of kind ``resource``; on a hash collision raise
    status.collisionCount (the next sync hashes anew) and a retryable error."""
    try:
        return ensure_revision(rest, owner, resource.api_version, resource.kind, revisions)
    except HashCollision as exc:
        bump_collision_count(rest, resource, owner)
        raise RuntimeError(f"revision name {exc} taken; collisionCount raised") from None


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
            rest.delete(kinds.CONTROLLERREVISIONS, rev["metadata"]["namespace"],
                        rev["metadata"]["name"])
        except NotFound:
            pass


def write_status(rest, resource, obj, status):
    """Write a revisioned object's ``status`` if it differs (DaemonSets, StatefulSets).

    A Conflict is retried once on a fresh read, keeping a collisionCount raised meanwhile.
    """
    def keep_collisions(fresh, status):
        return {**status, "collisionCount": max(
            status.get("collisionCount") or 0,
            (fresh.get("status") or {}).get("collisionCount") or 0)}

    statusutil.write_status(rest, resource, obj, status, merge=keep_collisions)


def bump_collision_count(rest, resource, obj):
    """Raise status.collisionCount by one on a fresh read (a revision name was taken)."""
    fresh = rest.get(resource, obj["metadata"]["namespace"], obj["metadata"]["name"])
    status = dict(fresh.get("status") or {})
    status["collisionCount"] = (status.get("collisionCount") or 0) + 1
    rest.update_status(resource, obj["metadata"]["namespace"], {**fresh, "status": status})
