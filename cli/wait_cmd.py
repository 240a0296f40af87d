"""`steer wait --for=condition=C|delete|jsonpath=... TYPE/NAME`: block until true.

As kubectl: each object is checked in turn, "<kind>/<name> condition met" is printed
when it holds, and the command fails with "timed out waiting for the condition on
..." after --timeout (default 30s).
"""

import time

from cli import jsonpath
from cli.errors import CommandError
from cli.kube import Session, add_connection_flags, parse_targets
from cli.output import kind_prefix
from control.client import errors as api_errors


def register(groups):
    wait = groups.add_parser("wait", help="wait for a condition on objects")
    add_connection_flags(wait, all_namespaces=True)
    wait.add_argument("targets", nargs="*", metavar="TYPE[/NAME] [NAME...]")
    wait.add_argument("--for", dest="condition", required=True,
                      help="condition=NAME[=VALUE], delete, or jsonpath={PATH}=VALUE")
    wait.add_argument("--timeout", default="30s", help="e.g. 30s, 5m (default 30s)")
    wait.add_argument("-l", "--selector", help="every object matching this label selector")
    wait.add_argument("--all", action="store_true", help="every object of the type")
    wait.set_defaults(func=cmd_wait)


def parse_duration(text):
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text[-1:] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise CommandError(f"invalid --timeout {text!r}: use e.g. 30s or 5m") from None


def predicate(spec):
    """A function obj-or-None -> bool for a --for value."""
    if spec == "delete":
        return lambda obj: obj is None
    kind, _, rest = spec.partition("=")
    if kind == "condition" and rest:
        name, _, wanted = rest.partition("=")
        wanted = wanted or "True"

        def has_condition(obj):
            for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
                if cond.get("type", "").lower() == name.lower():
                    return str(cond.get("status", "")).lower() == wanted.lower()
            return False
        return has_condition
    if kind == "jsonpath" and rest:
        path, sep, wanted = rest.rpartition("=")
        if not sep or not path:
            raise CommandError("jsonpath wait format must be --for=jsonpath='{.status.x}'=value")
        path = path.strip("'")
        if path.startswith("{") and path.endswith("}"):
            path = path[1:-1]
        return lambda obj: obj is not None and any(
            jsonpath.text_of(v) == wanted for v in jsonpath.evaluate(path, obj, obj))
    raise CommandError(f"unrecognized condition: {spec!r}")


def cmd_wait(args):
    test = predicate(args.condition)
    deadline = time.monotonic() + parse_duration(args.timeout)
    session = Session(args)
    objects = []
    for type_name, name in parse_targets(args.targets):
        resource = session.resolve(type_name)
        if name is not None:
            objects.append((resource, session.namespace_for(resource), name))
            continue
        if not (args.selector or args.all):
            raise CommandError("resource(s) were provided, but no name was specified")
        namespace = None if session.all_namespaces else session.namespace_for(resource)
        items, _ = session.rest.list_all(resource, namespace, args.selector)
        objects.extend((resource, i["metadata"].get("namespace"), i["metadata"]["name"])
                       for i in items)
    if not objects:
        raise CommandError("no matching resources found")
    for resource, namespace, name in objects:
        while True:
            try:
                obj = session.rest.get(resource, namespace, name)
            except api_errors.NotFound:
                if args.condition != "delete":
                    raise
                obj = None
            if test(obj):
                print(f"{kind_prefix(resource)}/{name} condition met", flush=True)
                break
            if time.monotonic() > deadline:
                raise CommandError(f"timed out waiting for the condition on "
                                   f"{resource.plural}/{name}")
            time.sleep(0.25)
    return 0
