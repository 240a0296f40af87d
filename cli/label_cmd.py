"""`steer label` and `steer annotate`: KEY=VALUE sets, KEY- removes, --overwrite to change."""

import json

from cli.errors import CommandError
from cli.kube import Session, add_connection_flags, display_name, parse_targets
from control.client import errors as api_errors


def register(groups):
    for verb, what in (("label", "labels"), ("annotate", "annotations")):
        parser = groups.add_parser(verb, help=f"update the {what} of objects")
        add_connection_flags(parser, all_namespaces=True)
        parser.add_argument("words", nargs="+", metavar="TYPE NAME|TYPE/NAME KEY=VAL|KEY-")
        parser.add_argument("--overwrite", action="store_true",
                            help=f"allow changing existing {what}")
        parser.add_argument("--all", action="store_true", help="every object of the type")
        parser.add_argument("-l", "--selector", help="objects matching this label selector")
        parser.add_argument("--list", action="store_true", help=f"print the {what}")
        parser.set_defaults(func=cmd_label, field=what, verb=verb)


def split_changes(words):
    """Split arguments into (targets, {key: value}, [removed keys])."""
    targets, sets, removes = [], {}, []
    for word in words:
        if "=" in word:
            key, _, value = word.partition("=")
            if not key:
                raise CommandError(f"invalid label spec: {word}")
            sets[key] = value
        elif word.endswith("-") and "/" not in word.rstrip("-").split(".")[-1] and targets:
            removes.append(word[:-1])
        else:
            if sets or removes:
                raise CommandError(f"all resources must be specified before changes: {word}")
            targets.append(word)
    return targets, sets, removes


def cmd_label(args):
    targets, sets, removes = split_changes(args.words)
    session = Session(args)
    if not sets and not removes and not args.list:
        raise CommandError(f"at least one {args.field[:-1]} update is required")
    objects = []
    for type_name, name in parse_targets(targets):
        resource = session.resolve(type_name)
        if name is not None:
            objects.append((resource, session.namespace_for(resource), name))
        elif args.all or args.selector:
            namespace = None if session.all_namespaces else session.namespace_for(resource)
            items, _ = session.rest.list_all(resource, namespace, args.selector)
            objects.extend((resource, i["metadata"].get("namespace"), i["metadata"]["name"])
                           for i in items)
        else:
            raise CommandError("resource(s) were provided, but no name was specified")
    for resource, namespace, name in objects:
        live = session.rest.get(resource, namespace, name)
        current = (live.get("metadata") or {}).get(args.field) or {}
        if args.list:
            for key, value in sorted(current.items()):
                print(f"{key}={value}")
            continue
        if not args.overwrite:
            for key, value in sets.items():
                if key in current and current[key] != value:
                    raise CommandError(f"'{key}' already has a value ({current[key]}), and "
                                       "--overwrite is false")
        for key in removes:
            if key not in current:
                print(f"{args.verb.replace('annotate', 'annotation')} \"{key}\" not found.")
        change = {**sets, **{k: None for k in removes}}
        unchanged = all(current.get(k) == v for k, v in sets.items()) and \
            all(k not in current for k in removes)
        patch = {"metadata": {args.field: change,
                              "resourceVersion": live["metadata"].get("resourceVersion")}}
        if not unchanged:
            try:
                session.rest.patch(resource, namespace, name, json.loads(json.dumps(patch)),
                                   patch_type="merge")
            except api_errors.Conflict as exc:
                raise CommandError(f"{display_name(resource, name)} changed while being "
                                   "updated: try again") from exc
        word = "labeled" if args.verb == "label" else "annotated"
        print(f"{display_name(resource, name)} {'not ' + word if unchanged else word}")
    return 0
