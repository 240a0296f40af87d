"""ResourceQuota and LimitRange against a real store, API server and resource quota controller.

A quota of two pods refuses the third with Kubernetes' message; ten concurrent
creates against three pods make exactly three; a deleted pod gives its quota
back (the controller recounts); a LimitRange defaults a pod's resources and
refuses one over its max; a hostile quota is a 4xx and the server keeps serving;
kubectl creates, lists and describes quotas.
"""

import concurrent.futures
import shutil

import pytest

from control.client import ApiException, Forbidden, Invalid
from control.objects import kinds
from tests.support.apiproc import eventually
from tests.support.controlplane import ControlPlane, create_namespace

QUOTAS = kinds.lookup("", "v1", "resourcequotas")
LIMITRANGES = kinds.lookup("", "v1", "limitranges")
PODS = kinds.PODS


@pytest.fixture(scope="module")
def plane(server, tmp_path_factory):
    """The resource quota controller alone (no scheduler, no nodes): it only counts."""
    with ControlPlane(server, tmp_path_factory.mktemp("quota"), "resourcequota",
                      manager_args=["--resource-quota-sync-period", "30s"],
                      scheduler=False) as control_plane:
        yield control_plane


def pod(name, **resources):
    container = {"name": "web", "image": "busybox"}
    if resources:
        container["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container]}}


def make_quota(rest, ns, hard, name="compute", plane=None):
    """Create a quota and wait until the controller has counted it."""
    rest.create(QUOTAS, ns, {"apiVersion": "v1", "kind": "ResourceQuota",
                             "metadata": {"name": name}, "spec": {"hard": hard}})
    return eventually(lambda: _counted(rest, ns, name, hard), timeout=60,
                      message=f"quota {name} counted", logs=plane.logs if plane else None)


def _counted(rest, ns, name, hard):
    status = rest.get(QUOTAS, ns, name).get("status") or {}
    return status if status.get("hard") == hard and set(status.get("used") or {}) == set(hard) \
        else None


def used(rest, ns, name="compute"):
    return (rest.get(QUOTAS, ns, name).get("status") or {}).get("used") or {}


def test_the_third_pod_is_refused_and_a_deleted_pod_frees_quota(rest, plane):
    ns = create_namespace(rest, "quota-pods")
    make_quota(rest, ns, {"pods": "2"}, plane=plane)
    rest.create(PODS, ns, pod("a"))
    rest.create(PODS, ns, pod("b"))
    assert used(rest, ns) == {"pods": "2"}
    with pytest.raises(Forbidden) as refused:
        rest.create(PODS, ns, pod("web"))
    assert refused.value.message == ('pods "web" is forbidden: exceeded quota: compute, '
                                          'requested: pods=1, used: pods=2, limited: pods=2')
    rest.delete(PODS, ns, "a", grace_period_seconds=0)
    eventually(lambda: used(rest, ns) == {"pods": "1"}, timeout=60,
               message="the controller gives the deleted pod's quota back", logs=plane.logs)
    rest.create(PODS, ns, pod("web"))


def test_concurrent_creates_never_exceed_the_quota(rest, plane, server):
    ns = create_namespace(rest, "quota-race")
    make_quota(rest, ns, {"pods": "3"}, plane=plane)

    def create(index):
        client = server.rest_client(timeout=30)
        try:
            client.create(PODS, ns, pod(f"p{index}"))
            return "created"
        except Forbidden as exc:
            assert "exceeded quota: compute" in exc.message
            return "refused"
        except ApiException as exc:   # a 409 after too many conflicts: also not created
            return f"{exc.status}"
        finally:
            client.close()

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(create, range(10)))
    assert outcomes.count("created") == 3, outcomes
    assert len(rest.list(PODS, ns)["items"]) == 3
    assert used(rest, ns) == {"pods": "3"}


def test_compute_quota_needs_limits_and_counts_them(rest, plane):
    ns = create_namespace(rest, "quota-cpu")
    make_quota(rest, ns, {"limits.cpu": "2", "requests.memory": "1Gi"}, plane=plane)
    with pytest.raises(Forbidden, match=r'pods "web" is forbidden: failed quota: compute: '
                                        r'must specify limits.cpu for: web; '
                                        r'requests.memory for: web'):
        rest.create(PODS, ns, pod("web"))
    rest.create(PODS, ns, pod("web", limits={"cpu": "1500m", "memory": "512Mi"}))
    assert used(rest, ns) == {"limits.cpu": "1500m", "requests.memory": "512Mi"}
    with pytest.raises(Forbidden, match="requested: limits.cpu=1, used: limits.cpu=1500m, "
                                        "limited: limits.cpu=2"):
        rest.create(PODS, ns, pod("big", limits={"cpu": "1", "memory": "1Mi"}))


def test_a_limit_range_defaults_resources_and_refuses_one_over_max(rest, plane):
    ns = create_namespace(rest, "quota-limits")
    rest.create(LIMITRANGES, ns, {
        "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"},
                             "default": {"cpu": "500m", "memory": "256Mi"},
                             "defaultRequest": {"cpu": "100m"}}]}})
    created = rest.create(PODS, ns, pod("plain"))
    resources = created["spec"]["containers"][0]["resources"]
    assert resources == {"limits": {"cpu": "500m", "memory": "256Mi"},
                         "requests": {"cpu": "100m", "memory": "256Mi"}}
    assert created["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container web; "
        "cpu, memory limit for container web")
    with pytest.raises(Forbidden) as refused:
        rest.create(PODS, ns, pod("web", limits={"cpu": "3"}))
    assert refused.value.message == ('pods "web" is forbidden: maximum cpu usage per Container '
                                     'is 2, but limit is 3')


def test_a_hostile_quota_is_refused_and_the_server_keeps_serving(rest, plane):
    ns = create_namespace(rest, "quota-hostile")
    body = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "huge"},
            "spec": {"hard": {"pods": "1e999999999", "requests.cpu": "9" * 5000}}}
    with pytest.raises(Invalid) as refused:
        rest.create(QUOTAS, ns, body)
    assert "quantity too large" in refused.value.message
    many = {f"count/things{i}.example.com": "1" for i in range(3000)}
    with pytest.raises(Invalid, match="Too many: 3000: must have at most 256 items"):
        rest.create(QUOTAS, ns, {**body, "spec": {"hard": many}})
    assert rest.list(QUOTAS, ns)["items"] == []
    rest.create(PODS, ns, pod("still-serving"))


@pytest.mark.kubectl
@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_creates_lists_and_describes_quotas(server, rest, plane):
    ns = create_namespace(rest, "quota-kubectl")
    out = server.kubectl("create", "quota", "compute", "-n", ns,
                         "--hard=pods=4,requests.cpu=1,limits.cpu=2").stdout
    assert "resourcequota/compute created" in out
    eventually(lambda: _counted(rest, ns, "compute",
                                {"pods": "4", "requests.cpu": "1", "limits.cpu": "2"}),
               timeout=60, message="kubectl's quota counted", logs=plane.logs)
    rest.create(PODS, ns, pod("web", requests={"cpu": "250m"}, limits={"cpu": "500m"}))
    table = server.kubectl("get", "quota", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert "pods: 1/4, requests.cpu: 250m/1" in table[1] and "limits.cpu: 500m/2" in table[1]
    described = server.kubectl("describe", "quota", "compute", "-n", ns).stdout
    rows = [line.split() for line in described.splitlines()]
    assert ["Resource", "Used", "Hard"] in rows
    assert ["requests.cpu", "250m", "1"] in rows and ["pods", "1", "4"] in rows
    server.kubectl("create", "-n", ns, "-f", "-", input=(
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: limits}\nspec:\n  limits:\n"
        "  - type: Container\n    max: {cpu: '2'}\n"))
    described = server.kubectl("describe", "limitrange", "limits", "-n", ns).stdout
    assert any(line.split()[:4] == ["Container", "cpu", "-", "2"]
               for line in described.splitlines() if line.strip())
