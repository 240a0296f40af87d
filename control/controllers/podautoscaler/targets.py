"""Find the resource an HPA's scaleTargetRef names, and read its scale.

Built-in kinds come from the kinds table; a custom resource (a CRD with a scale
subresource) is found in the API server's discovery of its group/version, which is
read again at most every ``ttl`` seconds, as a RESTMapper's cache. Any resource
whose discovery lists ``<plural>/scale`` can be a target.
"""

import re
import threading
import time

from control.client import ApiException
from control.objects import kinds

#: group/version or a core version: what may go into a discovery path.
_API_VERSION = re.compile(r"(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9a-z]+")


class TargetError(Exception):
    """The target cannot be resolved or has no usable scale."""


class TargetResolver:
    """scaleTargetRef (apiVersion, kind) -> kinds.Resource, through discovery when needed."""

    def __init__(self, rest, ttl=30.0, clock=time.monotonic):
        self.rest, self.ttl, self.clock = rest, ttl, clock
        self._discovered = {}       # group/version -> (read at, {kind: Resource})
        self._lock = threading.Lock()

    def resolve(self, ref):
        api_version, kind = ref.get("apiVersion") or "", ref.get("kind") or ""
        found = kinds.by_api_version_kind(api_version, kind)
        if found is not None and "scale" in found.subresources:
            return found
        if not _API_VERSION.fullmatch(api_version):
            raise TargetError(f"invalid scaleTargetRef apiVersion {api_version!r}: want "
                              "group/version, such as apps/v1")
        found = self._discover(api_version).get(kind)
        if found is None:
            group = api_version.rpartition("/")[0]
            raise TargetError(f'no matches for kind "{kind}" in group "{group}"')
        return found

    def _discover(self, api_version):
        now = self.clock()
        with self._lock:
            cached = self._discovered.get(api_version)
            if cached is not None and now - cached[0] < self.ttl:
                return cached[1]
        path = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        try:
            listing = self.rest.request("GET", path) or {}
        except ApiException:
            listing = {}
        group, _, version = api_version.rpartition("/")
        entries = listing.get("resources") or []
        scalable = {e["name"].partition("/")[0] for e in entries
                    if e.get("name", "").endswith("/scale")}
        found = {e["kind"]: kinds.Resource(group, version, e["kind"], e["name"],
                                           bool(e.get("namespaced")), subresources=("scale",))
                 for e in entries if "/" not in e.get("name", "") and e.get("name") in scalable}
        with self._lock:
            self._discovered[api_version] = (now, found)
        return found
