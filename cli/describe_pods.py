"""describe for Pods and pod templates: containers, probes, volumes, tolerations, QoS."""

from cli import output
from cli.describe_page import controlled_by, header, when
from control.objects import quantity


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


def parse_amount(text):
    """A resource quantity as an exact number (0 when it does not parse)."""
    try:
        return quantity.parse_quantity(text)
    except quantity.QuantityError:
        return 0


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
            if name not in limits or parse_amount(requests.get(name, limits[name])) != \
                    parse_amount(limits[name]):
                return "Burstable"
    return "Guaranteed"
