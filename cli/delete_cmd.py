"""`steer delete`: by name, by manifest, by selector or --all; waits until gone, as kubectl."""

import sys
import time

from cli import manifests
from cli.apply_cmd import resource_of
from cli.errors import CommandError, describe_api_error
from cli.kube import Session, add_connection_flags, parse_targets
from cli.output import kind_prefix
from control.client import errors as api_errors

CASCADE = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan",
           "true": "Background", "false": "Orphan"}


def register(groups):
    delete = groups.add_parser("delete", help="delete objects by name, manifest or selector")
    add_connection_flags(delete, all_namespaces=True)
    delete.add_argument("targets", nargs="*", metavar="TYPE[/NAME] [NAME...]")
    delete.add_argument("-f", "--filename", action="append", help="file, directory or -")
    delete.add_argument("-R", "--recursive", action="store_true")
    delete.add_argument("-l", "--selector", help="delete objects matching this label selector")
    delete.add_argument("--all", action="store_true", help="every object of the type")
    delete.add_argument("--grace-period", type=int, default=-1,
                        help="seconds to let pods stop (-1: the object's own default)")
    delete.add_argument("--now", action="store_true", help="same as --grace-period=1")
    delete.add_argument("--force", action="store_true",
                        help="with --grace-period=0: delete at once, not waiting for the node")
    delete.add_argument("--cascade", default="background", choices=sorted(CASCADE),
                        help="what happens to dependents (default background)")
    delete.add_argument("--wait", default="true", choices=("true", "false"),
                        help="wait until the objects are gone (default true)")
    delete.add_argument("--timeout", type=float, default=0,
                        help="give up waiting after this many seconds (0: a week)")
    delete.add_argument("--ignore-not-found", action="store_true")
    delete.set_defaults(func=cmd_delete)


def _victims(session, args):
    """[(resource, namespace, name)] to delete."""
    if args.filename:
        if args.targets:
            raise CommandError("no need to pass a resource type with -f")
        found = []
        for manifest in manifests.read(args.filename, args.recursive):
            resource = resource_of(session, manifest)
            found.append((resource, session.namespace_for(resource, manifest.obj),
                          manifest.name))
        return found
    pairs = parse_targets(args.targets)
    found = []
    for type_name, name in pairs:
        resource = session.resolve(type_name)
        if name is not None:
            if args.selector or args.all:
                raise CommandError("name cannot be provided when a selector or --all is given")
            found.append((resource, session.namespace_for(resource), name))
            continue
        if not (args.selector or args.all):
            raise CommandError("resource(s) were provided, but no name was specified")
        namespace = None if session.all_namespaces else session.namespace_for(resource)
        items, _ = session.rest.list_all(resource, namespace, args.selector)
        found.extend((resource, (i["metadata"].get("namespace") if resource.namespaced else None),
                      i["metadata"]["name"]) for i in items)
    return found


def cmd_delete(args):
    session = Session(args)
    if not args.targets and not args.filename:
        raise CommandError("You must provide one or more resources by argument or filename.")
    grace = 1 if args.now else (args.grace_period if args.grace_period >= 0 else None)
    if args.force and grace == 0:
        print("Warning: Immediate deletion does not wait for confirmation that the running "
              "resource has been terminated. The resource may continue to run on the cluster "
              "indefinitely.", file=sys.stderr)
    victims = _victims(session, args)
    if not victims and not args.filename:
        print("No resources found", file=sys.stderr)
        return 0
    deleted, failed = [], False
    for resource, namespace, name in victims:
        try:
            answer = session.rest.delete(resource, namespace, name, grace_period_seconds=grace,
                                         propagation_policy=CASCADE[args.cascade])
        except api_errors.NotFound as exc:
            if not args.ignore_not_found:
                print(describe_api_error(exc), file=sys.stderr)
                failed = True
            continue
        uid = ((answer or {}).get("metadata") or {}).get("uid") if isinstance(answer, dict) else None
        print(f"{kind_prefix(resource)} \"{name}\" deleted", flush=True)
        deleted.append((resource, namespace, name, uid))
    if args.wait == "true" and deleted:
        wait_gone(session, deleted, args.timeout or 7 * 24 * 3600)
    return 1 if failed else 0


def wait_gone(session, objects, timeout):
    """Block until every (resource, namespace, name, uid) is gone (or replaced by a new uid)."""
    deadline = time.monotonic() + timeout
    pending = list(objects)
    while pending:
        left = []
        for resource, namespace, name, uid in pending:
            try:
                live = session.rest.get(resource, namespace, name)
            except api_errors.NotFound:
                continue
            if uid and live.get("metadata", {}).get("uid") != uid:
                continue
            left.append((resource, namespace, name, uid))
        pending = left
        if not pending:
            return
        if time.monotonic() > deadline:
            names = ", ".join(f"{kind_prefix(r)}/{n}" for r, _, n, _ in pending)
            raise CommandError(f"timed out waiting for the condition on {names}")
        time.sleep(0.25)
