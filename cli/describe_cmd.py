"""`steer describe`: a readable page per object, laid out as kubectl's describers do.

Pods, Deployments, ReplicaSets, Services, Nodes and Namespaces have their own
pages; any other kind gets its fields as nested key/value lines. Every page ends
with the object's Events, oldest first. The page itself is cli.describe_page; the
per-kind describers are cli.describe_pods and cli.describe_kinds.
"""

import sys

from cli.describe_kinds import DESCRIBERS, NO_EVENTS, describe_generic
from cli.describe_page import Page, events_section, object_events
from cli.errors import describe_api_error
from cli.kube import Session, add_connection_flags, parse_targets
from control.client import errors as api_errors


def register(groups):
    describe = groups.add_parser("describe", help="show details of objects and their events")
    add_connection_flags(describe, all_namespaces=True)
    describe.add_argument("targets", nargs="+", metavar="TYPE[/NAME] [NAME...]")
    describe.add_argument("-l", "--selector", help="describe objects matching this selector")
    describe.add_argument("--show-events", default="true", choices=("true", "false"))
    describe.set_defaults(func=cmd_describe)


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
