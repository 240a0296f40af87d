"""metrics.k8s.io/v1beta1: NodeMetrics and PodMetrics, served as metrics-server serves them.

``kubectl top`` finds the group in discovery, then lists
/apis/metrics.k8s.io/v1beta1/nodes or .../namespaces/{ns}/pods (or /pods for every
namespace) with a labelSelector. The figures come from each Ready node's agent,
/stats/summary (kubelet's shape, agent/stats.py), fetched when asked and kept a few
seconds (metrics_scrape.py): a node whose agent does not answer is left out of the list,
as metrics-server leaves it out, and never fails it.
A container whose agent has no cpu rate yet (one reading so far) is not reported; a pod
is reported once all its containers are. Authorization is ordinary RBAC on the
``nodes`` and ``pods`` resources of the group (the bootstrap policy's
system:aggregated-metrics-reader feeds view, edit and admin, as metrics-server's
manifest does).
"""

from control import errors
from control.api import bodies, table
from control.api.metrics_scrape import Summaries
from control.objects import kinds, meta
from control.objects.quantity import parse_quantity

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
#: The agents' sampling interval (agent --stats-interval): the window of their cpu rates.
WINDOW = "10s"
VERBS = ["get", "list"]
NS_PER_SECOND = 1_000_000_000


# -- discovery --------------------------------------------------------------------------------
def group_entry():
    """The group's entry of the APIGroupList (/apis)."""
    gv = {"groupVersion": API_VERSION, "version": VERSION}
    return {"name": GROUP, "versions": [gv], "preferredVersion": gv}


def resource_list():
    """The APIResourceList of /apis/metrics.k8s.io/v1beta1."""
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": API_VERSION,
            "resources": [
                {"name": "nodes", "singularName": "", "namespaced": False,
                 "kind": "NodeMetrics", "verbs": VERBS},
                {"name": "pods", "singularName": "", "namespaced": True,
                 "kind": "PodMetrics", "verbs": VERBS}]}


# -- quantities -------------------------------------------------------------------------------
_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T",
                     15: "P", 18: "E"}
_BINARY_SUFFIXES = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]


def decimal_quantity(mantissa, exponent):
    """Canonical DecimalSI text of ``mantissa`` * 10**``exponent`` (integers), as apimachinery.

    Trailing zeros move into the exponent, which then goes down to a multiple of 3:
    1500000000 * 10**-9 is "1500m", 2000000 * 10**-9 is "2m", 0 is "0".
    """
    if mantissa == 0:
        return "0"
    while mantissa % 10 == 0:
        mantissa, exponent = mantissa // 10, exponent + 1
    while exponent % 3:
        mantissa, exponent = mantissa * 10, exponent - 1
    while exponent > 18:
        mantissa, exponent = mantissa * 1000, exponent - 3
    return f"{mantissa}{_DECIMAL_SUFFIXES[exponent]}"


def cpu_quantity(nanocores):
    """A cpu usage in nanocores as metrics-server writes it (NewScaledQuantity(n, -9))."""
    return decimal_quantity(int(nanocores), -9)


def memory_quantity(size):
    """A byte count as metrics-server writes it (a BinarySI quantity): "1235Ki", "1234567".

    Below 1024 apimachinery writes the DecimalSI form ("1k" for 1000); above, the
    largest power of 1024 that divides the value.
    """
    size = int(size)
    if -1024 < size < 1024:
        return decimal_quantity(size, 0)
    power = 0
    while size % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
        size, power = size // 1024, power + 1
    return f"{size}{_BINARY_SUFFIXES[power]}"


# -- objects ----------------------------------------------------------------------------------
def _usage(cpu, memory):
    if (cpu or {}).get("usageNanoCores") is None or \
            (memory or {}).get("workingSetBytes") is None:
        return None
    return {"cpu": cpu_quantity(cpu["usageNanoCores"]),
            "memory": memory_quantity(memory["workingSetBytes"])}


def _metadata(obj, now, namespaced):
    source = obj["metadata"]
    out = {"name": source["name"], "creationTimestamp": meta.timestamp(now)}
    if namespaced:
        out["namespace"] = source.get("namespace", "")
    if source.get("labels"):
        out["labels"] = dict(source["labels"])
    return out


def node_metrics(node, summary, now):
    """The NodeMetrics of ``node`` from its agent's summary, or None without a cpu rate."""
    stats = (summary or {}).get("node") or {}
    usage = _usage(stats.get("cpu"), stats.get("memory"))
    if usage is None:
        return None
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION,
            "metadata": _metadata(node, now, namespaced=False),
            "timestamp": stats["cpu"].get("time") or meta.timestamp(now), "window": WINDOW,
            "usage": usage}


def find_pod_stats(summary, pod):
    """The summary's entry for ``pod`` (same namespace, name and uid), or None."""
    ref = {"namespace": pod["metadata"].get("namespace"), "name": pod["metadata"]["name"],
           "uid": pod["metadata"].get("uid")}
    for entry in (summary or {}).get("pods") or ():
        found = entry.get("podRef") or {}
        if all(found.get(k) == v for k, v in ref.items()):
            return entry
    return None


def pod_metrics(pod, pod_stats, now):
    """The PodMetrics of ``pod``, or None until every container has a cpu rate."""
    containers = []
    for container in (pod_stats or {}).get("containers") or ():
        usage = _usage(container.get("cpu"), container.get("memory"))
        if usage is None:
            return None
        containers.append({"name": container.get("name", ""), "usage": usage})
    if not containers:
        return None
    stamp = (pod_stats.get("cpu") or {}).get("time")
    return {"kind": "PodMetrics", "apiVersion": API_VERSION,
            "metadata": _metadata(pod, now, namespaced=True),
            "timestamp": stamp or meta.timestamp(now), "window": WINDOW,
            "containers": containers}


def list_of(kind, items):
    return {"kind": f"{kind}List", "apiVersion": API_VERSION, "metadata": {},
            "items": sorted(items, key=lambda o: (o["metadata"].get("namespace", ""),
                                                  o["metadata"]["name"]))}


# -- HTTP -------------------------------------------------------------------------------------
def _selectors(req):
    return {"label_selector": req.get_param("labelSelector"),
            "field_selector": req.get_param("fieldSelector")}


def _not_found(resource, name):
    return errors.NotFound(f'{resource}.{GROUP} "{name}" not found', name=name, group=GROUP,
                           kind=resource)


class MetricsApi:
    """The falcon resources of the group, over ``service`` and the agents' summaries."""

    def __init__(self, service, summaries):
        self.service, self.summaries = service, summaries

    def now(self):
        return self.service.clock()

    def nodes(self, name=None, selectors=None):
        if name is not None:
            try:
                found = [self.service.get(kinds.NODES, None, name)]
            except errors.NotFound:
                raise _not_found("nodes", name) from None
        else:
            found = self.service.list(kinds.NODES, None, **(selectors or {}))[0]
        summaries, now = self.summaries.for_nodes(found), self.now()
        items = [node_metrics(n, summaries.get(n["metadata"]["name"]), now) for n in found]
        items = [item for item in items if item is not None]
        if name is not None and not items:
            raise _not_found("nodes", name)
        return items

    def pods(self, namespace, name=None, selectors=None):
        if name is not None:
            try:
                found = [self.service.get(kinds.PODS, namespace, name)]
            except errors.NotFound:
                raise _not_found("pods", name) from None
        else:
            found = self.service.list(kinds.PODS, namespace, **(selectors or {}))[0]
        found = [p for p in found if (p.get("spec") or {}).get("nodeName") and
                 (p.get("status") or {}).get("phase") == "Running"]
        node_names = {p["spec"]["nodeName"] for p in found}
        nodes = []
        for node_name in sorted(node_names):
            try:
                nodes.append(self.service.get(kinds.NODES, None, node_name))
            except errors.NotFound:
                continue
        summaries, now = self.summaries.for_nodes(nodes), self.now()
        items = [pod_metrics(p, find_pod_stats(summaries.get(p["spec"]["nodeName"]), p), now)
                 for p in found]
        items = [item for item in items if item is not None]
        if name is not None and not items:
            raise _not_found("pods", name)
        return items


def _summed_usage(obj):
    """A NodeMetrics' usage, or a PodMetrics' containers summed, as quantity strings."""
    if "usage" in obj:
        return obj["usage"]
    cpu = sum(parse_quantity(c["usage"]["cpu"]) for c in obj.get("containers") or ())
    memory = sum(parse_quantity(c["usage"]["memory"]) for c in obj.get("containers") or ())
    return {"cpu": cpu_quantity(cpu * NS_PER_SECOND), "memory": memory_quantity(memory)}


def metrics_table(items, version, include):
    """The Table `kubectl get nodemetrics|podmetrics` asks for: metrics-server's columns."""
    columns = [{"name": "Name", "type": "string", "format": "name",
                "description": "Name of the resource", "priority": 0}]
    columns += [{"name": name, "type": "string", "format": fmt, "description": "",
                 "priority": 0} for name, fmt in (("cpu", "quantity"), ("memory", "quantity"),
                                                  ("Window", "duration"))]
    rows = []
    for obj in items:
        usage = _summed_usage(obj)
        rows.append({"cells": [obj["metadata"]["name"], usage["cpu"], usage["memory"],
                               obj["window"]],
                     "object": None if include == "None" else obj if include == "Object" else
                     {"kind": "PartialObjectMetadata", "apiVersion": f"{table.GROUP}/{version}",
                      "metadata": obj["metadata"]}})
    return {"kind": "Table", "apiVersion": f"{table.GROUP}/{version}", "metadata": {},
            "columnDefinitions": columns, "rows": rows}


def _write(req, resp, kind, items, single):
    version = table.wants_table(req.get_header("Accept"))
    if version is not None:
        bodies.write_json(resp, metrics_table(items, version,
                                              table.include_mode(req.get_param("includeObject"))))
        resp.content_type = table.content_type(version)
    else:
        bodies.write_json(resp, items[0] if single else list_of(kind, items))


class NodeMetricsRoute:
    def __init__(self, api):
        self.api = api

    def on_get(self, req, resp, name=None):
        items = self.api.nodes(name) if name is not None else \
            self.api.nodes(None, _selectors(req))
        _write(req, resp, "NodeMetrics", items, name is not None)


class PodMetricsRoute:
    def __init__(self, api):
        self.api = api

    def on_get(self, req, resp, ns=None, name=None):
        items = self.api.pods(ns, name) if name is not None else \
            self.api.pods(ns, None, _selectors(req))
        _write(req, resp, "PodMetrics", items, name is not None)


def add_routes(app, service, kubelet_tls, summaries=None):
    """Serve the group's paths on ``app`` (literal paths: they win over the generic ones)."""
    api = MetricsApi(service, summaries or Summaries(kubelet_tls))
    base = f"/apis/{GROUP}/{VERSION}"
    nodes, pods = NodeMetricsRoute(api), PodMetricsRoute(api)
    app.add_route(f"{base}/nodes", nodes)
    app.add_route(f"{base}/nodes/{{name}}", nodes)
    app.add_route(f"{base}/pods", pods)
    app.add_route(f"{base}/namespaces/{{ns}}/pods", pods)
    app.add_route(f"{base}/namespaces/{{ns}}/pods/{{name}}", pods)
    return api
