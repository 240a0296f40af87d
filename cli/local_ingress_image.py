"""Build steer.local/steer-ingress:<version>: Debian's nginx and the Ingress controller.

No base image and no internet. The image holds this machine's nginx (Debian
package ``nginx``, built with the SSL module) and the controller that drives it
(control/addons/ingress), on this machine's Python cut down as
cli/local_dns_image.py does:

    usr/sbin/nginx            the proxy; no dynamic modules (the rendered
                              configuration loads none)
    etc/nginx/mime.types      the types table nginx.conf includes
    usr/local/bin/python3     the interpreter, the standard library modules the
    usr/local/lib/python3.11  controller imports, and control/{addons/ingress,client,objects}
    the shared libraries      of both, at the paths ``ldd`` names (libc, libssl, libpcre2...)
    etc/passwd, etc/group     root, and nobody/nogroup for nginx's workers
    run/, tmp/

Entrypoint ``python3 -m control.addons.ingress``. Cached in ``$STEER_IMAGE_CACHE``
keyed by the inputs' sizes and times, so an unchanged input is not read again.
"""

import dataclasses
import importlib.metadata
import os
import shutil

from cli import local_dns_image, local_images
from cli.oci_layout import directory, regular_file

VERSION = importlib.metadata.version("steersman")
INGRESS_IMAGE = f"steer.local/steer-ingress:{VERSION}"
NGINX = "/usr/sbin/nginx"
MIME_TYPES = "/etc/nginx/mime.types"
#: Standard library packages copied whole (imported lazily by the client's code paths).
WHOLE_PACKAGES = ("encodings", "json", "logging", "importlib", "email", "http", "collections",
                  "urllib", "concurrent")
PROJECT_PACKAGES = ("control/addons", "control/client", "control/objects")
#: The modules the image runs (the closure of their imports goes in).
ENTRY_MODULES = ("control.addons.ingress.__main__", "control.client.incluster")


def nginx_binary():
    return shutil.which("nginx") or (NGINX if os.path.exists(NGINX) else None)


def unavailable_reason():
    """Why the image cannot be built here (None: it can)."""
    if not nginx_binary():
        return "nginx is not installed: install it with `apt-get install nginx` " \
               "(or `make deb-packages`)"
    if not os.path.exists(MIME_TYPES):
        return f"{MIME_TYPES} is missing: reinstall the Debian package nginx-common"
    return None


def build_ingress(cache=None):
    """The steer-ingress image as an ImageArchive (cached; rebuilt when an input changed)."""
    reason = unavailable_reason()
    if reason:
        raise local_images.ImageError(reason)
    files = plan()
    return local_dns_image.build_cached(
        INGRESS_IMAGE, files, layer(files), image_config(files),
        ["steer-ingress: Debian's nginx, control/addons/ingress"], cache)


def plan():
    """{path in the image: file on this machine}: nginx, mime.types, Python, the controller."""
    files = local_dns_image.python_files(ENTRY_MODULES, WHOLE_PACKAGES, PROJECT_PACKAGES,
                                         "the Ingress controller")
    binary = os.path.realpath(nginx_binary())
    files["usr/sbin/nginx"] = binary
    files["etc/nginx/mime.types"] = os.path.realpath(MIME_TYPES)
    for library, source in local_dns_image.shared_libraries([binary]).items():
        files[library.lstrip("/")] = source
    return files


def layer(files):
    """The DNS image's layer (python3 link, /tmp) with nogroup added, and /run."""
    entries = [e for e in local_dns_image.layer(files)
               if getattr(e, "path", None) not in ("etc/passwd", "etc/group")]
    return entries + [
        regular_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                     b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        regular_file("etc/group", b"root:x:0:\nnogroup:x:65534:\n"),
        directory("run", mode=0o755)]


def image_config(files):
    config = local_dns_image.image_config(files)
    return dataclasses.replace(
        config, entrypoint=(f"/{local_dns_image.PREFIX}/bin/python3", "-m",
                            "control.addons.ingress"),
        labels={"org.opencontainers.image.title": "steer-ingress",
                "org.opencontainers.image.version": VERSION})
