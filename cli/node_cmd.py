"""`steer cordon|uncordon|drain NODE`: take a node out of scheduling and empty it.

Drain follows kubectl: cordon first, then delete every pod on the node except
mirror pods (skipped) and DaemonSet pods (an error unless --ignore-daemonsets, since
their controller would put them back); pods without a controller are only deleted
with --force (nothing would recreate them), pods with emptyDir data only with
--delete-emptydir-data. It waits until the pods are gone.
"""

import sys

from cli.delete_cmd import wait_gone
from cli.errors import CommandError
from cli.kube import Session, add_connection_flags
from control.client import errors as api_errors

MIRROR = "kubernetes.io/config.mirror"


def register(groups):
    for verb, helptext in (("cordon", "mark a node unschedulable"),
                           ("uncordon", "mark a node schedulable again")):
        parser = groups.add_parser(verb, help=helptext)
        add_connection_flags(parser)
        parser.add_argument("nodes", nargs="+", metavar="NODE")
        parser.set_defaults(func=cmd_cordon, unschedulable=verb == "cordon")
    drain = groups.add_parser("drain", help="cordon a node and delete its pods")
    add_connection_flags(drain)
    drain.add_argument("nodes", nargs="+", metavar="NODE")
    drain.add_argument("--ignore-daemonsets", action="store_true",
                       help="leave DaemonSet-managed pods in place")
    drain.add_argument("--force", action="store_true",
                       help="also delete pods that no controller manages")
    drain.add_argument("--delete-emptydir-data", action="store_true",
                       help="also delete pods using emptyDir (their data is lost)")
    drain.add_argument("--grace-period", type=int, default=-1,
                       help="seconds each pod gets to stop (-1: the pod's own)")
    drain.add_argument("--timeout", type=float, default=0,
                       help="give up after this many seconds (0: wait forever)")
    drain.set_defaults(func=cmd_drain)


def _node_name(text):
    kind, _, name = text.rpartition("/")
    if kind and kind.lower() not in ("node", "nodes", "no"):
        raise CommandError(f"{text} is not a node")
    return name


def set_unschedulable(session, name, value):
    """Patch spec.unschedulable; return False if it already had that value."""
    nodes = session.resolve("nodes")
    node = session.rest.get(nodes, None, name)
    if bool((node.get("spec") or {}).get("unschedulable")) == value:
        return False
    session.rest.patch(nodes, None, name, {"spec": {"unschedulable": value or None}},
                       patch_type="strategic")
    return True


def cmd_cordon(args):
    session = Session(args)
    word = "cordoned" if args.unschedulable else "uncordoned"
    for text in args.nodes:
        name = _node_name(text)
        changed = set_unschedulable(session, name, args.unschedulable)
        print(f"node/{name} {word}" if changed else f"node/{name} already {word}")
    return 0


def controller_of(pod):
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def classify(pods, ignore_daemonsets=False, force=False, delete_emptydir=False):
    """Split a node's pods: (to delete, warnings, errors), as kubectl's drain filters do."""
    delete, warnings, errors = [], {}, {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        ref = f"{meta.get('namespace')}/{meta.get('name')}"
        if MIRROR in (meta.get("annotations") or {}):
            continue
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        owner = controller_of(pod)
        if owner and owner.get("kind") == "DaemonSet" and not finished:
            if ignore_daemonsets:
                warnings.setdefault("ignoring DaemonSet-managed Pods", []).append(ref)
            else:
                errors.setdefault("cannot delete DaemonSet-managed Pods (use "
                                  "--ignore-daemonsets to ignore)", []).append(ref)
            continue
        if owner is None and not finished:
            if force:
                warnings.setdefault("deleting Pods that declare no controller", []).append(ref)
            else:
                errors.setdefault("cannot delete Pods that declare no controller (use --force "
                                  "to override)", []).append(ref)
                continue
        volumes = (pod.get("spec") or {}).get("volumes") or []
        if any("emptyDir" in v for v in volumes) and not finished:
            if delete_emptydir:
                warnings.setdefault("deleting Pods with local storage", []).append(ref)
            else:
                errors.setdefault("cannot delete Pods with local storage (use "
                                  "--delete-emptydir-data to override)", []).append(ref)
                continue
        delete.append(pod)
    return delete, warnings, errors


def cmd_drain(args):
    session = Session(args)
    pods_resource = session.resolve("pods")
    for text in args.nodes:
        name = _node_name(text)
        changed = set_unschedulable(session, name, True)
        print(f"node/{name} cordoned" if changed else f"node/{name} already cordoned",
              flush=True)
        pods, _ = session.rest.list_all(pods_resource, None,
                                        field_selector=f"spec.nodeName={name}")
        victims, warnings, errors = classify(pods, args.ignore_daemonsets, args.force,
                                             args.delete_emptydir_data)
        if errors:
            reasons = [f"{what}: {', '.join(refs)}" for what, refs in errors.items()]
            detail = reasons[0] if len(reasons) == 1 else f"[{', '.join(reasons)}]"
            raise CommandError("\n".join([
                f"unable to drain node \"{name}\" due to error: {detail}, continuing "
                "command...", "There are pending nodes to be drained:", f" {name}", *reasons]))
        if warnings:
            print("Warning: " + "; ".join(f"{what}: {', '.join(refs)}"
                                          for what, refs in warnings.items()), file=sys.stderr)
        grace = args.grace_period if args.grace_period >= 0 else None
        deleted = []
        for pod in victims:
            meta = pod["metadata"]
            print(f"evicting pod {meta['namespace']}/{meta['name']}", flush=True)
            try:
                session.rest.delete(pods_resource, meta["namespace"], meta["name"],
                                    grace_period_seconds=grace)
            except api_errors.NotFound:
                continue
            deleted.append((pods_resource, meta["namespace"], meta["name"], meta.get("uid")))
        if deleted:
            try:
                wait_gone(session, deleted, args.timeout or 7 * 24 * 3600)
            except CommandError as exc:
                raise CommandError(f"error when waiting for pods to be deleted on node "
                                   f"\"{name}\": {exc}") from exc
        for _, _, pod_name, _ in deleted:
            print(f"pod/{pod_name} evicted")
        print(f"node/{name} drained", flush=True)
    return 0
