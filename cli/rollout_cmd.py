"""`steer rollout status|history|undo|restart|pause|resume`, as kubectl words them.

status watches the object and prints kubectl's progress lines until the rollout is
done; history lists a Deployment's ReplicaSets by revision; undo copies an older
ReplicaSet's pod template back into the Deployment (what kubectl does: there is no
server-side rollback); restart stamps the template with a restartedAt annotation so
the controller rolls every pod.
"""

import copy
import time
from datetime import datetime, timezone

from cli import output
from cli.describe_page import Page
from cli.describe_pods import pod_template
from cli.errors import CommandError
from cli.kube import Session, add_connection_flags, display_name, parse_targets
from control.client import errors as api_errors

REVISION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
HASH_LABEL = "pod-template-hash"
ROLLABLE = ("deployments", "daemonsets", "statefulsets")


def register(groups):
    rollout = groups.add_parser("rollout", help="manage the rollout of a deployment, "
                                                "daemonset or statefulset")
    verbs = rollout.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    status = verbs.add_parser("status", help="watch a rollout until it is done")
    history = verbs.add_parser("history", help="list the revisions of a rollout")
    undo = verbs.add_parser("undo", help="roll back to the previous (or a given) revision")
    restart = verbs.add_parser("restart", help="replace every pod, one batch at a time")
    pause = verbs.add_parser("pause", help="stop rolling out template changes")
    resume = verbs.add_parser("resume", help="roll out template changes again")
    for parser, func in ((status, cmd_status), (history, cmd_history), (undo, cmd_undo),
                         (restart, cmd_restart), (pause, cmd_pause), (resume, cmd_resume)):
        add_connection_flags(parser)
        parser.add_argument("targets", nargs="+", metavar="TYPE/NAME | TYPE NAME")
        parser.set_defaults(func=func)
    status.add_argument("-w", "--watch", default="true", choices=("true", "false"),
                        help="wait until done (default true)")
    status.add_argument("--timeout", type=float, default=0,
                        help="give up after this many seconds (0: never)")
    status.add_argument("--revision", type=int, default=0,
                        help="fail unless this revision is the one rolling out")
    history.add_argument("--revision", type=int, default=0, help="show this revision's template")
    undo.add_argument("--to-revision", type=int, default=0,
                      help="the revision to go back to (default: the previous one)")


def _objects(args, session):
    objects = []
    for type_name, name in parse_targets(args.targets):
        if name is None:
            raise CommandError("resource(s) were provided, but no name was specified")
        resource = session.resolve(type_name)
        if resource.plural not in ROLLABLE:
            raise CommandError(f"no rollout support for {resource.qualified}: only "
                               "deployments, daemonsets and statefulsets roll out")
        objects.append((resource, name))
    return objects


# -- status -------------------------------------------------------------------------------
def status_line(obj):
    """(message, done) for an object, kubectl's status viewers word for word."""
    kind = obj.get("kind")
    if kind == "Deployment":
        return deployment_status(obj)
    if kind == "DaemonSet":
        return daemonset_status(obj)
    if kind == "StatefulSet":
        return statefulset_status(obj)
    raise CommandError(f"no status viewer for {kind}")


def deployment_status(dep):
    name = dep["metadata"]["name"]
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    if dep["metadata"].get("generation", 0) > status.get("observedGeneration", 0):
        return "Waiting for deployment spec update to be observed...", False
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            raise CommandError(f"deployment \"{name}\" exceeded its progress deadline")
    replicas = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    if updated < replicas:
        return (f"Waiting for deployment \"{name}\" rollout to finish: {updated} out of "
                f"{replicas} new replicas have been updated..."), False
    total = status.get("replicas", 0)
    if total > updated:
        return (f"Waiting for deployment \"{name}\" rollout to finish: {total - updated} old "
                "replicas are pending termination..."), False
    available = status.get("availableReplicas", 0)
    if available < updated:
        return (f"Waiting for deployment \"{name}\" rollout to finish: {available} of "
                f"{updated} updated replicas are available..."), False
    return f"deployment \"{name}\" successfully rolled out", True


def daemonset_status(ds):
    name = ds["metadata"]["name"]
    spec, status = ds.get("spec") or {}, ds.get("status") or {}
    if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") != "RollingUpdate":
        raise CommandError("rollout status is only available for RollingUpdate strategy type")
    if ds["metadata"].get("generation", 0) > status.get("observedGeneration", 0):
        return "Waiting for daemon set spec update to be observed...", False
    desired = status.get("desiredNumberScheduled", 0)
    updated = status.get("updatedNumberScheduled", 0)
    if updated < desired:
        return (f"Waiting for daemon set \"{name}\" rollout to finish: {updated} out of "
                f"{desired} new pods have been updated..."), False
    available = status.get("numberAvailable", 0)
    if available < desired:
        return (f"Waiting for daemon set \"{name}\" rollout to finish: {available} of "
                f"{desired} updated pods are available..."), False
    return f"daemon set \"{name}\" successfully rolled out", True


def statefulset_status(sts):
    spec, status = sts.get("spec") or {}, sts.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        raise CommandError("rollout status is only available for RollingUpdate strategy type")
    observed = status.get("observedGeneration", 0)
    if not observed or sts["metadata"].get("generation", 0) > observed:
        return "Waiting for statefulset spec update to be observed...", False
    replicas = spec.get("replicas", 1)
    ready = status.get("readyReplicas", 0)
    if ready < replicas:
        return f"Waiting for {replicas - ready} pods to be ready...", False
    partition = (strategy.get("rollingUpdate") or {}).get("partition", 0)
    if partition:
        updated = status.get("updatedReplicas", 0)
        if updated < replicas - partition:
            return (f"Waiting for partitioned roll out to finish: {updated} out of "
                    f"{replicas - partition} new pods have been updated..."), False
        return f"partitioned roll out complete: {updated} new pods have been updated...", True
    if status.get("updateRevision") != status.get("currentRevision"):
        return (f"waiting for statefulset rolling update to complete "
                f"{status.get('updatedReplicas', 0)} pods at revision "
                f"{status.get('updateRevision')}..."), False
    return (f"statefulset rolling update complete {status.get('currentReplicas', 0)} pods at "
            f"revision {status.get('currentRevision')}..."), True


def cmd_status(args):
    session = Session(args)
    for resource, name in _objects(args, session):
        namespace = session.namespace_for(resource)
        deadline = time.monotonic() + args.timeout if args.timeout else None
        last = None
        while True:
            obj = session.rest.get(resource, namespace, name)
            obj.setdefault("kind", resource.kind)
            if args.revision and resource.plural == "deployments":
                _check_revision(session, obj, args.revision)
            message, done = status_line(obj)
            if message != last:
                print(message, flush=True)
                last = message
            if done or args.watch == "false":
                break
            remaining = deadline - time.monotonic() if deadline else 60
            if remaining <= 0:
                raise CommandError("timed out waiting for the condition")
            _wait_change(session, resource, namespace, name, obj, min(remaining, 60))
    return 0


def _wait_change(session, resource, namespace, name, obj, seconds):
    """Block until the object changes (or ``seconds`` pass), by watching it."""
    version = obj["metadata"].get("resourceVersion")
    try:
        with session.rest.watch(resource, namespace, version,
                                timeout_seconds=max(1, int(seconds)),
                                field_selector=f"metadata.name={name}") as watch:
            for event_type, _ in watch:
                if event_type in ("MODIFIED", "ADDED", "DELETED", "ERROR"):
                    return
    except api_errors.ConnectionFailed:
        time.sleep(0.5)


def _check_revision(session, dep, revision):
    current = (dep["metadata"].get("annotations") or {}).get(REVISION)
    if current and int(current) != revision:
        raise CommandError(f"desired revision ({revision}) is different from the running "
                           f"revision ({current})")


# -- history and undo -----------------------------------------------------------------------
def owned_replicasets(session, dep):
    """The Deployment's ReplicaSets (controller-owned by its uid), by revision."""
    rs = session.resolve("replicasets")
    selector = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    text = ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or None
    items, _ = session.rest.list_all(rs, dep["metadata"]["namespace"], text)
    uid = dep["metadata"]["uid"]
    owned = [i for i in items if any(r.get("uid") == uid and r.get("controller")
                                     for r in i["metadata"].get("ownerReferences") or [])]
    return sorted(owned, key=revision_of)


def revision_of(obj):
    try:
        return int((obj["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _deployment_only(resource, verb):
    if resource.plural != "deployments":
        raise CommandError(f"rollout {verb} is only supported for deployments here")


def history_rows(replicasets):
    rows = [["REVISION", "CHANGE-CAUSE"]]
    for item in replicasets:
        cause = (item["metadata"].get("annotations") or {}).get(CHANGE_CAUSE) or "<none>"
        rows.append([str(revision_of(item)), cause])
    return output.columns(rows, padding=2, min_width=0)


def owned_revisions(session, obj):
    """A DaemonSet's or StatefulSet's ControllerRevisions, oldest first, shaped like
    ReplicaSets for history_rows (the revision number moved into the annotation)."""
    revisions = session.resolve("controllerrevisions")
    items, _ = session.rest.list_all(revisions, obj["metadata"]["namespace"])
    uid = obj["metadata"]["uid"]
    owned = []
    for item in items:
        if not any(r.get("uid") == uid for r in item["metadata"].get("ownerReferences") or []):
            continue
        shaped = {"metadata": {"name": item["metadata"]["name"], "annotations": {
            **(item["metadata"].get("annotations") or {}),
            REVISION: str(item.get("revision", 0))}}}
        owned.append(shaped)
    return sorted(owned, key=revision_of)


def cmd_history(args):
    session = Session(args)
    for resource, name in _objects(args, session):
        obj = session.rest.get(resource, session.namespace_for(resource), name)
        if resource.plural != "deployments":
            if args.revision:
                raise CommandError("--revision is only supported for deployments here")
            print(f"{display_name(resource, name)} ")
            print("\n".join(history_rows(owned_revisions(session, obj))))
            print()
            continue
        dep = obj
        replicasets = [r for r in owned_replicasets(session, dep) if revision_of(r) > 0]
        if args.revision:
            match = [r for r in replicasets if revision_of(r) == args.revision]
            if not match:
                raise CommandError("unable to find the specified revision")
            print(f"{display_name(resource, name)} with revision #{args.revision}")
            page = Page()
            pod_template(page, copy.deepcopy(match[0]["spec"]["template"]))
            print(page.text())
            print()
            continue
        print(f"{display_name(resource, name)} ")
        print("\n".join(history_rows(replicasets)))
        print()
    return 0


def template_for_undo(replicaset):
    """The pod template to restore: the ReplicaSet's, without its pod-template-hash label."""
    template = copy.deepcopy(replicaset["spec"]["template"])
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)
    return template


def pick_revision(replicasets, to_revision, name="?"):
    """The ReplicaSet to roll back to: ``to_revision``, or the newest but one."""
    if to_revision:
        for item in replicasets:
            if revision_of(item) == to_revision:
                return item
        raise CommandError(f"unable to find specified revision {to_revision} in history")
    ordered = sorted((r for r in replicasets if revision_of(r) > 0), key=revision_of)
    if len(ordered) < 2:
        raise CommandError(f"no rollout history found for deployment \"{name}\"")
    return ordered[-2]


def cmd_undo(args):
    session = Session(args)
    for resource, name in _objects(args, session):
        _deployment_only(resource, "undo")
        namespace = session.namespace_for(resource)
        dep = session.rest.get(resource, namespace, name)
        if (dep.get("spec") or {}).get("paused"):
            raise CommandError(f"you cannot rollback a paused deployment; resume it first with "
                               f"'steer rollout resume {display_name(resource, name)}' and try "
                               "again")
        target = pick_revision(owned_replicasets(session, dep), args.to_revision, name)
        template = template_for_undo(target)
        if _same_template(template, dep["spec"]["template"]):
            print(f"{display_name(resource, name)} skipped rollback (current template already "
                  f"matches revision {revision_of(target)})")
            continue
        session.rest.patch(resource, namespace, name,
                           [{"op": "test", "path": "/metadata/resourceVersion",
                             "value": dep["metadata"]["resourceVersion"]},
                            {"op": "replace", "path": "/spec/template", "value": template}],
                           patch_type="json")
        print(f"{display_name(resource, name)} rolled back")
    return 0


def _same_template(a, b):
    a, b = copy.deepcopy(a), copy.deepcopy(b)
    for template in (a, b):
        ((template.get("metadata") or {}).get("labels") or {}).pop(HASH_LABEL, None)
    return a == b


# -- restart, pause, resume --------------------------------------------------------------
def cmd_restart(args):
    session = Session(args)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for resource, name in _objects(args, session):
        namespace = session.namespace_for(resource)
        obj = session.rest.get(resource, namespace, name)
        if (obj.get("spec") or {}).get("paused"):
            raise CommandError("can't restart paused deployment (run rollout resume first)")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        session.rest.patch(resource, namespace, name, patch, patch_type="strategic")
        print(f"{display_name(resource, name)} restarted")
    return 0


def _set_paused(args, paused):
    session = Session(args)
    for resource, name in _objects(args, session):
        _deployment_only(resource, "pause" if paused else "resume")
        namespace = session.namespace_for(resource)
        obj = session.rest.get(resource, namespace, name)
        word = "paused" if paused else "resumed"
        if bool((obj.get("spec") or {}).get("paused")) == paused:
            raise CommandError(f"{display_name(resource, name)} is already {word}")
        session.rest.patch(resource, namespace, name, {"spec": {"paused": paused}},
                           patch_type="strategic")
        print(f"{display_name(resource, name)} {word}")
    return 0


def cmd_pause(args):
    return _set_paused(args, True)


def cmd_resume(args):
    return _set_paused(args, False)
