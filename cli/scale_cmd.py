"""`steer scale`: set replicas through the scale subresource, as kubectl does."""

from cli.errors import CommandError
from cli.kube import Session, add_connection_flags, display_name, parse_targets


def register(groups):
    scale = groups.add_parser("scale", help="set the replicas of a deployment, replicaset "
                                            "or statefulset")
    add_connection_flags(scale)
    scale.add_argument("targets", nargs="+", metavar="TYPE/NAME | TYPE NAME")
    scale.add_argument("--replicas", type=int, required=True, help="the new replica count")
    scale.add_argument("--current-replicas", type=int, default=-1,
                       help="only scale if the replicas are now this many")
    scale.set_defaults(func=cmd_scale)


def cmd_scale(args):
    if args.replicas < 0:
        raise CommandError("The --replicas=COUNT flag is required, and COUNT must be "
                           "greater than or equal to 0")
    session = Session(args)
    for type_name, name in parse_targets(args.targets):
        if name is None:
            raise CommandError("resource(s) were provided, but no name was specified")
        resource = session.resolve(type_name)
        if resource.plural not in ("deployments", "replicasets", "statefulsets",
                                   "replicationcontrollers"):
            raise CommandError(f"cannot scale {resource.qualified}: it has no scale subresource")
        namespace = session.namespace_for(resource)
        scale = session.rest.get_scale(resource, namespace, name)
        current = (scale.get("spec") or {}).get("replicas", 0)
        if args.current_replicas >= 0 and current != args.current_replicas:
            raise CommandError(f"Expected replicas to be {args.current_replicas}, "
                               f"was {current}")
        scale.setdefault("spec", {})["replicas"] = args.replicas
        session.rest.update_scale(resource, namespace, name, scale)
        print(f"{display_name(resource, name)} scaled")
    return 0
