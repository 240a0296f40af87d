"""`steer cluster ...` and `steer node join|remove`: clusters on machines reached over SSH.

The verbs live in cli/baremetal/commands.py; the order of a create in orchestrate.py;
what happens on one host in hostops.py (over agent/provision); the waits in health.py;
the PKI in credentials.py. `steer up/down/status` (cli/cluster_cmd.py) stay the local
cluster on this machine.
"""

from cli.baremetal import commands, nodes, upgrade


def add_create_flags(parser):
    """The flags of `steer cluster create` (and of restore, which is a create)."""
    parser.add_argument("--name", default="steersman", help="the cluster's name "
                        "(its files: ~/.steer/clusters/NAME)")
    parser.add_argument("--ssh", required=True, metavar="USER@HOST,...",
                        help="the control hosts: 1, 3 or 5 (store, API server, scheduler, "
                             "controller manager on each)")
    parser.add_argument("--workers", default="", metavar="USER@HOST,...",
                        help="hosts that only run workloads")
    parser.add_argument("--dedicated-control", action="store_true",
                        help="run no workloads (agent, containerd, proxy) on control hosts")
    parser.add_argument("--service-cidr", default="10.96.0.0/12")
    parser.add_argument("--pod-cidr", default="10.244.0.0/16")
    parser.add_argument("--wheelhouse", metavar="DIR",
                        help="install this wheelhouse (a build of `steer`'s release) instead "
                             "of building one from the checkout steer runs from")
    parser.add_argument("--sandbox-image", metavar="IMAGE",
                        help="the pause image containerd starts pods with")
    parser.add_argument("--registry-mirror", action="append", default=[],
                        metavar="REGISTRY=URL",
                        help="pull REGISTRY's images from URL (repeatable), e.g. "
                             "steer.local=http://10.0.0.254:5000")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                        help="seconds to wait for each part to answer")
    parser.add_argument("--keep-on-failure", action="store_true",
                        help="leave the hosts as they are when a create fails (default: "
                             "stop and remove what it installed)")
    commands.add_ssh_flags(parser)


def register(groups):
    """Add the `cluster` verb group to `steer`'s parser."""
    cluster = groups.add_parser(
        "cluster", help="a cluster on machines reached over SSH (create, status, destroy)")
    verbs = cluster.add_subparsers(dest="cluster_verb", metavar="VERB")
    verbs.required = True

    create = verbs.add_parser(
        "create", help="install and start a cluster on bare hosts (again: changes nothing)")
    add_create_flags(create)
    create.set_defaults(func=commands.cmd_create)
    restore = verbs.add_parser(
        "restore", help="create the cluster on fresh hosts from a backup (its PKI must "
                        "still be in ~/.steer/clusters/NAME)")
    add_create_flags(restore)
    restore.add_argument("--from", dest="restore_from", required=True, metavar="FILE",
                         help="a snapshot written by `steer cluster backup`")
    restore.set_defaults(func=commands.cmd_create)

    backup = verbs.add_parser("backup", help="save a store snapshot on this machine")
    backup.add_argument("--name", default="steersman")
    backup.add_argument("--file", help="where (default: ~/.steer/clusters/NAME/backups/)")
    commands.add_ssh_flags(backup)
    backup.set_defaults(func=commands.cmd_backup)

    status = verbs.add_parser("status", help="every host's services and every node")
    status.add_argument("--name", default="steersman")
    commands.add_ssh_flags(status)
    status.set_defaults(func=commands.cmd_status)

    destroy = verbs.add_parser(
        "destroy", help="stop every service and remove what create installed, data included")
    destroy.add_argument("--name", default="steersman")
    destroy.add_argument("-y", "--yes", action="store_true", help="do not ask")
    destroy.add_argument("--purge", action="store_true",
                         help="also delete ~/.steer/clusters/NAME (its CA and kubeconfig)")
    commands.add_ssh_flags(destroy)
    destroy.set_defaults(func=commands.cmd_destroy)

    up = verbs.add_parser(
        "upgrade", help="install a new release on every host, one at a time, store members "
                        "first, each waiting for health")
    up.add_argument("--name", default="steersman")
    up.add_argument("--version", help="the release's version label (default: this steer's)")
    up.add_argument("--wheelhouse", metavar="DIR",
                    help="install this wheelhouse instead of building one from the checkout")
    up.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS")
    up.add_argument("--mode", choices=("auto", "rolling", "together"), default="auto",
                    help="rolling: one host at a time; together: every store member stops "
                         "and all start on the new release (needed when the store's peer "
                         "protocol changes); auto (default): together only then")
    commands.add_ssh_flags(up)
    up.set_defaults(func=upgrade.cmd_upgrade)

    node = groups.add_parser(
        "node", help="add or remove a worker of a cluster made by `steer cluster create`")
    node_verbs = node.add_subparsers(dest="node_verb", metavar="VERB")
    node_verbs.required = True
    join = node_verbs.add_parser("join", help="install and start a worker on USER@HOST")
    join.add_argument("target", metavar="USER@HOST[:PORT]")
    join.add_argument("--name", default="steersman", help="the cluster's name")
    join.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS")
    join.add_argument("--keep-on-failure", action="store_true",
                      help="leave the new host as it is when the join fails")
    join.add_argument("--wheelhouse", metavar="DIR",
                      help="install this wheelhouse instead of building one")
    join.add_argument("--token-ttl", type=float, default=900.0, metavar="SECONDS",
                      help="life of the node's bootstrap token (deleted anyway once the "
                           "node is Ready)")
    join.add_argument("--issue-node-certificate", action="store_true",
                      help="issue the node's certificates on this machine with the cluster "
                           "CA instead of the default: a bootstrap token with which the "
                           "node asks for its own by CSRs")
    commands.add_ssh_flags(join)
    join.set_defaults(func=nodes.cmd_join)
    remove = node_verbs.add_parser(
        "remove", help="drain a worker, delete its Node, stop and remove its services")
    remove.add_argument("node", metavar="NAME")
    remove.add_argument("--name", default="steersman", help="the cluster's name")
    remove.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                        help="seconds to wait for the node's pods to go")
    commands.add_ssh_flags(remove)
    remove.set_defaults(func=nodes.cmd_remove)
