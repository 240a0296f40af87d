"""`steer image import FILE.tar` and `steer image ls`: images on the local cluster's nodes.

As `kind load image-archive` does, import loads an image archive (docker-archive from
`docker save` or skopeo, or an OCI archive) into the containerd of every node of the
local cluster, so a pod can run an image built with the user's own tools with no
registry (set imagePullPolicy: IfNotPresent or Never, or the node tries to pull it).
The nodes' containerd sockets are those `steer up` recorded in the cluster state
(``containerd``: node name -> {"socket": path}).
"""

import os
import sys

from cli import local_images
from cli.config import steer_home
from cli.errors import CommandError
from cli.local_cluster import LocalCluster
from cli.output import columns

BUILDERS = {"pause": local_images.build_pause, "busybox": local_images.build_busybox,
            "hello": local_images.build_hello}


def register(groups):
    image = groups.add_parser("image", help="load images into the local cluster's nodes")
    verbs = image.add_subparsers(dest="image_verb", metavar="VERB")
    verbs.required = True
    load = verbs.add_parser("import", help="load an image archive into every node "
                                           "(docker-archive or OCI archive)")
    load.add_argument("files", nargs="+", metavar="FILE.tar")
    load.add_argument("--node", action="append", default=[], metavar="NODE",
                      help="only this node (repeatable); default: every node")
    load.add_argument("--base-name", default="",
                      help="repository for OCI archives whose images are named by tag only")
    load.set_defaults(func=cmd_import)
    listing = verbs.add_parser("ls", help="list the images on each node")
    listing.add_argument("--node", action="append", default=[], metavar="NODE")
    listing.set_defaults(func=cmd_ls)
    build = verbs.add_parser("build", help="build the local images (pause, busybox, hello) "
                                           "into the image cache, with no internet")
    build.add_argument("names", nargs="*", metavar="IMAGE",
                       help=f"which ({', '.join(sorted(BUILDERS))}); default: all")
    build.set_defaults(func=cmd_build)


def node_sockets(home, only=()):
    """{node: containerd socket path} of the local cluster under ``home``, or CommandError."""
    cluster = LocalCluster(home)
    if not cluster.exists:
        raise CommandError(f"no local cluster under {cluster.home}: start one with `steer up`")
    recorded = cluster.state.get("containerd") or {}
    sockets = {node: (info or {}).get("socket") for node, info in recorded.items()}
    sockets = {node: path for node, path in sockets.items() if path}
    if not sockets:
        raise CommandError("the local cluster runs the process runtime (no containerd), "
                           "which does not use images: install containerd "
                           "(`apt-get install containerd runc`) and run `steer up` again")
    unknown = sorted(set(only) - set(sockets))
    if unknown:
        raise CommandError(f"no such node in the local cluster: {', '.join(unknown)} "
                           f"(nodes: {', '.join(sorted(sockets))})")
    return {node: sockets[node] for node in sorted(sockets) if not only or node in only}


def check_archive(path, base_name=""):
    """Raise CommandError unless ``path`` is an image archive whose images all have names."""
    if not os.path.isfile(path):
        raise CommandError(f"{path}: no such file")
    kind = local_images.archive_kind(path)
    names = local_images.archive_image_names(path)
    if kind == "oci-archive" and not base_name:
        partial = [name or "(none)" for name in names if _tag_only(name)]
        if partial:
            raise CommandError(
                f"{path} is an OCI archive naming its image by tag only ({', '.join(partial)}), "
                "so the nodes would file it under a made-up name: pass --base-name "
                "REPOSITORY, or write the archive with a full name "
                "(skopeo copy ... oci-archive:FILE.tar:REPOSITORY:TAG)")
    return kind, names


def _tag_only(name):
    """Is an OCI ref name just a tag ('latest'), not a reference ('steer.local/x:1')?"""
    return not name or ("/" not in name and ":" not in name)


def cmd_import(args, out=None):
    out = out or sys.stdout
    sockets = node_sockets(steer_home(), args.node)
    for path in args.files:
        check_archive(path, args.base_name)
    failed = []
    for path in args.files:
        for node, socket in sockets.items():
            try:
                names = local_images.import_archive(socket, path, base_name=args.base_name)
            except local_images.ImageError as exc:
                failed.append(node)
                print(f"{node}: {exc}", file=sys.stderr)
                continue
            print(f"{node}: imported {', '.join(names) or os.path.basename(path)}", file=out)
    if failed:
        raise CommandError(f"the import failed on {len(set(failed))} node(s): "
                           f"{', '.join(sorted(set(failed)))}")
    return 0


def cmd_ls(args, out=None):
    out = out or sys.stdout
    rows = [["NODE", "NAME", "SIZE"]]
    for node, socket in node_sockets(steer_home(), args.node).items():
        for name, size in local_images.list_images(socket):
            rows.append([node, name, size])
    for line in columns(rows):
        print(line, file=out)
    return 0


def cmd_build(args, out=None):
    """Build (or find in the cache) each image; print its name and docker-archive path."""
    out = out or sys.stdout
    unknown = sorted(set(args.names) - set(BUILDERS))
    if unknown:
        raise CommandError(f"no local image called {', '.join(unknown)}: "
                           f"choose from {', '.join(sorted(BUILDERS))}")
    rows = [["NAME", "ARCHIVE"]]
    for key in args.names or sorted(BUILDERS):
        image = BUILDERS[key]()
        rows.append([image.name, image.path])
    for line in columns(rows):
        print(line, file=out)
    return 0
