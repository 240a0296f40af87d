"""`steer describe`: a readable page per object, laid out as kubectl's describers do.

Pods, Deployments, ReplicaSets, Services, Nodes and Namespaces have their own
pages; any other kind gets its fields as nested key/value lines. Every page ends
with the object's Events, oldest first.
"""

import math
import sys
from datetime import datetime, timezone

from cli import output
from cli.errors import CommandError, describe_api_error
from cli.events_cmd import first_seen, last_seen
from cli.kube import Session, add_connection_flags, parse_targets
from cli.logs_cmd import selector_string
from control.client import errors as api_errors
from control.objects import quantity

SKIP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def register(groups):
    describe = groups.add_parser("describe", help="show details of objects and their events")
    add_connection_flags(describe, all_namespaces=True)
    describe.add_argument("targets", nargs="+", metavar="TYPE[/NAME] [NAME...]")
    describe.add_argument("-l", "--selector", help="describe objects matching this selector")
    describe.add_argument("--show-events", default="true", choices=("true", "false"))
    describe.set_defaults(func=cmd_describe)


class Page:
    """Lines of tab-separated cells at indentation levels, printed through tabwrite."""

    def __init__(self):
        self.lines = []

    def add(self, level, *cells):
        cells = [str(c) for c in cells]
        cells[0] = "  " * level + cells[0]
        self.lines.append(cells)

    def kv(self, level, key, value):
        self.add(level, f"{key}:", "<none>" if value in (None, "") else value)

    def mapping(self, level, key, values, sep="="):
        """Labels/annotations: first on the key's line, the rest below it, aligned."""
        items = [(k, v) for k, v in sorted((values or {}).items()) if k not in SKIP_ANNOTATIONS]
        if not items:
            self.kv(level, key, "<none>")
            return
        for index, (k, v) in enumerate(items):
            text = f"{k}{sep}{v}"
            if index == 0:
                self.add(level, f"{key}:", text)
            else:
                self.add(level, "", text)

    def text(self):
        return "\n".join(line.rstrip() for line in output.tabwrite(self.lines, 0, 2))


def when(timestamp):
    """RFC 1123 with numeric zone, as kubectl's describe prints times."""
    parsed = output.parse_time(timestamp)
    return parsed.strftime("%a, %d %b %Y %H:%M:%S %z") if parsed else "<unset>"


def cmd_describe(args):
    session = Session(args)
    pairs = parse_targets(args.targets)
    pages, failed = [], False
    for type_name, name in pairs:
        resource = session.resolve(type_name)
        try:
            if name is not None:
                objs = [session.rest.get(resource, session.namespace_for(resource), name)]
            else:
                namespace = None if session.all_namespaces else session.namespace_for(resource)
                objs, _ = session.rest.list_all(resource, namespace, args.selector)
        except api_errors.NotFound as exc:
            print(describe_api_error(exc), file=sys.stderr)
            failed = True
            continue
        for obj in objs:
            obj.setdefault("kind", resource.kind)
            obj.setdefault("apiVersion", resource.api_version)
            pages.append(describe(session, resource, obj, args.show_events == "true"))
    if not pages and not failed:
        print(f"No resources found in {session.namespace} namespace.", file=sys.stderr)
    if pages:
        print("\n\n\n".join(pages))
    return 1 if failed else 0


def describe(session, resource, obj, show_events=True):
    page = Page()
    describer = DESCRIBERS.get(resource.kind, describe_generic)
    describer(session, page, obj)
    if show_events and resource.kind not in NO_EVENTS:
        events_section(page, object_events(session, obj))
    return page.text()


# -- events --------------------------------------------------------------------------------
def object_events(session, obj):
    events = session.resolve("events")
    meta = obj["metadata"]
    selector = f"involvedObject.kind={obj['kind']},involvedObject.name={meta['name']}"
    try:
        items, _ = session.rest.list_all(events, meta.get("namespace") or None,
                                         field_selector=selector)
    except api_errors.ApiException:
        return []
    uid = meta.get("uid")
    items = [e for e in items if not (e.get("involvedObject") or {}).get("uid")
             or e["involvedObject"]["uid"] == uid]
    return sorted(items, key=last_seen)


def events_section(page, events):
    if not events:
        page.add(0, "Events:", "<none>")
        return
    now = datetime.now(timezone.utc)
    page.add(0, "Events:")
    page.add(1, "Type", "Reason", "Age", "From", "Message")
    page.add(1, "----", "------", "----", "----", "-------")
    for event in events:
        count = event.get("count") or 1
        age = output.human_duration((now - first_seen(event)).total_seconds())
        if count > 1:
            last = output.human_duration((now - last_seen(event)).total_seconds())
            age = f"{last} (x{count} over {age})"
        source = ((event.get("source") or {}).get("component")
                  or event.get("reportingComponent") or "")
        page.add(1, event.get("type", ""), event.get("reason", ""), age, source,
                 (event.get("message") or "").strip())


# -- shared blocks -------------------------------------------------------------------------
def header(page, obj, namespaced=True, created=False):
    meta = obj["metadata"]
    page.kv(0, "Name", meta["name"])
    if namespaced:
        page.kv(0, "Namespace", meta.get("namespace"))
    if created:
        page.kv(0, "CreationTimestamp", when(meta.get("creationTimestamp")))


def controlled_by(page, obj):
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            page.kv(0, "Controlled By", f"{ref.get('kind')}/{ref.get('name')}")


def _ports(container):
    ports = container.get("ports") or []
    if not ports:
        return "<none>", "<none>"
    port = ", ".join(f"{p.get('containerPort')}/{p.get('protocol', 'TCP')}" for p in ports)
    host = ", ".join(f"{p.get('hostPort', 0)}/{p.get('protocol', 'TCP')}" for p in ports)
    return port, host


def _env_value(env):
    if "value" in env:
        return env["value"]
    source = env.get("valueFrom") or {}
    if "fieldRef" in source:
        ref = source["fieldRef"]
        return f"({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath')})"
    for kind in ("configMapKeyRef", "secretKeyRef"):
        if kind in source:
            ref = source[kind]
            what = "config map" if kind == "configMapKeyRef" else "secret"
            return f"<set to the key '{ref.get('key')}' of {what} '{ref.get('name')}'>"
    return "<unknown>"


def _state(page, level, label, state):
    if not state:
        return
    kind, detail = next(iter(state.items()))
    page.kv(level, label, kind.capitalize())
    if kind == "running":
        page.kv(level + 1, "Started", when(detail.get("startedAt")))
    elif kind == "waiting":
        if detail.get("reason"):
            page.kv(level + 1, "Reason", detail["reason"])
    elif kind == "terminated":
        if detail.get("reason"):
            page.kv(level + 1, "Reason", detail["reason"])
        page.kv(level + 1, "Exit Code", detail.get("exitCode", 0))
        page.kv(level + 1, "Started", when(detail.get("startedAt")))
        page.kv(level + 1, "Finished", when(detail.get("finishedAt")))


def containers(page, title, specs, statuses=None, template=False):
    """kubectl's container block: in a pod template the title and names move in by
    two and one spaces, while the fields stay at four."""
    page.add(1 if template else 0, f"{title}:")
    by_name = {s.get("name"): s for s in statuses or []}
    for container in specs:
        page.add(0, f"{'   ' if template else '  '}{container['name']}:")
        inner = 2
        status = by_name.get(container["name"])
        if status is not None:
            page.add(inner, "Container ID:", status.get("containerID", ""))
        page.kv(inner, "Image", container.get("image"))
        if status is not None:
            page.add(inner, "Image ID:", status.get("imageID", ""))
        port, host = _ports(container)
        page.kv(inner, "Port", port)
        page.kv(inner, "Host Port", host)
        if container.get("command"):
            page.add(inner, "Command:")
            for word in container["command"]:
                page.add(inner + 1, word)
        if container.get("args"):
            page.add(inner, "Args:")
            for word in container["args"]:
                page.add(inner + 1, word)
        if status is not None:
            _state(page, inner, "State", status.get("state"))
            _state(page, inner, "Last State", status.get("lastState"))
            page.kv(inner, "Ready", "True" if status.get("ready") else "False")
            page.kv(inner, "Restart Count", status.get("restartCount", 0))
        resources = container.get("resources") or {}
        for part in ("limits", "requests"):
            if resources.get(part):
                page.add(inner, f"{part.capitalize()}:")
                for key, value in sorted(resources[part].items()):
                    page.kv(inner + 1, key, value)
        for probe in ("liveness", "readiness", "startup"):
            spec = container.get(f"{probe}Probe")
            if spec:
                page.kv(inner, probe.capitalize(), _probe(spec))
        env = container.get("env") or []
        if env:
            page.add(inner, "Environment:")
            for item in env:
                page.kv(inner + 1, item["name"], _env_value(item))
        else:
            page.kv(inner, "Environment", "<none>")
        mounts = container.get("volumeMounts") or []
        if mounts:
            page.add(inner, "Mounts:")
            for mount in mounts:
                mode = "ro" if mount.get("readOnly") else "rw"
                page.add(inner + 1, f"{mount.get('mountPath')} from {mount.get('name')} ({mode})")
        else:
            page.kv(inner, "Mounts", "<none>")


def _probe(spec):
    if "httpGet" in spec:
        get = spec["httpGet"]
        what = (f"http-get {get.get('scheme', 'HTTP').lower()}://{get.get('host', '')}:"
                f"{get.get('port')}{get.get('path', '/')}")
    elif "tcpSocket" in spec:
        what = f"tcp-socket :{spec['tcpSocket'].get('port')}"
    elif "exec" in spec:
        what = f"exec {spec['exec'].get('command')}"
    else:
        what = "unknown"
    return (f"{what} delay={spec.get('initialDelaySeconds', 0)}s "
            f"timeout={spec.get('timeoutSeconds', 1)}s period={spec.get('periodSeconds', 10)}s "
            f"#success={spec.get('successThreshold', 1)} "
            f"#failure={spec.get('failureThreshold', 3)}")


def volumes(page, level, items):
    if not items:
        page.kv(level, "Volumes", "<none>")
        return
    page.add(level, "Volumes:")
    for volume in items:
        page.add(level + 1, f"{volume['name']}:")
        kinds = [k for k in volume if k != "name"]
        source = kinds[0] if kinds else "unknown"
        page.kv(level + 2, "Type", source)
        for key, value in sorted((volume.get(source) or {}).items()):
            page.kv(level + 2, key[:1].upper() + key[1:], value)


def pod_template(page, template):
    meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    page.add(0, "Pod Template:")
    page.mapping(1, "Labels", meta.get("labels"))
    if meta.get("annotations"):
        page.mapping(1, "Annotations", meta.get("annotations"), sep=": ")
    if spec.get("initContainers"):
        containers(page, "Init Containers", spec["initContainers"], template=True)
    containers(page, "Containers", spec.get("containers") or [], template=True)
    volumes(page, 1, spec.get("volumes"))
    selector = spec.get("nodeSelector") or {}
    page.kv(1, "Node-Selectors", ",".join(f"{k}={v}" for k, v in sorted(selector.items())))
    tolerations_lines(page, 1, spec.get("tolerations"))


def conditions_table(page, conditions, columns=("type", "status", "reason")):
    if not conditions:
        return
    page.add(0, "Conditions:")
    titles = [c[:1].upper() + c[1:] for c in columns]
    page.add(1, *titles)
    page.add(1, *["-" * len(t) for t in titles])
    for cond in conditions:
        page.add(1, *[str(cond.get(c, "")) for c in columns])


# -- describers ------------------------------------------------------------------------
def describe_pod(session, page, pod):
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    header(page, pod)
    if spec.get("priority") is not None:
        page.kv(0, "Priority", spec["priority"])
    if spec.get("priorityClassName"):
        page.kv(0, "Priority Class Name", spec["priorityClassName"])
    if spec.get("serviceAccountName"):
        page.kv(0, "Service Account", spec["serviceAccountName"])
    node = spec.get("nodeName")
    page.kv(0, "Node", f"{node}/{status.get('hostIP', '')}" if node else "<none>")
    if status.get("startTime"):
        page.kv(0, "Start Time", when(status["startTime"]))
    page.mapping(0, "Labels", meta.get("labels"))
    page.mapping(0, "Annotations", meta.get("annotations"), sep=": ")
    if meta.get("deletionTimestamp"):
        page.kv(0, "Status", f"Terminating (lasts {output.age(meta['deletionTimestamp'])})")
        page.kv(0, "Termination Grace Period",
                f"{meta.get('deletionGracePeriodSeconds', 0)}s")
    else:
        page.kv(0, "Status", status.get("phase"))
    if status.get("reason"):
        page.kv(0, "Reason", status["reason"])
    if status.get("message"):
        page.kv(0, "Message", status["message"])
    page.kv(0, "IP", status.get("podIP"))
    ips = status.get("podIPs") or []
    if ips:
        page.add(0, "IPs:")
        for ip in ips:
            page.kv(1, "IP", ip.get("ip"))
    else:
        page.kv(0, "IPs", "<none>")
    controlled_by(page, pod)
    if spec.get("initContainers"):
        containers(page, "Init Containers", spec["initContainers"],
                   status.get("initContainerStatuses"))
    containers(page, "Containers", spec.get("containers") or [],
               status.get("containerStatuses"))
    if status.get("conditions"):
        page.add(0, "Conditions:")
        page.add(1, "Type", "Status")
        for cond in status["conditions"]:     # kubectl leaves a space after each value
            page.add(1, f"{cond.get('type', '')} ", f"{cond.get('status', '')} ")
    volumes(page, 0, spec.get("volumes"))
    page.kv(0, "QoS Class", status.get("qosClass") or qos_class(spec))
    selector = spec.get("nodeSelector") or {}
    page.kv(0, "Node-Selectors", ",".join(f"{k}={v}" for k, v in sorted(selector.items())))
    tolerations_lines(page, 0, spec.get("tolerations"))


def tolerations_lines(page, level, tolerations):
    if not tolerations:
        page.kv(level, "Tolerations", "<none>")
    for index, tol in enumerate(tolerations or []):
        text = tol.get("key", "")
        if tol.get("value"):
            text += f"={tol['value']}"
        if tol.get("effect"):
            text += f":{tol['effect']}"
        if tol.get("operator") == "Exists" and not tol.get("key"):
            text = f"op=Exists{':' + tol['effect'] if tol.get('effect') else ''}"
        elif tol.get("operator") == "Exists":
            text += " op=Exists"
        if tol.get("tolerationSeconds") is not None:
            text += f" for {tol['tolerationSeconds']}s"
        page.add(level, "Tolerations:" if index == 0 else "", text)


def qos_class(spec):
    """Kubernetes' QoS class of a pod spec: Guaranteed when every container's cpu and
    memory limits equal its requests, BestEffort with none at all, else Burstable."""
    containers_ = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    resources = [c.get("resources") or {} for c in containers_]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        for name in ("cpu", "memory"):
            if name not in limits or _amount(requests.get(name, limits[name])) != \
                    _amount(limits[name]):
                return "Burstable"
    return "Guaranteed"


def _replicaset_pods(session, obj):
    pods = session.resolve("pods")
    selector = ((obj.get("spec") or {}).get("selector")) or {}
    items, _ = session.rest.list_all(pods, obj["metadata"]["namespace"],
                                     selector_string(selector) or None)
    uid = obj["metadata"]["uid"]
    return [p for p in items if any(r.get("uid") == uid
                                    for r in p["metadata"].get("ownerReferences") or [])]


def describe_replicaset(session, page, rs):
    meta, spec, status = rs["metadata"], rs.get("spec") or {}, rs.get("status") or {}
    header(page, rs)
    page.kv(0, "Selector", selector_string(spec.get("selector") or {}))
    page.mapping(0, "Labels", meta.get("labels"))
    page.mapping(0, "Annotations", meta.get("annotations"), sep=": ")
    controlled_by(page, rs)
    page.kv(0, "Replicas", f"{status.get('replicas', 0)} current / "
                           f"{spec.get('replicas', 1)} desired")
    phases = {"Running": 0, "Pending": 0, "Succeeded": 0, "Failed": 0}
    for pod in _replicaset_pods(session, rs):
        phase = (pod.get("status") or {}).get("phase", "Pending")
        phases[phase] = phases.get(phase, 0) + 1
    page.kv(0, "Pods Status", f"{phases['Running']} Running / {phases['Pending']} Waiting / "
                              f"{phases['Succeeded']} Succeeded / {phases['Failed']} Failed")
    pod_template(page, spec.get("template") or {})
    conditions_table(page, status.get("conditions"))


def describe_deployment(session, page, dep):
    meta, spec, status = dep["metadata"], dep.get("spec") or {}, dep.get("status") or {}
    header(page, dep, created=True)
    page.mapping(0, "Labels", meta.get("labels"))
    page.mapping(0, "Annotations", meta.get("annotations"), sep=": ")
    page.kv(0, "Selector", selector_string(spec.get("selector") or {}))
    page.kv(0, "Replicas", f"{spec.get('replicas', 1)} desired | "
                           f"{status.get('updatedReplicas', 0)} updated | "
                           f"{status.get('replicas', 0)} total | "
                           f"{status.get('availableReplicas', 0)} available | "
                           f"{status.get('unavailableReplicas', 0)} unavailable")
    strategy = spec.get("strategy") or {}
    page.kv(0, "StrategyType", strategy.get("type", "RollingUpdate"))
    page.kv(0, "MinReadySeconds", spec.get("minReadySeconds", 0))
    rolling = strategy.get("rollingUpdate")
    if rolling:
        page.kv(0, "RollingUpdateStrategy", f"{rolling.get('maxUnavailable', '25%')} max "
                                            f"unavailable, {rolling.get('maxSurge', '25%')} "
                                            "max surge")
    pod_template(page, spec.get("template") or {})
    if status.get("conditions"):
        page.add(0, "Conditions:")
        page.add(1, "Type", "Status", "Reason")
        page.add(1, "----", "------", "------")
        for cond in status["conditions"]:
            page.add(1, cond.get("type", ""), cond.get("status", ""), cond.get("reason", ""))
    new, old = _deployment_replicasets(session, dep)
    page.kv(0, "OldReplicaSets", ", ".join(_rs_summary(r) for r in old) or "<none>")
    page.kv(0, "NewReplicaSet", _rs_summary(new) if new else "<none>")


def _rs_summary(rs):
    return (f"{rs['metadata']['name']} ({(rs.get('status') or {}).get('replicas', 0)}/"
            f"{(rs.get('spec') or {}).get('replicas', 0)} replicas created)")


def _deployment_replicasets(session, dep):
    rs = session.resolve("replicasets")
    selector = selector_string((dep.get("spec") or {}).get("selector") or {}) or None
    items, _ = session.rest.list_all(rs, dep["metadata"]["namespace"], selector)
    uid = dep["metadata"]["uid"]
    owned = [i for i in items if any(r.get("uid") == uid and r.get("controller")
                                     for r in i["metadata"].get("ownerReferences") or [])]
    revision = (dep["metadata"].get("annotations") or {}).get(
        "deployment.kubernetes.io/revision")
    new = next((i for i in owned if (i["metadata"].get("annotations") or {}).get(
        "deployment.kubernetes.io/revision") == revision), None)
    old = [i for i in owned if i is not new and (i.get("spec") or {}).get("replicas", 0) > 0]
    return new, old


def describe_service(session, page, svc):
    meta, spec = svc["metadata"], svc.get("spec") or {}
    header(page, svc)
    page.mapping(0, "Labels", meta.get("labels"))
    page.mapping(0, "Annotations", meta.get("annotations"), sep=": ")
    page.kv(0, "Selector", ",".join(f"{k}={v}" for k, v in
                                    sorted((spec.get("selector") or {}).items())))
    page.kv(0, "Type", spec.get("type", "ClusterIP"))
    if spec.get("ipFamilyPolicy"):
        page.kv(0, "IP Family Policy", spec["ipFamilyPolicy"])
    page.kv(0, "IP Families", ",".join(spec.get("ipFamilies") or []))
    page.add(0, "IP:", spec.get("clusterIP", ""))
    page.kv(0, "IPs", ",".join(spec.get("clusterIPs") or []))
    for address in spec.get("externalIPs") or []:
        page.kv(0, "External IPs", address)
    endpoints = _endpoints(session, svc)
    for port in spec.get("ports") or []:
        name = port.get("name") or "<unset>"
        protocol = port.get("protocol", "TCP")
        page.add(0, "Port:", f"{name}  {port.get('port')}/{protocol}")
        page.kv(0, "TargetPort", f"{port.get('targetPort', port.get('port'))}/{protocol}")
        if port.get("nodePort"):
            page.kv(0, "NodePort", f"{name}  {port['nodePort']}/{protocol}")
        page.kv(0, "Endpoints", endpoints.get(port.get("name") or "", ""))
    page.kv(0, "Session Affinity", spec.get("sessionAffinity", "None"))
    if spec.get("externalTrafficPolicy"):
        page.kv(0, "External Traffic Policy", spec["externalTrafficPolicy"])
    if spec.get("internalTrafficPolicy"):
        page.kv(0, "Internal Traffic Policy", spec["internalTrafficPolicy"])


def _endpoints(session, svc):
    """port name -> "ip:port,ip:port" of the Service's ready endpoints."""
    try:
        eps = session.rest.get(session.resolve("endpoints"), svc["metadata"]["namespace"],
                               svc["metadata"]["name"])
    except api_errors.NotFound:
        return {}
    found = {}
    for subset in eps.get("subsets") or []:
        for port in subset.get("ports") or []:
            addresses = [f"{a.get('ip')}:{port.get('port')}"
                         for a in subset.get("addresses") or []]
            found.setdefault(port.get("name") or "", []).extend(addresses)
    return {k: ",".join(v) for k, v in found.items()}


def describe_node(session, page, node):
    meta, spec, status = node["metadata"], node.get("spec") or {}, node.get("status") or {}
    labels = meta.get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels
                   if k.startswith("node-role.kubernetes.io/"))
    page.kv(0, "Name", meta["name"])
    page.kv(0, "Roles", ",".join(roles) or "<none>")
    page.mapping(0, "Labels", labels)
    page.mapping(0, "Annotations", meta.get("annotations"), sep=": ")
    page.kv(0, "CreationTimestamp", when(meta.get("creationTimestamp")))
    taints = spec.get("taints") or []
    if not taints:
        page.kv(0, "Taints", "<none>")
    for index, taint in enumerate(taints):
        value = f"={taint['value']}" if taint.get("value") else ""
        page.add(0, "Taints:" if index == 0 else "", f"{taint.get('key')}{value}:"
                                                     f"{taint.get('effect')}")
    page.kv(0, "Unschedulable", "true" if spec.get("unschedulable") else "false")
    _lease(session, page, meta["name"])
    conditions = status.get("conditions") or []
    if conditions:
        page.add(0, "Conditions:")
        titles = ("Type", "Status", "LastHeartbeatTime", "LastTransitionTime", "Reason",
                  "Message")
        page.add(1, *titles)
        page.add(1, *["-" * len(t) for t in titles])
        for cond in conditions:     # kubectl leaves a space after each value but the last
            page.add(1, f"{cond.get('type', '')} ", f"{cond.get('status', '')} ",
                     f"{when(cond.get('lastHeartbeatTime'))} ",
                     f"{when(cond.get('lastTransitionTime'))} ",
                     f"{cond.get('reason', '')} ", cond.get("message", ""))
    if status.get("addresses"):
        page.add(0, "Addresses:")
        for address in status["addresses"]:
            page.kv(1, address.get("type"), address.get("address"))
    for title, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        if status.get(key):
            page.add(0, f"{title}:")
            for name, value in sorted(status[key].items()):
                page.kv(1, name, value)
    info = status.get("nodeInfo") or {}
    if info:
        page.add(0, "System Info:")
        for key, label in SYSTEM_INFO:
            page.add(1, f"{label}:", info.get(key, ""))
    pods, _ = session.rest.list_all(session.resolve("pods"), None,
                                    field_selector=f"spec.nodeName={meta['name']}")
    pods = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded",
                                                                            "Failed")]
    allocatable = status.get("allocatable") or {}
    page.add(0, "Non-terminated Pods:", f"({len(pods)} in total)")
    totals = {}
    if pods:
        # kubectl's row format has an empty column after Name; keep it for the spacing.
        titles = ("Namespace", "Name", "", "CPU Requests", "CPU Limits", "Memory Requests",
                  "Memory Limits", "Age")
        page.add(1, *titles)
        page.add(1, *["-" * len(t) for t in titles])
        for pod in pods:
            requests, limits = pod_resources(pod)
            for kind, amounts in (("requests", requests), ("limits", limits)):
                for name, amount in amounts.items():
                    key = (kind, name)
                    totals[key] = totals.get(key, 0) + amount
            page.add(1, pod["metadata"].get("namespace", ""), pod["metadata"]["name"], "",
                     share("cpu", requests, allocatable), share("cpu", limits, allocatable),
                     share("memory", requests, allocatable),
                     share("memory", limits, allocatable),
                     output.age(pod["metadata"].get("creationTimestamp")))
    page.add(0, "Allocated resources:")
    page.add(0, "  (Total limits may be over 100 percent, i.e., overcommitted.)")
    page.add(1, "Resource", "Requests", "Limits")
    page.add(1, "--------", "--------", "------")
    requests = {name: v for (kind, name), v in totals.items() if kind == "requests"}
    limits = {name: v for (kind, name), v in totals.items() if kind == "limits"}
    for name in ("cpu", "memory", "ephemeral-storage"):
        page.add(1, name, share(name, requests, allocatable), share(name, limits, allocatable))


SYSTEM_INFO = (("machineID", "Machine ID"), ("systemUUID", "System UUID"),
               ("bootID", "Boot ID"), ("kernelVersion", "Kernel Version"),
               ("osImage", "OS Image"), ("operatingSystem", "Operating System"),
               ("architecture", "Architecture"),
               ("containerRuntimeVersion", "Container Runtime Version"),
               ("kubeletVersion", "Kubelet Version"), ("kubeProxyVersion", "Kube-Proxy Version"))


def pod_resources(pod):
    """(requests, limits) of a pod as exact amounts: containers summed, init containers'
    maximum if larger, as kubectl's resource helper counts them."""
    spec = pod.get("spec") or {}
    totals = ({}, {})
    for container in spec.get("containers") or []:
        for index, part in enumerate(("requests", "limits")):
            for name, text in ((container.get("resources") or {}).get(part) or {}).items():
                totals[index][name] = totals[index].get(name, 0) + _amount(text)
    for container in spec.get("initContainers") or []:
        for index, part in enumerate(("requests", "limits")):
            for name, text in ((container.get("resources") or {}).get(part) or {}).items():
                totals[index][name] = max(totals[index].get(name, 0), _amount(text))
    return totals


def _amount(text):
    try:
        return quantity.parse_quantity(text)
    except quantity.QuantityError:
        return 0


def format_amount(name, amount):
    """A summed quantity as kubectl prints it: cpu in cores or millicores, bytes in the
    largest binary unit that divides them."""
    if not amount:
        return "0"
    if name == "cpu":
        milli = math.ceil(amount * 1000)
        return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"
    whole = math.ceil(amount)
    for suffix, size in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if whole % size == 0:
            return f"{whole // size}{suffix}"
    return str(whole)


def share(name, amounts, allocatable):
    """'100m (5%)': an amount and its share of the node's allocatable, rounded down."""
    amount = amounts.get(name, 0)
    total = _amount(allocatable.get(name, "0"))
    percent = int(amount * 100 / total) if total else 0
    return f"{format_amount(name, amount)} ({percent}%)"


def _lease(session, page, name):
    try:
        lease = session.rest.get(session.resolve("leases"), "kube-node-lease", name)
    except (api_errors.ApiException, CommandError):
        return
    spec = lease.get("spec") or {}
    page.add(0, "Lease:")
    page.kv(1, "HolderIdentity", spec.get("holderIdentity"))
    page.kv(1, "AcquireTime", when(spec.get("acquireTime")))
    page.kv(1, "RenewTime", when(spec.get("renewTime")))


def describe_namespace(session, page, ns):
    meta = ns["metadata"]
    page.kv(0, "Name", meta["name"])
    page.mapping(0, "Labels", meta.get("labels"))
    page.mapping(0, "Annotations", meta.get("annotations"), sep=": ")
    page.kv(0, "Status", (ns.get("status") or {}).get("phase", "Active"))


def describe_generic(session, page, obj):
    meta = obj["metadata"]
    page.kv(0, "Name", meta["name"])
    if meta.get("namespace"):
        page.kv(0, "Namespace", meta["namespace"])
    page.mapping(0, "Labels", meta.get("labels"))
    page.mapping(0, "Annotations", meta.get("annotations"), sep=": ")
    page.kv(0, "API Version", obj.get("apiVersion"))
    page.kv(0, "Kind", obj.get("kind"))
    rest = {k: v for k, v in meta.items() if k not in (
        "name", "namespace", "labels", "annotations", "managedFields")}
    if rest:
        _nested(page, 0, "metadata", rest)
    for key, value in sorted(obj.items()):
        if key not in ("apiVersion", "kind", "metadata"):
            _nested(page, 0, key, value)


def smart_label(key):
    """kubectl's label for a field name: "holderIdentity" -> "Holder Identity"."""
    words, word = [], ""
    for index, char in enumerate(key):
        boundary = char.isupper() and word and (word[-1].islower() or (
            index + 1 < len(key) and key[index + 1].islower()))
        if boundary:
            words.append(word)
            word = ""
        word += char
    words.append(word)
    return " ".join(w.upper() if w.upper() in ACRONYMS else w[:1].upper() + w[1:]
                    for w in words if w)


ACRONYMS = {"API", "CIDR", "CPU", "DNS", "HTTP", "ID", "IP", "JSON", "OS", "TCP", "TLS", "UDP",
            "UID", "URL", "UUID"}


def _nested(page, level, key, value):
    title = smart_label(key)
    if isinstance(value, dict):
        if not value:
            page.kv(level, title, "<none>")
            return
        page.add(level, f"{title}:")
        for k, v in sorted(value.items()):
            _nested(page, level + 1, k, v)
    elif isinstance(value, list):
        page.add(level, f"{title}:")
        for item in value:
            if isinstance(item, dict):
                first = True
                for k, v in item.items():
                    if first and not isinstance(v, (dict, list)):
                        page.kv(level + 1, smart_label(k), v)
                    else:
                        _nested(page, level + 2 if not first else level + 1, k, v)
                    first = False
            else:
                page.add(level + 1, str(item))
    else:
        page.kv(level, title, output.cell_text(value))


def describe_configmap(session, page, cm):
    meta = cm["metadata"]
    header(page, cm)
    page.mapping(0, "Labels", meta.get("labels"))
    page.mapping(0, "Annotations", meta.get("annotations"), sep=": ")
    page.add(0, "")
    page.add(0, "Data")
    page.add(0, "====")
    for key, value in sorted((cm.get("data") or {}).items()):
        page.add(0, f"{key}:")
        page.add(0, "----")
        for line in str(value).split("\n"):
            page.add(0, line)
        page.add(0, "")
    page.add(0, "")
    page.add(0, "BinaryData")
    page.add(0, "====")
    for key, value in sorted((cm.get("binaryData") or {}).items()):
        page.add(0, f"{key}: {len(value) * 3 // 4} bytes")
    page.add(0, "")


#: Kinds whose page kubectl ends without Events.
NO_EVENTS = {"Namespace"}

DESCRIBERS = {"ConfigMap": describe_configmap, "Pod": describe_pod, "Deployment": describe_deployment,
              "ReplicaSet": describe_replicaset, "Service": describe_service,
              "Node": describe_node, "Namespace": describe_namespace}
