"""`steer cordon|uncordon|drain NODE`: take a node out of scheduling and empty it.

Drain follows kubectl: cordon first, then evict every pod on the node except
mirror pods (skipped) and DaemonSet pods (an error unless --ignore-daemonsets, since
their controller would put them back); pods without a controller are only evicted
with --force (nothing would recreate them), pods with emptyDir data only with
--delete-emptydir-data. Evicting goes through the pods/eviction subresource, so a
PodDisruptionBudget is respected: an eviction the budget refuses (429) is tried
again every 5 seconds, as kubectl does, until --timeout. --disable-eviction deletes
the pods instead, bypassing budgets. It waits until the pods are gone.
"""

import argparse
import sys
import time

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
    drain.add_argument("--timeout", type=_seconds, default=0,
                       help="give up after this long: seconds or a duration such as 5m "
                            "(0: wait forever)")
    drain.add_argument("--disable-eviction", action="store_true",
                       help="delete pods instead of evicting them: PodDisruptionBudgets "
                            "are bypassed")
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


#: kubectl drain retries an eviction refused by a disruption budget this often (seconds).
EVICTION_RETRY = 5.0
DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def _seconds(text):
    """Seconds from a number or a kubectl duration ("90", "90s", "5m", "1h")."""
    try:
        value = float(text[:-1]) * DURATION_UNITS[text[-1]] if text and text[-1] in \
            DURATION_UNITS else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 90s, 5m)") from None
    if value < 0:
        raise argparse.ArgumentTypeError("the timeout must not be negative")
    return value


def eviction_body(pod, grace):
    """The policy/v1 Eviction that asks the API server to evict ``pod``."""
    meta = pod["metadata"]
    body = {"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}
    if grace is not None:
        body["deleteOptions"] = {"gracePeriodSeconds": grace}
    return body


def _evict(session, pods_resource, pod, grace):
    meta = pod["metadata"]
    path = session.rest.path(pods_resource, meta["namespace"], meta["name"], "eviction")
    session.rest.request("POST", path, body=eviction_body(pod, grace))


def remove_pods(session, pods_resource, victims, grace, evict, deadline, clock=time.monotonic,
                sleep=time.sleep):
    """Evict (or delete) every pod; retry refused evictions every 5 s until ``deadline``.

    Return the (resource, namespace, name, uid) of the pods the server accepted.
    """
    pending, accepted = list(victims), []
    while pending:
        refused = []
        for pod in pending:
            meta = pod["metadata"]
            try:
                if evict:
                    _evict(session, pods_resource, pod, grace)
                else:
                    session.rest.delete(pods_resource, meta["namespace"], meta["name"],
                                        grace_period_seconds=grace)
            except api_errors.NotFound:
                continue
            except api_errors.TooManyRequests as exc:
                print(f'error when evicting pods/"{meta["name"]}" -n "{meta["namespace"]}" '
                      f"(will retry after 5s): {exc.message}", file=sys.stderr, flush=True)
                refused.append(pod)
                continue
            except api_errors.ApiException as exc:
                raise CommandError(f'error when evicting pods/"{meta["name"]}" -n '
                                   f'"{meta["namespace"]}": {exc.message or exc}') from exc
            accepted.append((pods_resource, meta["namespace"], meta["name"], meta.get("uid")))
        pending = refused
        if pending and deadline is not None and clock() + EVICTION_RETRY > deadline:
            names = ", ".join(f'pods/"{p["metadata"]["name"]}"' for p in pending)
            raise CommandError(f"error when evicting {names}: global timeout reached: the "
                               "pods' disruption budget still refuses their eviction")
        if pending:
            sleep(EVICTION_RETRY)
    return accepted


def cmd_drain(args):
    session = Session(args)
    pods_resource = session.resolve("pods")
    started = time.monotonic()
    deadline = started + args.timeout if args.timeout else None
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
        for pod in victims:
            meta = pod["metadata"]
            print(f"evicting pod {meta['namespace']}/{meta['name']}", flush=True)
        try:
            removed = remove_pods(session, pods_resource, victims, grace,
                                  not args.disable_eviction, deadline)
            if removed:
                left = (deadline - time.monotonic()) if deadline else 7 * 24 * 3600
                wait_gone(session, removed, max(left, 0))
        except CommandError as exc:
            raise CommandError(f"unable to drain node \"{name}\" due to error: {exc}, "
                               f"continuing command...\nThere are pending nodes to be drained:"
                               f"\n {name}") from exc
        word = "deleted" if args.disable_eviction else "evicted"
        for _, _, pod_name, _ in removed:
            print(f"pod/{pod_name} {word}", flush=True)
        print(f"node/{name} drained", flush=True)
    return 0
