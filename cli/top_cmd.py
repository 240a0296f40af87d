"""`steer top nodes|pods`: cpu and memory from metrics.k8s.io, in kubectl top's table.

Nodes show their usage and its share of the node's allocatable (a node in the list
whose agent gave no figures shows <unknown>); pods the sum of their containers, or
with --containers one line per container. CPU is printed in millicores rounded up,
memory in whole MiB, as kubectl prints them.
"""

import math
import sys

from cli import output
from cli.errors import CommandError
from cli.kube import Session, add_connection_flags
from control.client import errors as api_errors
from control.objects import kinds
from control.objects.quantity import QuantityError, parse_quantity

METRICS = "/apis/metrics.k8s.io/v1beta1"
MIB = 2**20
UNKNOWN = "<unknown>"


def register(groups):
    top = groups.add_parser("top", help="show cpu and memory use of nodes or pods")
    kinds_ = top.add_subparsers(dest="top_kind", metavar="nodes|pods")
    kinds_.required = True
    nodes = kinds_.add_parser("nodes", aliases=["node", "no"], help="cpu and memory of nodes")
    add_connection_flags(nodes)
    _common(nodes)
    nodes.set_defaults(func=cmd_top_nodes)
    pods = kinds_.add_parser("pods", aliases=["pod", "po"], help="cpu and memory of pods")
    add_connection_flags(pods, all_namespaces=True)
    _common(pods)
    pods.add_argument("--containers", action="store_true", help="one line per container")
    pods.add_argument("--field-selector", help="only pods whose fields match, e.g. "
                                               "metadata.name=web")
    pods.set_defaults(func=cmd_top_pods)


def _common(parser):
    parser.add_argument("name", nargs="?", help="one node or pod")
    parser.add_argument("-l", "--selector", help="label selector, e.g. app=web")
    parser.add_argument("--sort-by", choices=("cpu", "memory"), help="largest first")
    parser.add_argument("--no-headers", action="store_true")


def _quantity(usage, resource):
    try:
        return parse_quantity((usage or {}).get(resource, "0"))
    except QuantityError:
        return 0


def cpu_text(value):
    return f"{math.ceil(value * 1000)}m"


def memory_text(value):
    return f"{math.ceil(value) // MIB}Mi"


def percent(value, allocatable):
    """Usage as a whole percentage of ``allocatable`` (a quantity string), as kubectl: floor."""
    total = _quantity({"x": allocatable}, "x") if allocatable else 0
    if not total:
        return "0%"
    return f"{int(math.ceil(value * 1000) / math.ceil(total * 1000) * 100)}%"


def _fetch(session, path, name, query):
    """GET a metrics object or list; the items. 'Metrics API not available' if not served."""
    try:
        if name:
            return [session.rest.request("GET", f"{path}/{name}")]
        return session.rest.request("GET", path, query=query).get("items") or []
    except api_errors.ApiException as exc:
        if exc.status == 404 and not name:
            raise CommandError("Metrics API not available") from None
        raise


def _sorted(items, sort_by, usage_of):
    if sort_by:
        return sorted(items, key=lambda m: usage_of(m)[0 if sort_by == "cpu" else 1],
                      reverse=True)
    return items


def node_rows(metrics, nodes, sort_by=None):
    """kubectl top node's rows: usage and its share of allocatable; <unknown> when missing."""
    allocatable = {n["metadata"]["name"]: (n.get("status") or {}).get("allocatable") or {}
                   for n in nodes}

    def usage_of(m):
        return _quantity(m.get("usage"), "cpu"), _quantity(m.get("usage"), "memory")
    rows = []
    for m in _sorted(metrics, sort_by, usage_of):
        name = m["metadata"]["name"]
        cpu, memory = usage_of(m)
        available = allocatable.pop(name, {})
        rows.append([name, cpu_text(cpu), percent(cpu, available.get("cpu")),
                     memory_text(memory), percent(memory, available.get("memory"))])
    rows.extend([name, UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN] for name in sorted(allocatable))
    return rows


def pod_rows(metrics, containers=False, with_namespace=False, sort_by=None):
    """kubectl top pod's rows: a pod's containers summed, or one row per container."""
    def usage_of(m):
        return (sum(_quantity(c.get("usage"), "cpu") for c in m.get("containers") or ()),
                sum(_quantity(c.get("usage"), "memory") for c in m.get("containers") or ()))
    if not sort_by:
        metrics = sorted(metrics, key=lambda m: (m["metadata"].get("namespace", ""),
                                                 m["metadata"]["name"]))
    rows = []
    for m in _sorted(metrics, sort_by, usage_of):
        prefix = [m["metadata"].get("namespace", "")] if with_namespace else []
        if containers:
            for c in m.get("containers") or ():
                rows.append(prefix + [m["metadata"]["name"], c["name"],
                                      cpu_text(_quantity(c.get("usage"), "cpu")),
                                      memory_text(_quantity(c.get("usage"), "memory"))])
        else:
            cpu, memory = usage_of(m)
            rows.append(prefix + [m["metadata"]["name"], cpu_text(cpu), memory_text(memory)])
    return rows


def cmd_top_nodes(args):
    if args.name and args.selector:
        raise CommandError("only one of NAME or --selector can be provided")
    session = Session(args)
    metrics = _fetch(session, f"{METRICS}/nodes", args.name,
                     {"labelSelector": args.selector})
    if not metrics:
        raise CommandError("metrics not available yet")
    if args.name:
        nodes = [session.rest.get(kinds.NODES, None, args.name)]
    else:
        nodes = session.rest.list(kinds.NODES, label_selector=args.selector).get("items") or []
    header = [] if args.no_headers else [["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)",
                                          "MEMORY(%)"]]
    print("\n".join(output.columns(header + node_rows(metrics, nodes, args.sort_by))))
    return 0


def cmd_top_pods(args):
    if args.name and (args.selector or args.field_selector):
        raise CommandError("only one of NAME or selector can be provided")
    session = Session(args)
    everywhere = session.all_namespaces
    path = f"{METRICS}/pods" if everywhere else \
        f"{METRICS}/namespaces/{session.namespace}/pods"
    metrics = _fetch(session, path, args.name, {"labelSelector": args.selector,
                                                "fieldSelector": args.field_selector})
    if not metrics:
        where = "" if everywhere else f" in {session.namespace} namespace"
        print(f"No resources found{where}.", file=sys.stderr)
        return 0
    header = (["NAMESPACE"] if everywhere else []) + \
        (["POD", "NAME"] if args.containers else ["NAME"]) + ["CPU(cores)", "MEMORY(bytes)"]
    rows = pod_rows(metrics, args.containers, everywhere, args.sort_by)
    print("\n".join(output.columns(([] if args.no_headers else [header]) + rows)))
    return 0
