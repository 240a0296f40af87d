"""`steer api-resources`: what the server serves, from discovery, in kubectl's columns."""

from cli import output
from cli.kube import Session, add_connection_flags


def register(groups):
    parser = groups.add_parser("api-resources", help="list the resource types the server serves")
    add_connection_flags(parser)
    parser.add_argument("--namespaced", choices=("true", "false"),
                        help="only namespaced (true) or cluster-scoped (false) types")
    parser.add_argument("--api-group", help="only this group ('' for core)")
    parser.add_argument("-o", "--output", choices=("wide", "name"))
    parser.add_argument("--no-headers", action="store_true")
    parser.set_defaults(func=cmd_api_resources)
    version = groups.add_parser("version", help="print the client and server versions")
    add_connection_flags(version)
    version.add_argument("--client", action="store_true", help="the client's version only")
    version.set_defaults(func=cmd_version)


CLIENT_VERSION = "v0.1.0"     # setup.cfg's version


def cmd_version(args):
    """Like `kubectl version`: the client's, then the server's gitVersion from /version."""
    print(f"Client Version: {CLIENT_VERSION}")
    if args.client:
        return 0
    session = Session(args)
    info = session.rest.request("GET", "/version") or {}
    print(f"Server Version: {info.get('gitVersion', 'unknown')}")
    return 0


def cmd_api_resources(args):
    session = Session(args)
    discovery = session.discovery
    chosen = []
    for resource in discovery.resources():
        if args.namespaced and resource.namespaced != (args.namespaced == "true"):
            continue
        if args.api_group is not None and resource.group != args.api_group:
            continue
        chosen.append(resource)
    chosen.sort(key=lambda r: (r.group, r.plural))
    if args.output == "name":
        for r in chosen:
            print(f"{r.plural}.{r.group}" if r.group else r.plural)
        return 0
    header = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    if args.output == "wide":
        header += ["VERBS", "CATEGORIES"]
    rows = [] if args.no_headers else [header]
    for r in chosen:
        row = [r.plural, ",".join(r.short_names), r.api_version,
               "true" if r.namespaced else "false", r.kind]
        if args.output == "wide":
            row += [",".join(discovery.verbs.get(r, [])), ",".join(r.categories)]
        rows.append(row)
    print("\n".join(output.columns(rows)))
    return 0
