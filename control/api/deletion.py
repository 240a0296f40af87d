"""DeleteOptions and kube-apiserver's deletion rules: grace periods and finalizers.

A delete either removes the object at once or stores it marked for deletion
(``metadata.deletionTimestamp``) because something must happen first: a pod
bound to a node is stopped by its node agent within its grace period, and an
object with finalizers waits until every finalizer is removed. The propagation
policy adds the garbage collector's finalizers: ``foregroundDeletion``
(dependents first) or ``orphan`` (dependents kept); Background deletes now.
What depends on the kind (a pod's grace period, a namespace's cleanup) is asked
of its strategy (control/api/strategies/).
"""

import datetime
from dataclasses import dataclass, field

from control import errors
from control.objects import meta

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
POLICIES = ("Foreground", "Background", "Orphan")

#: What ``plan`` decided: remove the object, store the marked object, or nothing to do.
DELETE, UPDATE, PENDING = "delete", "update", "pending"


@dataclass
class DeleteOptions:
    """The parts of a v1 DeleteOptions the server acts on."""

    grace_period: int = None
    propagation: str = None
    preconditions: dict = field(default_factory=dict)
    dry_run: bool = False


def parse(body=None, query=None):
    """Read DeleteOptions from a request body or, without one, the query parameters."""
    source = body if body else {k: v for k, v in (query or {}).items() if v not in (None, "")}
    from_query = not body
    if not from_query:
        _check_body_types(body)
    grace = source.get("gracePeriodSeconds")
    if grace is not None:
        try:
            grace = int(grace)
        except (TypeError, ValueError):
            raise errors.BadRequest(f"gracePeriodSeconds={grace!r} must be an integer") from None
        if not -MAX_INT64 - 1 <= grace <= MAX_INT64:
            raise errors.BadRequest(f"gracePeriodSeconds={grace} is out of range: at most "
                                    f"{MAX_INT64}")
        grace = max(grace, 1) if grace < 0 else grace   # as kube-apiserver: negative means 1s
    policy = source.get("propagationPolicy")
    orphan = source.get("orphanDependents")
    if from_query and orphan is not None:
        orphan = str(orphan).lower() == "true"
    problems = []
    if policy is not None and policy not in POLICIES:
        problems.append(("propagationPolicy", "FieldValueNotSupported",
                         f'Unsupported value: "{policy}": supported values: "Foreground", '
                         '"Background", "Orphan"'))
    if policy is not None and orphan is not None:
        problems.append(("propagationPolicy", "FieldValueInvalid",
                         f'Invalid value: "{policy}": orphanDependents and deletionPropagation '
                         "cannot be both set"))
    if problems:
        raise errors.Invalid("DeleteOptions", "", problems, group="meta.k8s.io")
    if policy is None and orphan is not None:
        policy = "Orphan" if orphan else "Background"
    dry_run = source.get("dryRun") or []
    if isinstance(dry_run, str):
        dry_run = [dry_run]
    return DeleteOptions(grace, policy, dict(source.get("preconditions") or {}),
                         "All" in dry_run)


#: DeleteOptions fields in a body and the JSON types Kubernetes decodes them into.
_BODY_TYPES = {"gracePeriodSeconds": "integer", "propagationPolicy": "string",
               "orphanDependents": "boolean", "dryRun": "array of strings",
               "preconditions": "object of strings"}
MAX_INT64 = 2**63 - 1


def _check_body_types(body):
    """Refuse (400) a DeleteOptions body whose fields have the wrong JSON type.

    kube-apiserver decodes the body into its typed DeleteOptions first, so a
    string grace period or a map of dry runs is a bad request, not a crash.
    """
    for name, wanted in _BODY_TYPES.items():
        value = body.get(name)
        if value is None:
            continue
        fits = {"integer": isinstance(value, int) and not isinstance(value, bool)
                and -MAX_INT64 - 1 <= value <= MAX_INT64,
                "string": isinstance(value, str),
                "boolean": isinstance(value, bool),
                "array of strings": isinstance(value, list)
                and all(isinstance(item, str) for item in value),
                "object of strings": isinstance(value, dict)
                and all(isinstance(v, str) for v in value.values() if v is not None)}[wanted]
        if not fits and wanted == "integer" and type(value) is int:
            raise errors.BadRequest(f"DeleteOptions.{name}={value} is out of range: at most "
                                    f"{MAX_INT64}")
        if not fits:
            raise errors.BadRequest(f"DeleteOptions.{name} must be {_article(wanted)} {wanted}, "
                                    f"not {type(value).__name__}: fix the request body")


def _article(noun):
    return "an" if noun[0] in "aeiou" else "a"


def check_preconditions(resource, obj, preconditions):
    """Refuse (409) a delete whose uid or resourceVersion precondition does not hold."""
    obj_meta = obj["metadata"]
    for key, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        wanted = preconditions.get(key)
        if wanted and str(wanted) != str(obj_meta.get(key)):
            raise errors.Conflict(f"Precondition failed: {label} in precondition: {wanted}, "
                                  f"{label} in object meta: {obj_meta.get(key)}",
                                  name=obj_meta.get("name"), kind=resource.plural)


def plan(strategy, obj, options, now):
    """Decide what a delete does to ``obj``; return (DELETE | UPDATE | PENDING, obj).

    ``strategy`` holds the rules of the object's kind (control/api/strategies/),
    which may refuse the delete (403).
    """
    strategy.check_delete(obj)
    obj_meta = obj["metadata"]
    grace, shortened = 0, False
    if obj_meta.get("deletionTimestamp"):
        current = obj_meta.get("deletionGracePeriodSeconds") or 0
        if current > 0:
            # A graceful deletion is under way: a request may only shorten it.
            if options.grace_period is None or options.grace_period >= current:
                return PENDING, obj
            started = meta.parse_time(obj_meta["deletionTimestamp"]) - \
                datetime.timedelta(seconds=min(current, MAX_TIMESTAMP_SECONDS))
            _mark(obj, started, options.grace_period)
            shortened = True
            if options.grace_period > 0:
                return UPDATE, obj
    else:
        grace = strategy.grace_period(obj, options.grace_period)
        if grace > 0:
            _mark(obj, now, grace)
            obj_meta["generation"] = obj_meta.get("generation", 0) + 1
    changed = _set_propagation_finalizers(obj_meta, options.propagation) or shortened
    if grace > 0:
        return UPDATE, obj
    if obj_meta.get("finalizers") or strategy.awaits_cleanup(obj):
        if not obj_meta.get("deletionTimestamp"):
            _mark(obj, now, 0)
            obj_meta["generation"] = obj_meta.get("generation", 0) + 1
            strategy.prepare_for_delete(obj)
            return UPDATE, obj
        return (UPDATE if changed else PENDING), obj
    return DELETE, obj


def should_delete_during_update(strategy, old, new):
    """An update that removes the last finalizer of a deleted object deletes it."""
    old_meta = old["metadata"]
    if new["metadata"].get("finalizers") or not old_meta.get("deletionTimestamp"):
        return False
    if strategy.awaits_cleanup(new):
        return False
    # A pod still inside its grace period is removed by its node agent instead.
    return not old_meta.get("deletionGracePeriodSeconds")


def _set_propagation_finalizers(obj_meta, policy):
    """Add or drop the garbage collector's finalizers; return whether they changed."""
    existing = list(obj_meta.get("finalizers") or [])
    orphan = policy == "Orphan" or (policy is None and ORPHAN in existing)
    foreground = policy == "Foreground" or (policy is None and FOREGROUND in existing)
    wanted = [f for f in existing if f not in (ORPHAN, FOREGROUND)]
    wanted += [ORPHAN] * orphan + [FOREGROUND] * foreground
    if sorted(wanted) == sorted(existing):
        return False
    if wanted:
        obj_meta["finalizers"] = wanted
    else:
        obj_meta.pop("finalizers", None)
    return True


#: Seconds after which a deletion timestamp is the same far future (a datetime's range).
MAX_TIMESTAMP_SECONDS = 100 * 365 * 86400


def _mark(obj, start, grace):
    obj["metadata"]["deletionTimestamp"] = meta.timestamp(
        start + datetime.timedelta(seconds=min(grace, MAX_TIMESTAMP_SECONDS)))
    obj["metadata"]["deletionGracePeriodSeconds"] = grace

