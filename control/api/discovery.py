"""Discovery documents: /version, /api, /apis, /api/v1, /apis/{group}/{version}.

kubectl reads these before anything else (../shared/KUBECTL.md): the legacy
``APIVersions`` / ``APIGroupList`` / ``APIResourceList`` forms in plain JSON are
enough, and it then asks each group/version for its resources.
"""

import platform

from control import errors
from control.api import metrics_api
from control.objects import kinds

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-steersman.0.1.0",
           "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-11-22T00:00:00Z",
           "goVersion": "n/a", "compiler": "cpython",
           "platform": f"linux/{platform.machine()}"}


def api_versions():
    return {"kind": "APIVersions", "apiVersion": "v1", "versions": ["v1"],
            "serverAddressByClientCIDRs": []}


def api_group_list():
    groups, by_name = [], {}
    for group, version in kinds.group_versions():
        if not group:
            continue
        gv = {"groupVersion": f"{group}/{version}", "version": version}
        if group in by_name:    # a CRD's other versions, preferred one first (crd/model.py)
            by_name[group]["versions"].append(gv)
            continue
        by_name[group] = {"name": group, "versions": [gv], "preferredVersion": gv}
        groups.append(by_name[group])
    groups.append(metrics_api.group_entry())        # served by metrics_api.py, not stored
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(group):
    for entry in api_group_list()["groups"]:
        if entry["name"] == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **entry}
    raise errors.NotFound(f"the server could not find the requested resource (group {group})")


def resource_list(group, version):
    """The APIResourceList of one group/version, subresources included."""
    if (group, version) == (metrics_api.GROUP, metrics_api.VERSION):
        return metrics_api.resource_list()
    resources = kinds.resources_in(group, version)
    if not resources:
        raise errors.NotFound("the server could not find the requested resource "
                              f"({group + '/' if group else ''}{version})")
    entries = []
    for r in resources:
        entries.append({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
                        "kind": r.kind, "verbs": list(r.verbs),
                        **({"shortNames": list(r.short_names)} if r.short_names else {}),
                        **({"categories": list(r.categories)} if r.categories else {})})
        for sub in r.subresources:
            entries.append(_subresource_entry(r, sub))
    if (group, version) == ("", "v1"):
        # The older form of pods/binding: create-only, never listed or watched.
        entries.append({"name": "bindings", "singularName": "binding", "namespaced": True,
                        "kind": "Binding", "verbs": ["create"]})
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": r.api_version, "resources": entries}


def _subresource_entry(resource, sub):
    kind, verbs = resource.kind, ["get", "patch", "update"]
    if sub == "scale":
        return {"name": f"{resource.plural}/scale", "singularName": "", "group": "autoscaling",
                "version": "v1", "namespaced": resource.namespaced, "kind": "Scale",
                "verbs": verbs}
    if sub == "eviction":
        return {"name": f"{resource.plural}/eviction", "singularName": "", "group": "policy",
                "version": "v1", "namespaced": resource.namespaced, "kind": "Eviction",
                "verbs": ["create"]}
    if sub == "binding":
        kind, verbs = "Binding", ["create"]
    elif sub == "log":
        kind, verbs = "Pod", ["get"]
    elif sub in ("exec", "attach", "portforward"):
        kind = {"exec": "PodExecOptions", "attach": "PodAttachOptions",
                "portforward": "PodPortForwardOptions"}[sub]
        verbs = ["create", "get"]
    elif sub == "finalize":
        verbs = ["update"]
    elif sub == "token":
        return {"name": f"{resource.plural}/token", "singularName": "",
                "group": "authentication.k8s.io", "version": "v1",
                "namespaced": resource.namespaced, "kind": "TokenRequest", "verbs": ["create"]}
    return {"name": f"{resource.plural}/{sub}", "singularName": "",
            "namespaced": resource.namespaced, "kind": kind, "verbs": verbs}
