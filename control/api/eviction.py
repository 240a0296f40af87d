"""POST pods/{name}/eviction: delete a pod only if its PodDisruptionBudget allows it.

As kube-apiserver's EvictionREST (1.32). A pod that is Pending, finished, or
already being deleted is deleted at once: evicting it disrupts nothing more. A
pod matched by no budget is deleted; by more than one, refused (500, as
Kubernetes: the eviction subresource supports one). With one budget, an unready
pod is deleted without spending the budget when the budget is healthy (or its
unhealthyPodEvictionPolicy is AlwaysAllow), under a resourceVersion precondition
so the pod cannot have become Ready meanwhile. Otherwise the budget must allow a
disruption: ``disruptionsAllowed`` is decremented and the pod recorded in
``disruptedPods`` by a status write that carries the budget's resourceVersion, so
two evictions racing for the last allowed disruption cannot both win (the loser
re-reads the budget and gets 429 TooManyRequests). Then the pod is marked with
the DisruptionTarget condition and deleted with the Eviction's deleteOptions.
dryRun (in the query or the deleteOptions) checks everything and writes nothing.
"""

import copy
import random
import time

from control import errors
from control.api import deletion, writeoptions
from control.objects import conditions, kinds, meta
from control.objects.selectors import LabelSelector, SelectorError

PDBS = kinds.lookup("policy", "v1", "poddisruptionbudgets")
#: Kubernetes' EvictionsRetry: how often a conflicting write is tried again.
RETRIES = 20
RETRY_DELAY = 0.1
#: Kubernetes' MaxDisruptedPodSize: evictions not yet seen by the disruption controller.
MAX_DISRUPTED_PODS = 2000
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_BUDGETS = ("This pod has more than one PodDisruptionBudget, which the eviction "
                    "subresource does not support.")
API_VERSIONS = ("policy/v1", "policy/v1beta1")


def _too_many(pdb_name, message=None, retry_after=10):
    cause = message or f"The disruption budget {pdb_name} is still being processed by the server."
    return errors.TooManyRequests(VIOLATION, causes=[{"reason": "DisruptionBudget",
                                                      "message": cause}],
                                  retry_after=retry_after)


def _forbidden(pdb_name, why):
    return errors.Forbidden(f'poddisruptionbudget.policy "{pdb_name}" is forbidden: {why}',
                            name=pdb_name, kind="poddisruptionbudget", group="policy")


def read_eviction(name, namespace, body, query_dry_run):
    """Check an Eviction body; return its DeleteOptions with dryRun merged in."""
    api_version, kind = body.get("apiVersion"), body.get("kind")
    typed = kind is not None or api_version is not None
    if typed and (kind != "Eviction" or api_version not in API_VERSIONS):
        raise errors.BadRequest(f"the body must be a policy/v1 Eviction, not "
                                f"{str(api_version)[:60]}/{str(kind)[:60]}")
    body_meta = body.get("metadata")
    if not isinstance(body_meta, dict):
        raise errors.BadRequest("the Eviction needs metadata.name: the name of the pod")
    if body_meta.get("name") != name:
        raise errors.BadRequest("name in URL does not match name in Eviction object")
    if body_meta.get("namespace") not in (None, "", namespace):
        raise errors.BadRequest("the namespace of the provided object does not match the "
                                "namespace sent on the request")
    raw = body.get("deleteOptions")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise errors.BadRequest("deleteOptions must be an object (a v1 DeleteOptions)")
    problems = writeoptions.dry_run_problems(query_dry_run)
    if problems:
        raise errors.Invalid("CreateOptions", "", problems, group="meta.k8s.io")
    body_dry_run = raw.get("dryRun") or []
    if not isinstance(body_dry_run, list) or not all(isinstance(v, str) for v in body_dry_run):
        raise errors.BadRequest("DeleteOptions.dryRun must be an array of strings: fix the "
                                "request body")
    if query_dry_run and body_dry_run and list(query_dry_run) != list(body_dry_run):
        raise errors.BadRequest(f"Non-matching dry-run options in request and content: "
                                f"{list(query_dry_run)} and {body_dry_run}")
    if writeoptions.dry_run_problems(body_dry_run):
        raise errors.Invalid("DeleteOptions", "", writeoptions.dry_run_problems(body_dry_run),
                             group="meta.k8s.io")
    merged = {**raw, "dryRun": body_dry_run or list(query_dry_run)}
    if not merged["dryRun"]:
        del merged["dryRun"]
    preconditions = merged.get("preconditions")
    if preconditions is not None and not isinstance(preconditions, dict):
        raise errors.BadRequest("DeleteOptions.preconditions must be an object")
    return deletion.parse(merged) if merged else deletion.DeleteOptions()


def _can_ignore_budget(pod):
    """Pending, finished or terminating pods are deleted without a budget check.

    A pod without a phase has not been reported by any node: Pending, as Kubernetes
    sets it on create.
    """
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    return phase in ("Succeeded", "Failed", "Pending") or bool(
        pod["metadata"].get("deletionTimestamp"))


def _enforce_resource_version(pod):
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def _with_resource_version(options, resource_version):
    options = copy.deepcopy(options)
    options.preconditions = {**options.preconditions, "resourceVersion": resource_version}
    return options


def budgets_for(service, pod):
    """The PDBs of the pod's namespace whose selector matches it (nil matches nothing)."""
    items, _, _ = service.list(PDBS, pod["metadata"]["namespace"])
    found = []
    for pdb in items:
        try:
            selector = LabelSelector.from_object((pdb.get("spec") or {}).get("selector"))
        except SelectorError:
            continue        # an invalid selector matches no pod
        if selector.matches(pod["metadata"].get("labels")):
            found.append(pdb)
    return found


class Evictions:
    """Evict pods through the object service; ``clock`` stamps disruptedPods."""

    def __init__(self, service, clock=meta.utcnow, sleep=time.sleep, retries=RETRIES):
        self.service, self.clock, self.sleep, self.retries = service, clock, sleep, retries

    def evict(self, namespace, name, body, query_dry_run=()):
        """Evict pod ``name``; return the Success Status (or raise the refusal)."""
        options = read_eviction(name, namespace, body, query_dry_run)
        user_rv = bool(options.preconditions.get("resourceVersion"))
        for attempt in range(self.retries):
            pod = self.service.get(kinds.PODS, namespace, name)
            if not _can_ignore_budget(pod):
                break
            delete_options = options
            if _enforce_resource_version(pod) and not user_rv:
                delete_options = _with_resource_version(options, pod["metadata"]["resourceVersion"])
            try:
                self._delete(namespace, name, delete_options)
                return _success()
            except errors.Conflict:
                if user_rv or attempt == self.retries - 1:
                    raise
                self._pause()
        budgets = budgets_for(self.service, pod)
        if len(budgets) > 1:
            raise errors.ApiError(MULTIPLE_BUDGETS)
        guarded_rv = None
        if budgets:
            pdb = budgets[0]
            if self._unready_is_free(pod, pdb):
                guarded_rv = pod["metadata"]["resourceVersion"]
            else:
                self._spend(pod, pdb, options.dry_run)
        delete_options = options
        if guarded_rv is not None:
            delete_options = _with_resource_version(options, guarded_rv)
        try:
            self._delete(namespace, name, delete_options)
        except errors.Conflict:
            if guarded_rv is not None and not user_rv:
                raise _too_many(budgets[0]["metadata"]["name"]) from None
            raise
        return _success()

    @staticmethod
    def _unready_is_free(pod, pdb):
        """An unready pod costs nothing: AlwaysAllow, or the budget is healthy without it."""
        if conditions.is_ready(pod):
            return False
        if (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
            return True
        status = pdb.get("status") or {}
        desired = status.get("desiredHealthy") or 0
        return desired > 0 and (status.get("currentHealthy") or 0) >= desired

    def _spend(self, pod, pdb, dry_run):
        """Take one allowed disruption from ``pdb`` for ``pod`` (checkAndDecrement), or refuse."""
        pdb_name = pdb["metadata"]["name"]
        for attempt in range(self.retries):
            if attempt:
                self._pause()
                pdb = self.service.get(PDBS, pdb["metadata"]["namespace"], pdb_name)
            status = copy.deepcopy(pdb.get("status") or {})
            if (status.get("observedGeneration") or 0) < pdb["metadata"].get("generation", 1):
                raise _too_many(pdb_name)
            allowed = status.get("disruptionsAllowed") or 0
            if allowed < 0:
                raise _forbidden(pdb_name, "pdb disruptions allowed is negative")
            if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
                raise _forbidden(pdb_name, "DisruptedPods map too big - too many evictions not "
                                           "confirmed by PDB controller")
            if allowed == 0:
                raise _too_many(pdb_name, f"The disruption budget {pdb_name} needs "
                                          f"{status.get('desiredHealthy') or 0} healthy pods and "
                                          f"has {status.get('currentHealthy') or 0} currently",
                                retry_after=None)
            if dry_run:
                return
            status["disruptionsAllowed"] = allowed - 1
            if allowed - 1 == 0:
                _insufficient(status, self.clock())
            status.setdefault("disruptedPods", {})[pod["metadata"]["name"]] = \
                meta.timestamp(self.clock())
            try:
                # The resourceVersion read above is the precondition: a budget spent
                # meanwhile by another eviction is a Conflict, and the loop re-reads it.
                self.service.update(PDBS, pdb["metadata"]["namespace"], pdb_name,
                                    {**pdb, "status": status}, subresource="status")
                return
            except errors.Conflict:
                continue
        raise errors.Timeout(f'couldn\'t update PodDisruptionBudget "{pdb_name}" due to '
                             "conflicts", retry_after=10)

    def _delete(self, namespace, name, options):
        """Mark the pod DisruptionTarget (EvictionByEvictionAPI), then delete it."""
        if not options.dry_run:
            options = self._mark_disruption_target(namespace, name, options)
        self.service.remove(kinds.PODS, namespace, name, options)

    def _mark_disruption_target(self, namespace, name, options):
        pod = self.service.registry.get(kinds.PODS, namespace, name)
        deletion.check_preconditions(kinds.PODS, pod, options.preconditions)
        if pod["metadata"].get("deletionTimestamp"):
            return options
        status = pod.setdefault("status", {})
        others = [c for c in status.get("conditions") or () if c.get("type") != "DisruptionTarget"]
        status["conditions"] = [*others, {
            "type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting", "lastProbeTime": None,
            "lastTransitionTime": meta.timestamp(self.clock())}]
        updated = self.service.registry.update(kinds.PODS, pod)
        if options.preconditions.get("resourceVersion"):
            options = _with_resource_version(options, updated["metadata"]["resourceVersion"])
        return options

    def _pause(self):
        self.sleep(RETRY_DELAY * (0.9 + 0.2 * random.random()))


def _insufficient(status, now):
    """The condition the eviction sets when it spends the last allowed disruption."""
    old = next((c for c in status.get("conditions") or ()
                if c.get("type") == "DisruptionAllowed"), {})
    since = old.get("lastTransitionTime") if old.get("status") == "False" else None
    others = [c for c in status.get("conditions") or () if c.get("type") != "DisruptionAllowed"]
    status["conditions"] = [*others, {"type": "DisruptionAllowed", "status": "False",
                                      "reason": "InsufficientPods", "message": "",
                                      "lastTransitionTime": since or meta.timestamp(now)}]


def _success():
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "code": 201}
