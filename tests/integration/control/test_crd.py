"""CustomResourceDefinitions through two real API server processes on one store.

A CRD created through the first server is Established and served at once by the
second (its own resource table, learnt from the store): discovery, OpenAPI, CRUD,
watch, paging, selectors, status and scale, printer columns through kubectl, two
versions, and deleting the CRD deletes its objects. Hostile schemas and objects
get a 4xx and the servers keep serving.
"""

import json
import threading

import pytest

from control.client import ApiException, RestClient
from control.objects import kinds
from tests.support.apiproc import eventually
from tests.support.kubectl import kubectl_path, run_kubectl

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
GROUP = "stable.example.com"


def crd_body(plural, kind, scope="Namespaced", versions=None):
    schema = {"type": "object", "properties": {
        "spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "string", "enum": ["S", "M", "L"]},
            "replicas": {"type": "integer", "minimum": 0, "default": 1},
            "selector": {"type": "string"}}},
        "status": {"type": "object", "properties": {
            "replicas": {"type": "integer"}, "phase": {"type": "string"}}}}}
    v1 = {"name": "v1", "served": True, "storage": True,
          "schema": {"openAPIV3Schema": schema},
          "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                   "statusReplicasPath": ".status.replicas",
                                                   "labelSelectorPath": ".spec.selector"}},
          "additionalPrinterColumns": [
              {"name": "Size", "type": "string", "jsonPath": ".spec.size"},
              {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
              {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "priority": 1},
              {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{GROUP}"},
            "spec": {"group": GROUP, "scope": scope,
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind,
                               "shortNames": [plural[:3]]},
                     "versions": versions or [v1]}}


def established(rest, name):
    crd = rest.request("GET", f"{CRDS}/{name}")
    return any(c["type"] == "Established" and c["status"] == "True"
               for c in crd.get("status", {}).get("conditions", []))


@pytest.fixture(scope="module")
def clients(servers):
    first, second = servers
    a, b = first.rest_client(timeout=20), second.rest_client(timeout=20)
    yield a, b
    a.close()
    b.close()


@pytest.fixture(scope="module")
def widgets(clients):
    a, _ = clients
    a.request("POST", CRDS, body=crd_body("widgets", "Widget"))
    eventually(lambda: established(a, f"widgets.{GROUP}"), message="widgets Established")
    return f"/apis/{GROUP}/v1/namespaces/default/widgets"


def widget(name, size="S", labels=None, **spec):
    return {"apiVersion": f"{GROUP}/v1", "kind": "Widget",
            "metadata": {"name": name, **({"labels": labels} if labels else {})},
            "spec": {"size": size, **spec}}


def test_crd_is_established_and_served_by_the_other_process(clients, widgets):
    a, b = clients
    crd = a.request("GET", f"{CRDS}/widgets.{GROUP}")
    assert crd["status"]["acceptedNames"]["kind"] == "Widget"
    assert {c["type"] for c in crd["status"]["conditions"]} >= {"NamesAccepted", "Established"}
    assert "customresourcecleanup.apiextensions.k8s.io" in crd["metadata"]["finalizers"]
    # The second process never saw the create: it learns of the CRD from the store.
    created = b.request("POST", widgets, body=widget("w1", labels={"app": "x"}))
    assert created["spec"] == {"size": "S", "replicas": 1}         # defaulted
    assert a.request("GET", f"{widgets}/w1")["metadata"]["uid"] == created["metadata"]["uid"]
    groups = eventually(lambda: [g for g in b.request("GET", "/apis")["groups"]
                                 if g["name"] == GROUP], message="group in /apis")
    assert groups[0]["preferredVersion"]["version"] == "v1"
    listed = b.request("GET", f"/apis/{GROUP}/v1")
    names = {r["name"] for r in listed["resources"]}
    assert names == {"widgets", "widgets/status", "widgets/scale"}
    index = b.request("GET", "/openapi/v3")["paths"]
    assert f"apis/{GROUP}/v1" in index


def test_schema_validation_pruning_and_strict(clients, widgets):
    a, _ = clients
    with pytest.raises(ApiException) as invalid:
        a.request("POST", widgets, body=widget("bad", size="XL", replicas=-1))
    assert invalid.value.status == 422
    assert 'spec.size: Unsupported value: "XL": supported values: "S", "M", "L"' in \
        str(invalid.value)
    assert "spec.replicas in body should be greater than or equal to 0" in str(invalid.value)
    pruned = a.request("POST", widgets, body={**widget("pruned"), "junk": 1,
                                              "spec": {"size": "M", "extra": True}})
    assert "junk" not in pruned and "extra" not in pruned["spec"]
    with pytest.raises(ApiException) as strict:
        a.request("POST", widgets, query={"fieldValidation": "Strict"},
                  body={**widget("strict"), "junk": 1})
    assert strict.value.status == 400 and 'unknown field "junk"' in str(strict.value)


def test_list_paging_selectors_and_watch(clients, widgets):
    a, b = clients
    for index in range(5):
        a.request("POST", widgets, body=widget(f"page-{index}", labels={"tier": "paged"}))
    first = a.request("GET", widgets, query={"limit": "2", "labelSelector": "tier=paged"})
    assert len(first["items"]) == 2 and first["metadata"]["continue"]
    seen = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        page = a.request("GET", widgets, query={"limit": "2", "continue": token,
                                                 "labelSelector": "tier=paged"})
        seen += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
    assert seen == [f"page-{i}" for i in range(5)]
    by_name = a.request("GET", widgets, query={"fieldSelector": "metadata.name=page-3"})
    assert [i["metadata"]["name"] for i in by_name["items"]] == ["page-3"]
    assert a.request("GET", f"/apis/{GROUP}/v1/widgets",
                     query={"labelSelector": "tier=paged"})["items"][0]["kind"] == "Widget"

    resource = kinds.Resource(GROUP, "v1", "Widget", "widgets", True)
    since = a.request("GET", widgets)["metadata"]["resourceVersion"]
    events = []
    watch = b.watch(resource, "default", resource_version=since, timeout_seconds=20)

    def follow():
        for kind, obj in watch:
            events.append((kind, obj["metadata"]["name"], obj["apiVersion"]))
            if kind == "DELETED":
                return

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    a.request("POST", widgets, body=widget("watched"))
    a.request("DELETE", f"{widgets}/watched")
    thread.join(30)
    watch.close()
    assert events == [("ADDED", "watched", f"{GROUP}/v1"), ("DELETED", "watched", f"{GROUP}/v1")]


def test_status_and_scale_subresources(clients, widgets):
    a, b = clients
    a.request("POST", widgets, body=widget("scaled", selector="app=scaled"))
    current = a.request("GET", f"{widgets}/scaled")
    # A write to the main resource ignores status; the status subresource sets only it.
    a.request("PUT", f"{widgets}/scaled", body={**current, "status": {"phase": "Ignored"}})
    assert "status" not in a.request("GET", f"{widgets}/scaled")
    current = a.request("GET", f"{widgets}/scaled")
    status = b.request("PUT", f"{widgets}/scaled/status",
                       body={**current, "spec": {"size": "L"},
                             "status": {"phase": "Running", "replicas": 1}})
    assert status["status"]["phase"] == "Running" and status["spec"]["size"] == "S"
    scale = b.request("GET", f"{widgets}/scaled/scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
    assert scale["status"] == {"replicas": 1, "selector": "app=scaled"}
    scale["spec"]["replicas"] = 4
    assert a.request("PUT", f"{widgets}/scaled/scale", body=scale)["spec"]["replicas"] == 4
    assert a.request("GET", f"{widgets}/scaled")["spec"]["replicas"] == 4


@pytest.mark.kubectl
def test_kubectl_get_prints_the_columns_scales_and_waits(servers, clients, widgets, tmp_path):
    assert kubectl_path()
    first, _ = servers
    cache = ["--cache-dir", str(tmp_path / "cache")]
    a, _ = clients
    a.request("POST", widgets, body=widget("printed", size="L", replicas=2))
    run_kubectl(first.kubeconfig, *cache, "wait", "--for", "condition=established",
                "--timeout=30s", f"crd/widgets.{GROUP}")
    out = run_kubectl(first.kubeconfig, *cache, "get", "widgets", "printed").stdout
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "SIZE", "REPLICAS", "AGE"]
    assert row.split()[:3] == ["printed", "L", "2"]
    wide = run_kubectl(first.kubeconfig, *cache, "get", "wid", "printed", "-o", "wide").stdout
    assert wide.splitlines()[0].split() == ["NAME", "SIZE", "REPLICAS", "PHASE", "AGE"]
    run_kubectl(first.kubeconfig, *cache, "scale", "widgets/printed", "--replicas=5")
    assert a.request("GET", f"{widgets}/printed")["spec"]["replicas"] == 5


def test_rbac_applies_to_custom_resources(servers, clients, widgets):
    first, second = servers
    a, _ = clients
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    a.request("POST", f"{rbac}/roles", body={
        "metadata": {"name": "widget-reader"},
        "rules": [{"apiGroups": [GROUP], "resources": ["widgets"],
                   "verbs": ["get", "list", "watch"]}]})
    a.request("POST", f"{rbac}/rolebindings", body={
        "metadata": {"name": "widget-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "widget-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": "reader"}]})
    issued = first.issue_client("reader", "reader")
    reader = RestClient(second.url, ca_file=second.ca_file, cert_file=issued.cert,
                        key_file=issued.key, timeout=20)
    try:
        assert eventually(lambda: _listed(reader, widgets), message="reader may list widgets")
        with pytest.raises(ApiException) as forbidden:
            reader.request("POST", widgets, body=widget("by-reader"))
        assert forbidden.value.status == 403
        with pytest.raises(ApiException) as other_ns:
            reader.request("GET", f"/apis/{GROUP}/v1/namespaces/kube-system/widgets")
        assert other_ns.value.status == 403
    finally:
        reader.close()


def _listed(client, path):
    try:
        return client.request("GET", path)["items"]
    except ApiException as exc:
        if exc.status == 403:
            return None     # the binding is not seen by the authorizer yet
        raise


@pytest.mark.kubectl
def test_kubectl_applies_a_crd_and_its_objects(servers, clients, tmp_path):
    first, second = servers
    a, _ = clients
    cache = ["--cache-dir", str(tmp_path / "cache")]
    manifest = tmp_path / "sprockets.json"
    manifest.write_text(json.dumps(crd_body("sprockets", "Sprocket")))
    run_kubectl(first.kubeconfig, *cache, "apply", "-f", str(manifest))
    run_kubectl(first.kubeconfig, *cache, "wait", "--for", "condition=established",
                "--timeout=30s", f"crd/sprockets.{GROUP}")
    obj = tmp_path / "sprocket.json"
    obj.write_text(json.dumps({"apiVersion": f"{GROUP}/v1", "kind": "Sprocket",
                               "metadata": {"name": "s1", "namespace": "default"},
                               "spec": {"size": "S"}}))
    run_kubectl(second.kubeconfig, *cache, "apply", "-f", str(obj))
    obj.write_text(json.dumps({"apiVersion": f"{GROUP}/v1", "kind": "Sprocket",
                               "metadata": {"name": "s1", "namespace": "default"},
                               "spec": {"size": "L", "replicas": 2}}))
    run_kubectl(second.kubeconfig, *cache, "apply", "-f", str(obj))
    stored = a.request("GET", f"/apis/{GROUP}/v1/namespaces/default/sprockets/s1")
    assert stored["spec"] == {"size": "L", "replicas": 2}
    explained = run_kubectl(first.kubeconfig, *cache, "explain", "sprockets.spec").stdout
    assert "size" in explained and "replicas" in explained
    bad = run_kubectl(first.kubeconfig, *cache, "patch", "sprocket", "s1", "--type=merge",
                      "-p", '{"spec": {"size": "XXL"}}', check=False)
    assert bad.returncode != 0 and 'Unsupported value: "XXL"' in bad.stderr


def test_cluster_scoped_crd(clients):
    a, b = clients
    a.request("POST", CRDS, body=crd_body("gadgets", "Gadget", scope="Cluster"))
    eventually(lambda: established(a, f"gadgets.{GROUP}"), message="gadgets Established")
    path = f"/apis/{GROUP}/v1/gadgets"
    created = b.request("POST", path, body={"apiVersion": f"{GROUP}/v1", "kind": "Gadget",
                                            "metadata": {"name": "g1"}, "spec": {"size": "M"}})
    assert "namespace" not in created["metadata"]
    assert [i["metadata"]["name"] for i in a.request("GET", path)["items"]] == ["g1"]
    with pytest.raises(ApiException) as namespaced:
        a.request("GET", f"/apis/{GROUP}/v1/namespaces/default/gadgets")
    assert namespaced.value.status == 404


def test_two_versions_share_objects_stored_in_the_storage_version(servers, clients):
    a, b = clients
    loose = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    versions = [{"name": "v1beta1", "served": True, "storage": False,
                 "schema": {"openAPIV3Schema": loose}},
                {"name": "v1", "served": True, "storage": True,
                 "schema": {"openAPIV3Schema": loose}}]
    a.request("POST", CRDS, body=crd_body("doodads", "Doodad", versions=versions))
    eventually(lambda: established(a, f"doodads.{GROUP}"), message="doodads Established")
    old = f"/apis/{GROUP}/v1beta1/namespaces/default/doodads"
    new = f"/apis/{GROUP}/v1/namespaces/default/doodads"
    created = b.request("POST", old, body={"apiVersion": f"{GROUP}/v1beta1", "kind": "Doodad",
                                           "metadata": {"name": "d1"}, "spec": {"a": 1}})
    assert created["apiVersion"] == f"{GROUP}/v1beta1"
    assert a.request("GET", f"{new}/d1")["apiVersion"] == f"{GROUP}/v1"
    assert a.request("GET", f"{old}/d1")["apiVersion"] == f"{GROUP}/v1beta1"
    group = a.request("GET", f"/apis/{GROUP}")
    assert group["preferredVersion"]["version"] == "v1"
    crd = a.request("GET", f"{CRDS}/doodads.{GROUP}")
    assert crd["status"]["storedVersions"] == ["v1"]
    store = servers[0].store.client()
    try:
        stored = store.get(f"/registry/{GROUP}/doodads/default/d1".encode())
    finally:
        store.close()
    assert json.loads(stored["kvs"][0]["value"])["apiVersion"] == f"{GROUP}/v1"


def test_invalid_crds_are_refused(clients):
    a, _ = clients
    body = crd_body("things", "Thing")
    body["metadata"]["name"] = "wrong.example.com"
    body["spec"]["versions"][0]["storage"] = False
    body["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"]["size"] = {"enum": ["S"]}
    with pytest.raises(ApiException) as refused:
        a.request("POST", CRDS, body=body)
    message = str(refused.value)
    assert refused.value.status == 422
    assert 'metadata.name: Invalid value: "wrong.example.com": must be ' \
        'spec.names.plural+"."+spec.group' in message
    assert "must have exactly one version marked as storage version" in message
    assert ".properties[size].type: Required value: must not be empty for specified object " \
        "fields" in message


def test_hostile_schema_and_objects_get_4xx_and_the_server_keeps_serving(clients, widgets):
    a, b = clients
    deep = {"type": "object"}
    for _ in range(60):
        deep = {"type": "object", "properties": {"x": deep}}
    body = crd_body("deeps", "Deep")
    body["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = deep
    with pytest.raises(ApiException) as too_deep:
        a.request("POST", CRDS, body=body)
    assert 400 <= too_deep.value.status < 500
    wide = {"type": "object", "properties": {f"f{i}": {"type": "string"}
                                             for i in range(12000)}}
    body = crd_body("wides", "Wide")
    body["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = wide
    with pytest.raises(ApiException) as too_wide:
        a.request("POST", CRDS, body=body)
    assert too_wide.value.status == 422 and "more than 10000 nodes" in str(too_wide.value)
    nested = {"size": "S"}
    for _ in range(200):
        nested = {"n": nested}
    with pytest.raises(ApiException) as deep_object:
        a.request("POST", widgets, body={**widget("deep"), "spec": nested})
    assert deep_object.value.status == 400
    with pytest.raises(ApiException) as huge:
        a.request("POST", widgets, body=widget("huge", selector="x" * (2 * 1024 * 1024)))
    assert huge.value.status == 413
    assert b.request("GET", f"{widgets}/w1")["metadata"]["name"] == "w1"


def test_deleting_the_crd_deletes_its_objects_and_stops_serving(clients):
    a, b = clients
    a.request("POST", CRDS, body=crd_body("gizmos", "Gizmo"))
    eventually(lambda: established(a, f"gizmos.{GROUP}"), message="gizmos Established")
    path = f"/apis/{GROUP}/v1/namespaces/default/gizmos"
    for name in ("g1", "g2"):
        b.request("POST", path, body={"apiVersion": f"{GROUP}/v1", "kind": "Gizmo",
                                      "metadata": {"name": name}, "spec": {"size": "S"}})
    a.request("DELETE", f"{CRDS}/gizmos.{GROUP}")

    def gone():
        try:
            a.request("GET", f"{CRDS}/gizmos.{GROUP}")
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone, message="the CRD gone once its objects are deleted")
    stored = b.request("GET", "/api/v1/namespaces")      # still serving
    assert stored["items"]

    def not_served(client):
        try:
            client.request("GET", path)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(lambda: not_served(a) and not_served(b), message="gizmos no longer served")
    # Re-created, it starts empty: the old objects went with the old CRD.
    a.request("POST", CRDS, body=crd_body("gizmos", "Gizmo"))
    eventually(lambda: established(a, f"gizmos.{GROUP}"), message="gizmos re-established")
    assert b.request("GET", path)["items"] == []
