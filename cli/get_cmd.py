"""`steer get`: list or fetch objects, printed from the server's Tables or as yaml/json/name."""

import sys

from cli import jsonpath, output
from cli.errors import CommandError, describe_api_error
from cli.kube import Session, add_connection_flags, parse_targets
from control.client import errors as api_errors

OUTPUTS = ("wide", "yaml", "json", "name")


def register(groups):
    get = groups.add_parser("get", help="display one or many resources")
    add_connection_flags(get, all_namespaces=True)
    get.add_argument("targets", nargs="*", metavar="TYPE[/NAME] [NAME...]")
    get.add_argument("-o", "--output", metavar="FORMAT",
                     help="wide, yaml, json, name, jsonpath=TEMPLATE or custom-columns=SPEC")
    get.add_argument("-l", "--selector", help="label selector (e.g. app=web,tier!=db)")
    get.add_argument("--field-selector", help="field selector (e.g. status.phase=Running)")
    get.add_argument("-w", "--watch", action="store_true", help="after listing, watch for changes")
    get.add_argument("--watch-only", action="store_true", help="watch without listing first")
    get.add_argument("--no-headers", action="store_true", help="print no header row")
    get.add_argument("--show-labels", action="store_true", help="show labels as the last column")
    get.set_defaults(func=cmd_get)


def expand_targets(session, words):
    """[(Resource, name-or-None)] for get's arguments, `all` expanded to its category."""
    expanded = []
    for type_name, name in parse_targets(words):
        if type_name == "all" and name is None:
            expanded.extend((r, None) for r in session.discovery.by_category("all"))
        else:
            expanded.append((session.resolve(type_name), name))
    return expanded


def check_output(value):
    """Validate -o; return (format, argument) such as ("jsonpath", "{.metadata.name}")."""
    if value is None or value in OUTPUTS:
        return value, None
    kind, sep, argument = value.partition("=")
    if sep and kind in ("jsonpath", "custom-columns") and argument:
        return kind, argument
    raise CommandError(f"unable to match a printer suitable for the output format "
                       f"\"{value}\", allowed formats are: custom-columns=..., json, "
                       "jsonpath=..., name, wide, yaml")


def cmd_get(args):
    fmt, template = check_output(args.output)
    session = Session(args)
    targets = expand_targets(session, args.targets)
    if template is not None:
        if args.watch or args.watch_only:
            raise CommandError(f"--watch is not supported with -o {fmt}")
        return _print_template(session, args, targets, fmt, template)
    if args.watch or args.watch_only:
        return _watch(session, args, targets)
    if args.output in ("yaml", "json", "name"):
        return _print_objects(session, args, targets)
    return _print_tables(session, args, targets)


def _namespace(session, resource):
    if not resource.namespaced or session.all_namespaces:
        return None
    return session.namespace


def _groups(targets):
    """Targets grouped by resource, keeping order: [(resource, [names] or None)]."""
    groups = []
    for resource, name in targets:
        if groups and groups[-1][0] == resource and name is not None and groups[-1][1]:
            groups[-1][1].append(name)
        else:
            groups.append((resource, [name] if name is not None else None))
    return groups


def _print_tables(session, args, targets):
    groups = _groups(targets)
    several = len({r for r, _ in groups}) > 1
    printed_any, failures = False, []
    for resource, names in groups:
        namespace = _namespace(session, resource)
        with_ns = session.all_namespaces and resource.namespaced
        tables = []
        if names:
            for name in names:
                try:
                    tables.append(session.rest.table(resource, session.namespace_for(resource),
                                                     name))
                except api_errors.NotFound as exc:
                    failures.append(exc)
        else:
            tables.append(session.rest.table(resource, namespace, None, args.selector,
                                             args.field_selector))
        rows, first = [], True
        for table in tables:
            if not table.get("rows"):
                continue
            if args.show_labels:
                _add_labels(table)
            rows.extend(output.table_rows(
                table, wide=args.output == "wide", with_namespace=with_ns,
                name_prefix=output.kind_prefix(resource) if several else None,
                headers=first and not args.no_headers))
            first = False
        if rows:
            if printed_any:
                print()
            print("\n".join(output.columns(rows)))
            printed_any = True
    for exc in failures:
        print(describe_api_error(exc), file=sys.stderr)
    if not printed_any and not failures:
        _no_resources(session, groups)
    return 1 if failures else 0


def _add_labels(table):
    table.setdefault("columnDefinitions", []).append(
        {"name": "Labels", "type": "string", "format": "", "priority": 0})
    for row in table.get("rows") or []:
        labels = ((row.get("object") or {}).get("metadata") or {}).get("labels") or {}
        text = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"
        row["cells"] = list(row.get("cells") or []) + [text]


def _no_resources(session, groups):
    namespaced = any(r.namespaced for r, _ in groups)
    if session.all_namespaces or not namespaced:
        print("No resources found", file=sys.stderr)
    else:
        print(f"No resources found in {session.namespace} namespace.", file=sys.stderr)


def fetch_objects(session, resource, names, selector=None, field_selector=None):
    """Full objects (with apiVersion and kind set) for names, or the whole listing."""
    if names:
        objs = [session.rest.get(resource, session.namespace_for(resource), n) for n in names]
    else:
        objs, _ = session.rest.list_all(resource, _namespace(session, resource),
                                        selector, field_selector)
    for obj in objs:
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
    return objs


def _print_objects(session, args, targets):
    groups = _groups(targets)
    objects, pairs = [], []
    for resource, names in groups:
        for obj in fetch_objects(session, resource, names, args.selector, args.field_selector):
            objects.append(obj)
            pairs.append((resource, obj))
    if args.output == "name":
        for resource, obj in pairs:
            print(output.name_line(resource, obj))
        if not pairs:
            _no_resources(session, groups)
        return 0
    single = len(groups) == 1 and groups[0][1] is not None and len(groups[0][1]) == 1
    if not objects and not single:
        if args.output == "yaml":
            print(output.to_yaml(output.as_list([])).rstrip("\n"))
        else:
            print(output.to_json(output.as_list([])))
        return 0
    print(output.render_objects(objects, args.output, single=single))
    return 0


def _print_template(session, args, targets, fmt, template):
    groups = _groups(targets)
    objects = []
    for resource, names in groups:
        objects.extend(fetch_objects(session, resource, names, args.selector,
                                     args.field_selector))
    single = len(groups) == 1 and groups[0][1] is not None and len(groups[0][1]) == 1
    if fmt == "jsonpath":
        data = objects[0] if single and objects else output.as_list(objects)
        sys.stdout.write(jsonpath.render(template, data))
        sys.stdout.flush()
        return 0
    rows = jsonpath.custom_columns(template, objects)
    if args.no_headers:
        rows = rows[1:]
    if len(rows) > (0 if args.no_headers else 1):
        print("\n".join(output.columns(rows)))
    else:
        _no_resources(session, groups)
    return 0


def _watch(session, args, targets):
    if len({r for r, _ in targets}) != 1:
        raise CommandError("you may only specify a single resource type with --watch")
    resource = targets[0][0]
    names = {n for _, n in targets if n}
    if len(names) > 1:
        raise CommandError("watch is only supported on individual resources and resource "
                           "collections, but multiple resources were found")
    field_selector = args.field_selector
    if names:
        only = f"metadata.name={next(iter(names))}"
        field_selector = f"{field_selector},{only}" if field_selector else only
    namespace = _namespace(session, resource)
    with_ns = session.all_namespaces and resource.namespaced
    wide = args.output == "wide"
    table = session.rest.table(resource, namespace, None, args.selector, field_selector)
    version = table.get("metadata", {}).get("resourceVersion")
    definitions = table.get("columnDefinitions") or []
    header = not args.no_headers
    widths = []
    if not args.watch_only and table.get("rows"):
        _emit(session, args, resource, table, wide, with_ns, header, widths)
        header = False
    elif not args.watch_only:
        _no_resources(session, [(resource, None)])
    watch = session.rest.watch_table(resource, namespace, version, args.selector,
                                     field_selector)
    with watch:
        for event_type, obj in watch:
            if event_type == "ERROR":
                raise CommandError((obj or {}).get("message", "watch failed"))
            if event_type == "BOOKMARK" or obj.get("kind") != "Table":
                continue
            obj["columnDefinitions"] = obj.get("columnDefinitions") or definitions
            if args.output in ("yaml", "json", "name"):
                for row in obj.get("rows") or []:
                    item = row.get("object") or {}
                    if args.output == "name":
                        print(output.name_line(resource, item), flush=True)
                    elif args.output == "yaml":
                        print("---\n" + output.to_yaml(item).rstrip("\n"), flush=True)
                    else:
                        print(output.to_json(item), flush=True)
                continue
            _emit(session, args, resource, obj, wide, with_ns, header, widths)
            header = False
    return 0


def _emit(session, args, resource, table, wide, with_ns, header, widths):
    if args.output in ("yaml", "json", "name"):
        for row in table.get("rows") or []:
            item = row.get("object") or {}
            item.setdefault("apiVersion", resource.api_version)
            item.setdefault("kind", resource.kind)
            text = (output.name_line(resource, item) if args.output == "name"
                    else output.render_objects([item], args.output, single=True))
            print(text, flush=True)
        return
    rows = output.table_rows(table, wide=wide, with_namespace=with_ns, headers=header)
    print("\n".join(output.columns_growing(rows, widths)), flush=True)
