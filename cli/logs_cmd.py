"""`steer logs`: a container's log through the API server (which asks the node agent).

``deployment/NAME`` (or any owner with a selector) picks one of its pods as kubectl
does: pods that are running and ready first, then the newest. ``-l SELECTOR`` reads
every matching pod, and ``--all-containers`` every container, with each line
prefixed ``[pod/NAME/CONTAINER]`` (cli/logs_follow.py; ``-f`` there follows pods that
start later, as stern does).
"""

import argparse
import sys
import time

from cli import logs_follow
from cli.errors import CommandError
from cli.kube import Session, add_connection_flags
from cli.output import parse_time

DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"


def register(groups):
    logs = groups.add_parser("logs", help="print a container's log")
    add_connection_flags(logs)
    logs.add_argument("target", nargs="?", metavar="POD | TYPE/NAME")
    logs.add_argument("container_arg", nargs="?", metavar="CONTAINER")
    logs.add_argument("-c", "--container", help="the container (default: the first)")
    logs.add_argument("-l", "--selector", help="the pods with these labels, e.g. app=web")
    logs.add_argument("--all-containers", action="store_true",
                      help="every container of the pod(s), init containers included")
    logs.add_argument("--prefix", action=argparse.BooleanOptionalAction, default=None,
                      help="prefix lines with [pod/NAME/CONTAINER] (default: with -l)")
    logs.add_argument("--max-log-requests", type=int, default=5,
                      help="most log streams followed at once (default 5)")
    logs.add_argument("-f", "--follow", action="store_true", help="stream new lines")
    logs.add_argument("--tail", type=int, default=None,
                      help="only the last N lines (default: all; 10 with -l)")
    logs.add_argument("-p", "--previous", action="store_true",
                      help="the previous (crashed) instance of the container")
    logs.add_argument("--timestamps", action="store_true", help="prefix lines with times")
    logs.add_argument("--since", help="only newer lines, e.g. 5s, 2m, 3h")
    logs.set_defaults(func=cmd_logs)


def pod_rank(pod):
    """Sort key: the pod kubectl would pick first sorts first."""
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    assigned = bool((pod.get("spec") or {}).get("nodeName"))
    phase_order = {"Running": 0, "Unknown": 1, "Pending": 2}.get(status.get("phase"), 3)
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
    created = parse_time(meta.get("creationTimestamp"))
    newest_first = -(created.timestamp() if created else 0)
    return (not assigned, phase_order, not ready, restarts, newest_first, meta.get("name", ""))


def selector_string(selector):
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def pick_pod(session, type_name, name):
    """The pod to read for TYPE/NAME (a pod itself, or one selected by its owner)."""
    pods = session.resolve("pods")
    namespace = session.namespace
    resource = session.resolve(type_name)
    if resource.plural == "pods":
        return session.rest.get(pods, namespace, name)
    owner = session.rest.get(resource, namespace, name)
    selector = (owner.get("spec") or {}).get("selector")
    if isinstance(selector, dict) and "matchLabels" not in selector and \
            "matchExpressions" not in selector:
        selector = {"matchLabels": selector}          # a Service's plain map
    if not selector:
        raise CommandError(f"cannot get logs of {type_name}/{name}: it selects no pods")
    items, _ = session.rest.list_all(pods, namespace, selector_string(selector))
    if not items:
        raise CommandError(f"no pods found for {type_name}/{name}")
    items.sort(key=pod_rank)
    if len(items) > 1:
        print(f"Found {len(items)} pods, using pod/{items[0]['metadata']['name']}",
              file=sys.stderr)
    return items[0]


def choose_container(pod, wanted):
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    if wanted:
        known = containers + [c["name"] for c in
                              (pod.get("spec") or {}).get("initContainers") or []]
        if wanted not in known:
            raise CommandError(f"container {wanted} is not valid for pod "
                               f"{pod['metadata']['name']}")
        return wanted
    default = ((pod.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER)
    if default in containers:
        return default
    if len(containers) > 1:
        print(f"Defaulted container \"{containers[0]}\" out of: {', '.join(containers)}",
              file=sys.stderr)
    return containers[0] if containers else None


def since_seconds(text):
    units = {"s": 1, "m": 60, "h": 3600}
    if not text or text[-1] not in units or not text[:-1].isdigit():
        raise CommandError(f"invalid --since {text!r}: use e.g. 30s, 5m, 1h")
    return int(text[:-1]) * units[text[-1]]


def log_query(args, container, first=True):
    """The pods/log query; a stream that starts later (``first`` false) is read whole."""
    tail = args.tail if args.tail is not None else (10 if args.selector else -1)
    return {"container": container,
            "follow": "true" if args.follow else None,
            "tailLines": tail if tail >= 0 and first else None,
            "previous": "true" if args.previous else None,
            "timestamps": "true" if args.timestamps else None,
            "sinceSeconds": since_seconds(args.since) if args.since and first else None}


def cmd_logs(args):
    if args.selector and args.target:
        raise CommandError("only a selector (-l) or a POD name is allowed")
    if not args.selector and not args.target:
        raise CommandError("expected POD or TYPE/NAME, or -l SELECTOR")
    if args.max_log_requests < 1:
        raise CommandError("--max-log-requests must be at least 1")
    session = Session(args)
    if args.selector:
        return _many(session, args, None)
    if "/" in args.target:
        type_name, _, name = args.target.partition("/")
    else:
        type_name, name = "pods", args.target
    pod = pick_pod(session, type_name, name)
    if args.all_containers:
        return _many(session, args, pod)
    container = choose_container(pod, args.container or args.container_arg)
    query = log_query(args, container)
    pods = session.resolve("pods")
    path = session.rest.path(pods, pod["metadata"]["namespace"], pod["metadata"]["name"], "log")
    response = session.rest.stream(path, query)
    out = sys.stdout.buffer
    try:
        while True:
            chunk = response.read1(65536) if hasattr(response, "read1") else response.read(65536)
            if not chunk:
                break
            out.write(chunk)
            out.flush()
    finally:
        response.close()
    return 0


def _many(session, args, pod):
    """Several streams: every container of ``pod``, or the selector's pods (``pod`` None)."""
    pods = session.resolve("pods")
    namespace = session.namespace
    wanted = args.container or args.container_arg

    def containers_of(item):
        names = logs_follow.container_names(item, wanted, args.all_containers)
        if wanted and not names and not (args.follow and args.selector):
            raise CommandError(f"container {wanted} is not valid for pod "
                               f"{item['metadata']['name']}")
        return names

    def open_stream(pod_name, container, first):
        path = session.rest.path(pods, namespace, pod_name, "log")
        return logs_follow.LogStream(session.rest, path, log_query(args, container, first))

    out = sys.stdout.buffer
    prefix = args.prefix if args.prefix is not None else bool(args.selector)
    printer = logs_follow.Printer(out, prefix=prefix, colour=prefix and out.isatty())
    if args.follow and args.selector:
        follower = logs_follow.SelectorFollower(open_stream, printer, containers_of,
                                                args.max_log_requests)
        try:
            logs_follow.follow_selector(session.rest, pods, namespace, args.selector,
                                        follower, time.sleep)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        return 0
    items = [pod] if pod is not None else sorted(
        session.rest.list_all(pods, namespace, args.selector)[0],
        key=lambda p: p["metadata"]["name"])
    if pod is None and not items:
        print(f"No resources found in {namespace} namespace.", file=sys.stderr)
        return 0
    targets = [(p["metadata"]["name"], c) for p in items for c in containers_of(p)]
    if args.follow:
        if len(targets) > 1 and len(targets) > args.max_log_requests:
            raise CommandError(logs_follow.too_many_streams(len(targets),
                                                            args.max_log_requests))
        logs_follow.follow_fixed(targets, open_stream, printer)
        return 0
    failed = logs_follow.read_one_by_one(targets, open_stream, printer)
    return 1 if failed else 0
