"""metadata.managedFields: which manager set which fields, and server-side apply.

Each entry is a manager's field set for one operation: ``Update`` (create, PUT,
non-apply PATCH: the manager takes the fields its write changed, and every
other manager loses them) or ``Apply`` (the set is exactly the applied
configuration's; a field another manager owns with a different value is a
conflict unless forced; a field the manager applied before, no longer applies
and nobody else owns is removed). Entries are keyed as Kubernetes keys them:
manager, operation, subresource, and apiVersion for Update entries only.
"""

import dataclasses

from control.objects import applymerge, fieldpath

APPLY, UPDATE = "Apply", "Update"
#: Update entries kept before the oldest are merged (Kubernetes' DefaultMaxUpdateManagers).
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
#: Who owns an object's fields when it is first applied to and has no managedFields.
BEFORE_FIRST_APPLY = "before-first-apply"


class ManagedFieldsError(ValueError):
    """managedFields sent by a client cannot be read; the message says why."""


class ApplyConflict(Exception):
    """Fields the applied configuration changes are owned by other managers."""

    def __init__(self, conflicts):
        self.conflicts = conflicts      # [(entry, path)], sorted by manager then path
        super().__init__(self.message())

    def causes(self):
        return [{"reason": "FieldManagerConflict", "message": f"conflict with {entry.printed()}",
                 "field": fieldpath.path_string(path)} for entry, path in self.conflicts]

    def message(self):
        if len(self.conflicts) == 1:
            entry, path = self.conflicts[0]
            return (f"Apply failed with 1 conflict: conflict with {entry.printed()}: "
                    f"{fieldpath.path_string(path)}")
        lines, previous = [], None
        for entry, path in self.conflicts:
            if entry.printed() != previous:
                previous = entry.printed()
                lines.append(f"conflicts with {previous}:")
            lines.append(f"- {fieldpath.path_string(path)}")
        return f"Apply failed with {len(self.conflicts)} conflicts: " + "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Entry:
    manager: str
    operation: str
    api_version: str
    paths: frozenset
    time: str = None
    subresource: str = ""

    def key(self):
        version = "" if self.operation == APPLY else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def printed(self):
        """The manager as a conflict message names it."""
        text = f'"{self.manager}"'
        if self.subresource:
            text += f' with subresource "{self.subresource}"'
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text

    def to_dict(self):
        entry = {"manager": self.manager, "operation": self.operation,
                 "apiVersion": self.api_version}
        if self.time:
            entry["time"] = self.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = fieldpath.to_fields_v1(self.paths)
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


@dataclasses.dataclass(frozen=True)
class Scope:
    """What a write's field sets depend on: the kind's schema type and the endpoint."""

    type_name: str
    api_version: str
    has_status: bool = False
    subresource: str = ""
    now: str = None

    def members(self, obj, strict=False):
        return fieldpath.members(fieldpath.tracked(obj, self.has_status, self.subresource),
                                 self.type_name, strict)


def read(entries):
    """Parse managedFields as stored or sent; ManagedFieldsError if malformed."""
    if not isinstance(entries, list):
        raise ManagedFieldsError("metadata.managedFields must be a list")
    parsed = []
    for number, raw in enumerate(entries):
        if not isinstance(raw, dict):
            raise ManagedFieldsError(f"metadata.managedFields[{number}] must be an object")
        operation = raw.get("operation")
        if operation not in (APPLY, UPDATE):
            raise ManagedFieldsError(f"metadata.managedFields[{number}].operation must be "
                                     f"Apply or Update, not {operation!r}")
        if raw.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise ManagedFieldsError(f"metadata.managedFields[{number}].fieldsType must be "
                                     "FieldsV1")
        try:
            paths = fieldpath.from_fields_v1(raw.get("fieldsV1") or {})
        except fieldpath.FieldPathError as exc:
            raise ManagedFieldsError(f"metadata.managedFields[{number}]: {exc}") from None
        parsed.append(Entry(str(raw.get("manager", "")), operation,
                            str(raw.get("apiVersion", "")), paths, raw.get("time"),
                            str(raw.get("subresource", "") or "")))
    return parsed


def render(entries):
    """Return entries as managedFields: Apply first, then by time, Update entries capped."""
    entries = _cap_updates([e for e in entries if e.paths])
    ordered = sorted(entries, key=lambda e: (e.operation != APPLY, e.time or "", e.manager))
    return [entry.to_dict() for entry in ordered]


def _cap_updates(entries):
    updates = sorted((e for e in entries if e.operation == UPDATE), key=lambda e: e.time or "")
    if len(updates) <= MAX_UPDATE_MANAGERS:
        return entries
    oldest = updates[:len(updates) - MAX_UPDATE_MANAGERS + 1]
    merged = frozenset().union(*(e.paths for e in oldest))
    ancient = Entry(ANCIENT_CHANGES, UPDATE, oldest[-1].api_version, merged, oldest[-1].time)
    drop = {id(e) for e in oldest}
    return [e for e in entries if id(e) not in drop] + [ancient]


def _changes(before, after):
    """Return (paths added or changed, paths removed) between two members maps."""
    changed = {path for path, value in after.items()
               if path not in before or not _same(before[path], value)}
    return changed, set(before) - set(after)


def _same(a, b):
    if type(a) is not type(b):
        return False
    return a == b


def record_update(entries, old, new, manager, scope):
    """Return the entries after ``manager`` wrote ``new`` over ``old`` (None: a create)."""
    changed, removed = _changes(scope.members(old) if old else {}, scope.members(new))
    key = (manager, UPDATE, scope.api_version, scope.subresource)
    result, mine = [], None
    for entry in entries:
        if entry.key() == key:
            mine = entry
        else:
            result.append(dataclasses.replace(entry, paths=entry.paths - changed - removed))
    previous = mine.paths if mine else frozenset()
    paths = frozenset((previous | changed) - removed)
    time = mine.time if mine is not None and mine.paths == paths else scope.now
    result.append(Entry(manager, UPDATE, scope.api_version, paths, time, scope.subresource))
    return result


def apply(live, config, entries, manager, force, scope):
    """Merge an applied configuration into ``live``; return (object, entries).

    ``live`` None creates. Raises ApplyConflict (unless ``force``) and
    fieldpath.FieldPathError for a configuration that is not a valid field set.
    """
    applied = frozenset(scope.members(config, strict=True))
    if live is None:
        return config, [Entry(manager, APPLY, scope.api_version, applied, scope.now,
                              scope.subresource)]
    live_members = scope.members(live)
    if not entries and live_members:
        entries = [Entry(BEFORE_FIRST_APPLY, UPDATE, scope.api_version,
                         frozenset(live_members), scope.now)]
    key = (manager, APPLY, "", scope.subresource)
    mine = next((e for e in entries if e.key() == key), None)
    others = [e for e in entries if e.key() != key]
    merged = applymerge.merge(live, config, scope.type_name)
    if mine is not None:
        _prune(merged, mine.paths - applied, applied.union(*(e.paths for e in others)), scope)
    changed, removed = _changes(live_members, scope.members(merged))
    conflicts = sorted(((e, p) for e in others for p in e.paths & changed),
                       key=lambda c: (c[0].printed(), fieldpath.path_string(c[1])))
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    result = [dataclasses.replace(e, paths=e.paths - changed - removed) if force
              else dataclasses.replace(e, paths=e.paths - removed) for e in others]
    time = mine.time if mine is not None and mine.paths == applied else scope.now
    result.append(Entry(manager, APPLY, scope.api_version, applied, time, scope.subresource))
    return merged, result


def _prune(obj, candidates, kept, scope):
    """Remove the fields in ``candidates`` that nobody keeps (nor anything under them)."""
    kept_prefixes = {path[:n] for path in kept for n in range(1, len(path) + 1)}
    for path in sorted(candidates, key=len):
        if path not in kept_prefixes:
            applymerge.remove(obj, path, scope.type_name)
