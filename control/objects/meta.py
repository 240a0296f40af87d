"""Object metadata rules shared by every kind: names, uids, timestamps, generation.

Pure functions: the clock and the id source are passed in, so tests can fix them.
"""

import copy
import datetime
import json

from control.objects import validation

#: Kinds whose names must be DNS labels (they become host names or env names).
LABEL_NAMED_KINDS = {"Namespace"}
#: Kinds whose ``spec`` changes bump ``metadata.generation``.
_GENERATION_FIELD = "spec"
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"   # as Kubernetes: no vowels, no look-alikes


def human_duration(elapsed):
    """Render seconds (or a timedelta) as apimachinery's HumanDuration: "5s", "3m20s", "2d4h"."""
    seconds = int(elapsed.total_seconds() if hasattr(elapsed, "total_seconds") else elapsed)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def utcnow():
    """Return the current time, timezone-aware in UTC (the one clock callers inject)."""
    return datetime.datetime.now(datetime.timezone.utc)


def timestamp(now):
    """Format a UTC datetime as Kubernetes does (RFC 3339, seconds, Z)."""
    return now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") \
        if now.tzinfo else now.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_timestamp(now):
    """Format a UTC datetime as a MicroTime (RFC 3339 with microseconds, Z), as Leases use."""
    return now.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") \
        if now.tzinfo else now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text):
    """Parse an RFC 3339 timestamp (Z or offset, optional fraction); None if unset or malformed.

    A timestamp without a zone is taken as UTC, as apimachinery reads one.
    """
    if not text:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def name_errors(kind, name):
    """Return (field, reason, message) errors for an object name."""
    if not name:
        return [("metadata.name", "FieldValueRequired",
                 "Required value: name or generateName is required")]
    check = (validation.validate_dns1035_label if kind == "Service"
             else validation.validate_dns1123_label if kind in LABEL_NAMED_KINDS
             else validation.validate_dns1123_subdomain)
    # Go's %q: double quotes, as kube-apiserver prints the value.
    return [("metadata.name", "FieldValueInvalid", f"Invalid value: {json.dumps(name)}: {message}")
            for message in check(name)]


def generate_name(prefix, random_source):
    """Append Kubernetes' five random characters to a generateName prefix."""
    return prefix[:58] + "".join(random_source.choice(_SUFFIX_ALPHABET) for _ in range(5))


def prepare_create(obj, resource, namespace, now, new_uid, random_source):
    """Return a copy of ``obj`` with server-set metadata filled in for a create."""
    obj = copy.deepcopy(obj)
    obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
    meta = obj.setdefault("metadata", {})
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = generate_name(meta["generateName"], random_source)
    if resource.namespaced:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    meta["uid"] = new_uid()
    meta["creationTimestamp"] = timestamp(now)
    meta["generation"] = 1
    for server_field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                         "selfLink"):
        meta.pop(server_field, None)
    return obj


def prepare_update(old, new, keep_status):
    """Return ``new`` with the fields a client may not change copied from ``old``.

    ``keep_status``: the kind has a status subresource, so a main-resource update
    keeps the stored status (and a status update keeps the stored spec: pass the
    merged object the other way round).
    """
    new = copy.deepcopy(new)
    new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
    meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
    for fixed in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp",
                  "deletionGracePeriodSeconds"):
        if fixed in old_meta:
            meta[fixed] = old_meta[fixed]
        else:
            meta.pop(fixed, None)
    if keep_status:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    generation = old_meta.get("generation", 1)
    if new.get(_GENERATION_FIELD) != old.get(_GENERATION_FIELD):
        generation += 1
    meta["generation"] = generation
    return new

