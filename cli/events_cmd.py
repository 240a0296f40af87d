"""`steer events`: Events sorted by when they last happened, in kubectl's columns."""

import sys
from datetime import datetime, timezone

from cli import output
from cli.errors import CommandError
from cli.kube import Session, add_connection_flags

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def register(groups):
    events = groups.add_parser("events", help="list events, oldest first")
    add_connection_flags(events, all_namespaces=True)
    events.add_argument("--for", dest="for_object", metavar="TYPE/NAME",
                        help="only events about this object")
    events.add_argument("--types", help="only these types, e.g. Warning or Normal,Warning")
    events.add_argument("-w", "--watch", action="store_true", help="then print new events")
    events.add_argument("--no-headers", action="store_true")
    events.set_defaults(func=cmd_events)


def last_seen(event):
    """When an event last happened: lastTimestamp, eventTime, firstTimestamp or creation."""
    for value in (event.get("lastTimestamp"), event.get("eventTime"),
                  (event.get("series") or {}).get("lastObservedTime"),
                  event.get("firstTimestamp"),
                  (event.get("metadata") or {}).get("creationTimestamp")):
        when = output.parse_time(value)
        if when is not None:
            return when
    return EPOCH


def first_seen(event):
    for value in (event.get("firstTimestamp"), event.get("eventTime"),
                  (event.get("metadata") or {}).get("creationTimestamp")):
        when = output.parse_time(value)
        if when is not None:
            return when
    return last_seen(event)


def last_seen_text(event, now):
    text = output.human_duration((now - last_seen(event)).total_seconds())
    count = event.get("count") or (event.get("series") or {}).get("count") or 1
    if count > 1:
        over = output.human_duration((now - first_seen(event)).total_seconds())
        return f"{text} (x{count} over {over})"
    return text


def event_row(event, now, with_namespace):
    involved = event.get("involvedObject") or event.get("regarding") or {}
    row = [last_seen_text(event, now), event.get("type", ""), event.get("reason", ""),
           f"{involved.get('kind', '')}/{involved.get('name', '')}",
           (event.get("message") or event.get("note") or "").strip()]
    if with_namespace:
        row.insert(0, (event.get("metadata") or {}).get("namespace", ""))
    return row


HEADER = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]


def _field_selector(session, for_object):
    if not for_object:
        return None
    type_name, _, name = for_object.partition("/")
    if not name:
        raise CommandError("--for must be TYPE/NAME, e.g. pod/web-1")
    resource = session.resolve(type_name)
    return f"involvedObject.kind={resource.kind},involvedObject.name={name}"


def cmd_events(args):
    session = Session(args)
    events_resource = session.resolve("events")
    namespace = None if session.all_namespaces else session.namespace
    selector = _field_selector(session, args.for_object)
    types = {t.strip().lower() for t in args.types.split(",")} if args.types else None
    listing = session.rest.list(events_resource, namespace, field_selector=selector)
    items = [e for e in listing.get("items") or []
             if types is None or (e.get("type") or "").lower() in types]
    items.sort(key=last_seen)
    now = datetime.now(timezone.utc)
    header = (["NAMESPACE"] if session.all_namespaces else []) + HEADER
    rows = [] if args.no_headers else [header]
    rows.extend(event_row(e, now, session.all_namespaces) for e in items)
    widths = []
    if items:
        print("\n".join(output.columns_growing(rows, widths)), flush=True)
    elif not args.watch:
        where = "" if session.all_namespaces else f" in {session.namespace} namespace"
        print(f"No events found{where}.", file=sys.stderr)
    if args.watch:
        version = listing["metadata"].get("resourceVersion")
        with session.rest.watch(events_resource, namespace, version,
                                field_selector=selector) as watch:
            for event_type, event in watch:
                if event_type not in ("ADDED", "MODIFIED"):
                    continue
                if types is not None and (event.get("type") or "").lower() not in types:
                    continue
                now = datetime.now(timezone.utc)
                row = event_row(event, now, session.all_namespaces)
                print("\n".join(output.columns_growing([row], widths)), flush=True)
    return 0
