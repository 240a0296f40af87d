"""Empty a namespace being deleted, then let it go: Kubernetes' namespace controller.

Deleting a namespace only marks it (deletionTimestamp, phase Terminating): its
``spec.finalizers`` holds "kubernetes" until this controller has removed
everything in it. Each sync deletes the collection of every namespaced resource,
counts what is still there (pods may take their grace period; objects may wait
for finalizers), reports progress in the namespace's conditions as Kubernetes
1.32 does, and, once nothing is left, removes "kubernetes" through the
``namespaces/{name}/finalize`` subresource so the API server deletes the
namespace. Content is read live, not from caches, as in Kubernetes: the
decision to finalize must not rest on a stale view.
"""

import logging

from control.client import ApiException, NotFound
from control.controllers import gcdiscovery
from control.controllers.controller import Controller
from control.objects import kinds, meta

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"

DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"
#: The order Kubernetes keeps these conditions in.
CONDITION_TYPES = (DISCOVERY_FAILURE, PARSING_FAILURE, CONTENT_FAILURE, CONTENT_REMAINING,
                   FINALIZERS_REMAINING)


def namespaced_resources():
    """Every namespaced resource the API serves: what a namespace can contain."""
    return [r for r in kinds.RESOURCES if r.namespaced and r.stored]


def deletion_conditions(failures, remaining, finalizers):
    """The (type, status, reason, message) of each deletion condition.

    ``failures`` are error strings from deleting collections; ``remaining`` maps a
    resource ("pods.", "replicasets.apps") to its count of objects still there;
    ``finalizers`` maps a finalizer to the number of objects that carry it.
    """
    conds = [(DISCOVERY_FAILURE, "False", "ResourcesDiscovered",
              "All resources successfully discovered"),
             (PARSING_FAILURE, "False", "ParsedGroupVersions",
              "All legacy kube types successfully parsed")]
    if failures:
        conds.append((CONTENT_FAILURE, "True", "ContentDeletionFailed",
                      f"Failed to delete all resource types, {len(failures)} remaining: "
                      + ", ".join(failures)))
    else:
        conds.append((CONTENT_FAILURE, "False", "ContentDeleted",
                      "All content successfully deleted, may be waiting on finalization"))
    if remaining:
        conds.append((CONTENT_REMAINING, "True", "SomeResourcesRemain",
                      "Some resources are remaining: " + ", ".join(
                          f"{name} has {count} resource instances"
                          for name, count in sorted(remaining.items()))))
    else:
        conds.append((CONTENT_REMAINING, "False", "ContentRemoved",
                      "All content successfully removed"))
    if finalizers:
        conds.append((FINALIZERS_REMAINING, "True", "SomeFinalizersRemain",
                      "Some content in the namespace has finalizers remaining: " + ", ".join(
                          f"{name} in {count} resource instances"
                          for name, count in sorted(finalizers.items()))))
    else:
        conds.append((FINALIZERS_REMAINING, "False", "ContentHasNoFinalizers",
                      "All content-preserving finalizers finished"))
    return conds


def merge_conditions(old, new, now):
    """Apply ``new`` (tuples) to the ``old`` condition list, keeping transition times
    of conditions whose status did not change; conditions of other types are kept."""
    by_type = {c.get("type"): c for c in old or ()}
    merged = [c for c in old or () if c.get("type") not in CONDITION_TYPES]
    for kind, status, reason, message in new:
        previous = by_type.get(kind)
        since = previous.get("lastTransitionTime") if previous and \
            previous.get("status") == status else now
        merged.append({"type": kind, "status": status, "reason": reason, "message": message,
                       "lastTransitionTime": since})
    return merged


def resource_name(resource):
    """How Kubernetes names a resource in these messages: "pods.", "replicasets.apps"."""
    return f"{resource.plural}.{resource.group}"


class NamespaceController(Controller):
    """Delete the content of namespaces being deleted, then finalize them."""

    def __init__(self, rest, namespace_informer, queue=None, wall_clock=meta.utcnow,
                 resources=None):
        super().__init__("namespace", [namespace_informer], queue)
        self.rest = rest
        self.namespaces = namespace_informer.store
        self.wall_clock = wall_clock
        self.resources = resources if resources is not None else namespaced_resources()
        #: Custom resources (CRDs) hold namespaced objects too: found by discovery, as
        #: Kubernetes' namespace controller finds every resource (off with ``resources``).
        self.discover = (lambda: [r for r in gcdiscovery.discover(rest) if r.namespaced]) \
            if resources is None and rest is not None else list
        namespace_informer.add_handler(self._changed, lambda old, new: self._changed(new),
                                       _ignore)

    def _changed(self, namespace):
        if namespace["metadata"].get("deletionTimestamp"):
            self.enqueue(namespace)

    def sync(self, key):
        cached = self.namespaces.get(key)
        if cached is None or not cached["metadata"].get("deletionTimestamp"):
            return
        try:
            namespace = self.rest.get(kinds.NAMESPACES, None, key)
        except NotFound:
            return
        if FINALIZER not in ((namespace.get("spec") or {}).get("finalizers") or ()):
            return      # already finalized: the API server removes it
        custom = self._custom_resources()
        failures = self.delete_content(key, custom)
        remaining, finalizers, estimate = self.count_content(key, custom)
        namespace = self._write_conditions(namespace,
                                           deletion_conditions(failures, remaining, finalizers))
        if failures:
            raise RuntimeError(f"namespace {key}: deleting content failed: "
                               + "; ".join(failures))
        if remaining:
            # Kubernetes waits half the estimate (a pod's grace period), plus a second.
            log.info("namespace %s: waiting for %s", key, ", ".join(
                f"{n} ({c})" for n, c in sorted(remaining.items())))
            self.queue.add_after(key, estimate / 2 + 1)
            return
        self.finalize(namespace)

    def _custom_resources(self):
        """The namespaced resources of CRDs, one version each (none if discovery fails)."""
        try:
            found = self.discover()
        except Exception as exc:        # noqa: BLE001 - the built-in kinds still go
            log.warning("namespace controller: discovery failed: %r", exc)
            return []
        unique = {}
        for resource in found:
            unique.setdefault((resource.group, resource.plural), resource)
        return list(unique.values())

    def delete_content(self, namespace, custom=()):
        """Delete every collection in ``namespace``; return the failures as strings."""
        failures = []
        for resource in [*self.resources, *custom]:
            try:
                self.rest.request("DELETE", self.rest.path(resource, namespace))
            except NotFound:
                pass
            except ApiException as exc:
                failures.append(f"{resource_name(resource)}: {exc}")
        return failures

    def count_content(self, namespace, custom=()):
        """What is still in ``namespace``: (counts by resource, counts by finalizer,
        seconds until the last graceful deletion is due)."""
        remaining, finalizers, estimate = {}, {}, 0.0
        now = self.wall_clock()
        for resource in [*self.resources, *custom]:
            items, _ = self.rest.list_all(resource, namespace)
            if not items:
                continue
            remaining[resource_name(resource)] = len(items)
            for item in items:
                imeta = item.get("metadata") or {}
                for finalizer in imeta.get("finalizers") or ():
                    finalizers[finalizer] = finalizers.get(finalizer, 0) + 1
                due = meta.parse_time(imeta.get("deletionTimestamp"))
                if due is not None:
                    left = (due - now).total_seconds()
                    estimate = max(estimate, left)
        return remaining, finalizers, estimate

    def _write_conditions(self, namespace, conditions):
        """Write the conditions if they changed; return the namespace as now stored."""
        status = dict(namespace.get("status") or {})
        now = self.wall_clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        merged = merge_conditions(status.get("conditions"), conditions, now)
        if merged == status.get("conditions") and status.get("phase") == "Terminating":
            return namespace
        status.update(phase="Terminating", conditions=merged)
        return self.rest.update_status(kinds.NAMESPACES, None, {**namespace, "status": status}) or \
            namespace

    def finalize(self, namespace):
        """Remove "kubernetes" from spec.finalizers through the finalize subresource."""
        spec = dict(namespace.get("spec") or {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or () if f != FINALIZER]
        log.info("namespace %s is empty; finalizing it", namespace["metadata"]["name"])
        try:
            self.rest.update(kinds.NAMESPACES, None, {**namespace, "spec": spec},
                             subresource="finalize")
        except NotFound:
            pass


def _ignore(*args):
    """An informer event this controller has no use for."""
