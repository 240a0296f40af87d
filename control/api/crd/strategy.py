"""The write rules of CustomResourceDefinitions and of the custom objects they define.

A CRD is validated (validation.py), gets the ``customresourcecleanup`` finalizer
(so that deleting it first deletes its objects: sync.py) and its status at once:
accepted names and the NamesAccepted and Established conditions (kube-apiserver's
naming controller, done in the write itself). A custom object is defaulted from
its schema, validated against it with Kubernetes' messages, and refused while its
CRD is terminating.
"""

from control import errors
from control.api import metrics_api
from control.api.crd import model, validation
from control.api.strategies.base import Strategy
from control.objects import kinds, meta, structural, validation_kinds


def _condition(kind, status, reason, message, now):
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": now}


def name_conflict(crd, table=kinds.TABLE):
    """Say which of a CRD's names another CRD of its group uses already, or None."""
    if table.refresh is not None:
        table.refresh()     # the CRDs other processes wrote, not only those watched so far
    spec = crd["spec"]
    names = spec["names"]
    mine = {names["kind"], names.get("listKind") or names["kind"] + "List"}
    for owner in table.custom_owners():
        if owner == crd["metadata"]["name"]:
            continue
        for resource in table.custom_of(owner):
            if resource.group != spec["group"]:
                continue
            if resource.kind in mine or resource.list_kind in mine:
                return "KindConflict", f'"{names["kind"]}" is already in use'
            if set(resource.short_names) & set(names.get("shortNames") or ()):
                return "ShortNamesConflict", \
                    f"{sorted(set(resource.short_names) & set(names['shortNames']))} " \
                    "are already in use"
    return None


def with_status(crd, old_status, now):
    """Return the CRD's status: accepted names, conditions and stored versions."""
    names = crd["spec"]["names"]
    status = dict(old_status or {})
    previous = {c.get("type"): c for c in status.get("conditions") or ()}
    conflict = name_conflict(crd)
    if conflict is None:
        status["acceptedNames"] = {
            "plural": names["plural"], "singular": names.get("singular") or names["kind"].lower(),
            "kind": names["kind"], "listKind": names.get("listKind") or names["kind"] + "List",
            **({"shortNames": list(names["shortNames"])} if names.get("shortNames") else {}),
            **({"categories": list(names["categories"])} if names.get("categories") else {})}
        accepted = _condition("NamesAccepted", "True", "NoConflicts", "no conflicts found", now)
        established = _condition("Established", "True", "InitialNamesAccepted",
                                  "the initial names have been accepted", now)
    else:
        status.setdefault("acceptedNames", {"plural": "", "kind": ""})
        accepted = _condition("NamesAccepted", "False", conflict[0], conflict[1], now)
        established = previous.get("Established") or _condition(
            "Established", "False", "NotAccepted", "not all names are accepted", now)
    conditions = []
    for fresh in (accepted, established):
        old = previous.pop(fresh["type"], None)
        if old and old.get("status") == fresh["status"]:
            fresh = {**fresh, "lastTransitionTime": old.get("lastTransitionTime", now)}
        conditions.append(fresh)
    conditions.extend(previous.values())
    status["conditions"] = conditions
    stored = list(status.get("storedVersions") or [])
    current = model.storage_version(crd)
    if current and current not in stored:
        stored.append(current)
    status["storedVersions"] = stored
    return status


def _served_by_the_server(group):
    """Whether the API server serves ``group`` itself (a CRD may not take it over)."""
    return kinds.TABLE.is_builtin_group(group) or group == metrics_api.GROUP


class CRDStrategy(Strategy):
    """CustomResourceDefinitions: validated, finalized, established at once."""

    def __init__(self, resource, clock=meta.utcnow):
        super().__init__(resource)
        self.clock = clock

    def _now(self):
        return meta.timestamp(self.clock())

    def prepare_for_create(self, obj):
        finalizers = obj["metadata"].setdefault("finalizers", [])
        if model.CLEANUP_FINALIZER not in finalizers:
            finalizers.append(model.CLEANUP_FINALIZER)
        self._validate(obj)
        obj["status"] = with_status(obj, {}, self._now())
        return obj

    def prepare_for_update(self, old, new):
        new = super().prepare_for_update(old, new)
        problems = validation.immutable_errors(old, new)
        if problems:
            raise errors.Invalid(self.resource.kind, old["metadata"]["name"], problems,
                                 group=self.resource.group)
        self._validate(new)
        new["status"] = with_status(new, new.get("status"), self._now())
        return new

    def _validate(self, obj):
        problems = validation.validate(obj, _served_by_the_server)
        if problems:
            raise errors.Invalid(self.resource.kind, obj["metadata"].get("name", ""), problems,
                                 group=self.resource.group)

    def validate(self, obj):
        super().validate(obj)
        self._validate(obj)

    def warnings(self, obj):
        found = []
        for index, version in enumerate(obj["spec"].get("versions") or ()):
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            _find_cel_rules(schema, f"spec.versions[{index}].schema.openAPIV3Schema", found)
        return super().warnings(obj) + [
            f"{path}.x-kubernetes-validations: CEL validation rules are not enforced by "
            "Steersman; validate in the operator or an admission webhook instead"
            for path in found[:MAX_CEL_WARNINGS]]


#: Warnings about unenforced CEL rules sent with one CRD write.
MAX_CEL_WARNINGS = 5


def _find_cel_rules(node, path, found):
    """Collect the paths of schema nodes holding x-kubernetes-validations (CEL)."""
    if not isinstance(node, dict) or len(found) > MAX_CEL_WARNINGS:
        return
    if node.get("x-kubernetes-validations"):
        found.append(path)
    for name, sub in (node.get("properties") or {}).items():
        _find_cel_rules(sub, f"{path}.properties[{name}]", found)
    for key in ("items", "additionalProperties"):
        _find_cel_rules(node.get(key), f"{path}.{key}", found)


class CustomObjectStrategy(Strategy):
    """Objects of a CRD: schema defaults, schema validation, no creates while it goes."""

    def _qualified_kind(self):
        return f"{self.resource.kind}.{self.resource.group}"

    def prepare_for_create(self, obj):
        info = self.resource.custom
        if info.terminating:
            raise errors.MethodNotAllowed(
                f"create not allowed while custom resource definition {info.crd_name} is "
                "terminating", kind=self.resource.plural, group=self.resource.group)
        if "status" in self.resource.subresources:
            obj.pop("status", None)
        return structural.apply_defaults(obj, info.schema)

    def prepare_for_update(self, old, new):
        new = super().prepare_for_update(old, new)
        return structural.apply_defaults(new, self.resource.custom.schema)

    def validate_update(self, obj, old):
        self.validate(obj)
        problems = validation_kinds.update_errors_for(self._qualified_kind(), obj, old)
        if problems:
            raise errors.Invalid(self._qualified_kind(), obj["metadata"].get("name", ""),
                                 problems, group=self.resource.group)

    def warnings(self, obj):
        return []       # Steersman acts on no field of a custom object: its operator does

    def validate(self, obj):
        name = obj["metadata"].get("name", "")
        problems = meta.name_errors(self._qualified_kind(), name)
        # ObjectMeta (labels, annotations, ...), never a built-in kind's own rules.
        problems += validation_kinds.errors_for(self._qualified_kind(), obj,
                                                self.resource.namespaced, with_pod_spec=False)
        problems += structural.validate(obj, self.resource.custom.schema)
        if problems:
            raise errors.Invalid(self._qualified_kind(), name, problems,
                                 group=self.resource.group)
