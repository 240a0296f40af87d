"""describe for workloads, services, nodes, namespaces, configmaps, and any other kind."""

import base64
import math

from cli import output
from cli.describe_page import controlled_by, header, when
from cli.describe_pods import conditions_table, describe_pod, parse_amount, pod_template
from cli.describe_quota import describe_limitrange, describe_resourcequota
from cli.errors import CommandError
from cli.logs_cmd import selector_string
from control.client import errors as api_errors


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
                totals[index][name] = totals[index].get(name, 0) + parse_amount(text)
    for container in spec.get("initContainers") or []:
        for index, part in enumerate(("requests", "limits")):
            for name, text in ((container.get("resources") or {}).get(part) or {}).items():
                totals[index][name] = max(totals[index].get(name, 0), parse_amount(text))
    return totals


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
    total = parse_amount(allocatable.get(name, "0"))
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


def describe_secret(session, page, secret):
    """Sizes only, never values: a describe page is often pasted into tickets."""
    meta = secret["metadata"]
    header(page, secret)
    page.mapping(0, "Labels", meta.get("labels"))
    page.mapping(0, "Annotations", meta.get("annotations"), sep=": ")
    page.add(0, "")
    page.add(0, "Type:", secret.get("type", "Opaque"))
    page.add(0, "")
    page.add(0, "Data")
    page.add(0, "====")
    for key, value in sorted((secret.get("data") or {}).items()):
        size = len(base64.b64decode(value or "", validate=False))
        page.add(0, f"{key}:", f"{size} bytes")


#: Kinds whose page kubectl ends without Events.
NO_EVENTS = {"Namespace"}

DESCRIBERS = {"Pod": describe_pod, "Deployment": describe_deployment,
              "ReplicaSet": describe_replicaset, "Service": describe_service,
              "Node": describe_node, "Namespace": describe_namespace,
              "ConfigMap": describe_configmap, "Secret": describe_secret,
              "ResourceQuota": describe_resourcequota, "LimitRange": describe_limitrange}
