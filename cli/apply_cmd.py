"""`steer apply -f` and `steer create -f`: client-side apply, as kubectl does it.

Apply keeps what the user last applied in the annotation
``kubectl.kubernetes.io/last-applied-configuration``. On the next apply the patch
is a three-way merge (``three_way_patch``): values of the new manifest that differ
from the live object are set, fields that were in the last-applied manifest but are
gone from the new one are removed (null), and everything else on the live object
(status, defaults, other writers' fields) is left alone. Lists whose items have a
merge key (containers by name, ports by number...) are patched item by item, with
``$patch: delete`` for removed items, because a strategic merge patch merges such
lists instead of replacing them.
"""

import copy
import json
import sys

from cli import manifests
from cli.errors import CommandError, describe_api_error
from cli.kube import Session, add_connection_flags, display_name
from control.client import errors as api_errors
from control.objects import patch as patches
from control.objects import schema

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def register(groups):
    apply = groups.add_parser("apply", help="create or update objects from manifests")
    add_connection_flags(apply)
    _file_flags(apply)
    apply.set_defaults(func=cmd_apply)
    create = groups.add_parser("create", help="create objects from manifests")
    add_connection_flags(create)
    _file_flags(create)
    create.set_defaults(func=cmd_create)


def _file_flags(parser):
    parser.add_argument("-f", "--filename", action="append", required=True,
                        help="file, directory or - (stdin); may repeat")
    parser.add_argument("-R", "--recursive", action="store_true",
                        help="descend into directories given with -f")
    parser.add_argument("-o", "--output", choices=("name",), help="print only kind/name")


# -- patch computation (pure) -----------------------------------------------------------
def merge_key_of(type_name, field):
    """(merge key, item type) for a list field patched item by item, else (None, None)."""
    if not type_name or not schema.has_type(type_name):
        return None, None
    field_type = schema.field_type(type_name, field)
    if not field_type or not field_type.startswith("[]"):
        return None, None
    item_type = field_type[2:]
    key = patches.merge_key(item_type)
    return (key, item_type) if key else (None, None)


def child_type(type_name, field):
    """The schema type of a map-valued field, or None (maps of strings and unknowns)."""
    if not type_name or not schema.has_type(type_name):
        return None
    field_type = schema.field_type(type_name, field)
    if not field_type or field_type.startswith(("[]", "{}")):
        return None
    return field_type


def three_way_patch(original, modified, current, type_name=None):
    """A strategic merge patch taking ``current`` to ``modified``, deleting what
    ``original`` (the last applied manifest) had and ``modified`` dropped."""
    original = original if isinstance(original, dict) else {}
    current = current if isinstance(current, dict) else {}
    result = {}
    for key, new in modified.items():
        here = current.get(key)
        if key not in current:
            result[key] = copy.deepcopy(new)
        elif isinstance(new, dict) and isinstance(here, dict):
            sub = three_way_patch(original.get(key), new, here, child_type(type_name, key))
            if sub:
                result[key] = sub
        elif isinstance(new, list) and isinstance(here, list):
            merge_key, item_type = merge_key_of(type_name, key)
            if merge_key and all(isinstance(i, dict) and merge_key in i for i in new + here):
                items = _list_patch(original.get(key), new, here, merge_key, item_type)
                if items:
                    result[key] = items
            elif new != here:
                result[key] = copy.deepcopy(new)
        elif new != here:
            result[key] = copy.deepcopy(new)
    for key in original:
        if key not in modified and key in current:
            result[key] = None
    return result


def _list_patch(original, new, here, merge_key, item_type):
    by_key = {i[merge_key]: i for i in here}
    before = {i[merge_key]: i for i in original or [] if isinstance(i, dict) and merge_key in i}
    items = []
    for item in new:
        live = by_key.get(item[merge_key])
        if live is None:
            items.append(copy.deepcopy(item))
            continue
        sub = three_way_patch(before.get(item[merge_key]), item, live, item_type)
        if sub:
            items.append({merge_key: item[merge_key], **sub})
    wanted = {i[merge_key] for i in new}
    for key in before:
        if key not in wanted and key in by_key:
            items.append({merge_key: key, "$patch": "delete"})
    return items


def with_last_applied(obj, namespace=None):
    """A copy of ``obj`` carrying itself as last-applied, serialized as kubectl does it
    (namespace filled in, an empty annotations map kept, sorted compact JSON and a
    newline), so kubectl and steer can take turns applying the same object."""
    clean = copy.deepcopy(obj)
    meta = clean.setdefault("metadata", {})
    if namespace:
        meta["namespace"] = namespace
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(LAST_APPLIED, None)
    meta["annotations"] = annotations
    text = json.dumps(clean, separators=(",", ":"), sort_keys=True)
    result = copy.deepcopy(clean)
    result["metadata"]["annotations"][LAST_APPLIED] = text + "\n"
    return result


def last_applied_of(live):
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- commands ----------------------------------------------------------------------------
def resource_of(session, manifest):
    obj = manifest.obj
    resource = session.discovery.for_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
    if resource is None:
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        raise CommandError(
            f"resource mapping not found for name: \"{manifest.name}\" namespace: "
            f"\"{namespace}\" from \"{manifest.source}\": no matches for kind "
            f"\"{obj.get('kind')}\" in version \"{obj.get('apiVersion')}\"\n"
            "ensure CRDs are installed first")
    return resource


def _target_namespace(session, resource, obj, explicit):
    if not resource.namespaced:
        return None
    mine = (obj.get("metadata") or {}).get("namespace")
    if mine and explicit and explicit != mine:
        raise CommandError(f"the namespace from the provided object \"{mine}\" does not match "
                           f"the namespace \"{explicit}\". You must pass '--namespace={mine}' "
                           "to perform this operation.")
    return mine or session.namespace


def _run_each(args, act):
    """Apply ``act`` to every manifest; report failures after trying them all, as kubectl."""
    session = Session(args)
    items = manifests.read(args.filename, args.recursive)
    failed = False
    for manifest in items:
        try:
            resource = resource_of(session, manifest)
            namespace = _target_namespace(session, resource, manifest.obj,
                                          getattr(args, "namespace", None))
            verb = act(session, resource, namespace, manifest)
        except CommandError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
            continue
        except api_errors.ConnectionFailed:
            raise
        except api_errors.ApiException as exc:
            print(_manifest_error(exc, manifest), file=sys.stderr)
            failed = True
            continue
        name = display_name(resource, manifest.name or "")
        print(name if args.output == "name" else f"{name} {verb}", flush=True)
    return 1 if failed else 0


def _manifest_error(exc, manifest):
    """kubectl's wording: 'Error from server (Reason): error when creating "FILE": why'
    (a 422 reads 'The Kind "name" is invalid: ...' on its own)."""
    operation = getattr(exc, "steer_operation", None)
    if exc.status == 422 or exc.reason == "Invalid" or operation is None:
        return describe_api_error(exc)
    reason = exc.reason or "Unknown"
    return (f"Error from server ({reason}): error when {operation} \"{manifest.source}\": "
            f"{exc.message}")


def _during(operation, call, *args, **kwargs):
    """Run an API call; a failure remembers what was being done, for the message."""
    try:
        return call(*args, **kwargs)
    except api_errors.ApiException as exc:
        exc.steer_operation = operation
        raise


def apply_one(session, resource, namespace, manifest):
    modified = with_last_applied(manifest.obj, namespace)
    if not manifest.name:
        raise CommandError(f"error from {manifest.source}: metadata.name is required to apply")
    try:
        live = session.rest.get(resource, namespace, manifest.name)
    except api_errors.NotFound:
        _during("creating", session.rest.create, resource, namespace, modified)
        return "created"
    body = three_way_patch(last_applied_of(live), modified, live,
                           schema.kind_type(resource.api_version, resource.kind))
    body.pop("status", None)
    if not body:
        return "unchanged"
    _during("applying patch to", session.rest.patch, resource, namespace, manifest.name, body,
            patch_type="strategic")
    return "configured"


def create_one(session, resource, namespace, manifest):
    _during("creating", session.rest.create, resource, namespace, manifest.obj)
    return "created"


def cmd_apply(args):
    return _run_each(args, apply_one)


def cmd_create(args):
    return _run_each(args, create_one)
