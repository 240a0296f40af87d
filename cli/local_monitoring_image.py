"""Build steer.local/steer-prometheus:<version>: Debian's Prometheus and its discovery sidecar.

No base image and no internet. The image holds this machine's ``/usr/bin/prometheus``
(Debian package ``prometheus``, a Go binary needing only libc) and, for the target
discovery sidecar (control/monitoring/discovery.py: Debian's Prometheus has no
kubernetes_sd_configs), this machine's Python cut down as cli/local_dns_image.py does:

    usr/bin/prometheus        the server (console templates and web assets left out: the
                              HTTP API and the rule engine need none of them)
    usr/local/bin/python3     the interpreter, the standard library modules the sidecar
    usr/local/lib/python3.11  imports, and control/{monitoring,client,objects}
    the shared libraries      at the paths ``ldd`` names (libc, libssl, the loader, ...)
    etc/passwd, etc/group     root and nobody
    prometheus/, tmp/

No entrypoint: the Deployment's two containers name their commands
(cli/local_monitoring.py). Cached in ``$STEER_IMAGE_CACHE`` keyed by the inputs' sizes
and times, so an unchanged input is not read again.
"""

import dataclasses
import importlib.metadata
import os
import shutil

from cli import local_dns_image, local_images
from cli.oci_layout import directory

VERSION = importlib.metadata.version("steersman")
PROMETHEUS_IMAGE = f"steer.local/steer-prometheus:{VERSION}"
BINARY = "/usr/bin/prometheus"
#: Standard library packages copied whole (imported lazily by the client's code paths).
WHOLE_PACKAGES = ("encodings", "asyncio", "concurrent", "json", "logging", "importlib", "email",
                  "http", "collections", "urllib")
#: Project packages the sidecar runs.
PROJECT_PACKAGES = ("control/monitoring", "control/client", "control/objects")
#: The modules the image runs (the closure of their imports goes in).
ENTRY_MODULES = ("control.monitoring.discovery", "control.client.incluster")


def unavailable_reason():
    """Why the image cannot be built here (None: it can)."""
    if not shutil.which("prometheus") and not os.path.exists(BINARY):
        return "prometheus is not installed: install it with `apt-get install prometheus`"
    return None


def build_prometheus(cache=None):
    """The steer-prometheus image as an ImageArchive (cached; rebuilt when an input changed)."""
    reason = unavailable_reason()
    if reason:
        raise local_images.ImageError(reason)
    files = plan()
    return local_dns_image.build_cached(
        PROMETHEUS_IMAGE, files, layer(files), image_config(files),
        ["steer-prometheus: Debian's prometheus binary"], cache)


def plan():
    """{path in the image: file on this machine}: Prometheus, Python and the sidecar."""
    files = local_dns_image.python_files(ENTRY_MODULES, WHOLE_PACKAGES, PROJECT_PACKAGES,
                                         "the discovery sidecar")
    binary = os.path.realpath(shutil.which("prometheus") or BINARY)
    files["usr/bin/prometheus"] = binary
    for library, source in local_dns_image.shared_libraries([binary]).items():
        files[library.lstrip("/")] = source
    return files


def layer(files):
    """The layer: as the DNS image's (python3 link, /etc, /tmp) plus /prometheus."""
    return local_dns_image.layer(files) + [directory("prometheus", mode=0o755)]


def image_config(files):
    config = local_dns_image.image_config(files)
    return dataclasses.replace(
        config, entrypoint=(), env=tuple(e if not e.startswith("PATH=") else
                                         f"PATH=/{local_dns_image.PREFIX}/bin:/usr/bin:/bin"
                                         for e in config.env),
        labels={"org.opencontainers.image.title": "steer-prometheus",
                "org.opencontainers.image.version": VERSION})
