"""The dashboard in a real browser (Debian's headless Chromium driven by Playwright).

One `steer up --runtime process` cluster (one node: the process runtime runs real
containers whose logs the agent serves). Log in with a ServiceAccount token, see a
Deployment, scale it and see the pods change live, read a pod's log as it is
written, an invalid edit shows the 422 cause inline, a token without rights sees 403.
Measures the first page load and the delay from the scale click to the new pods on
screen; prints them, and writes them with the screenshots to STEER_DASHBOARD_SHOTS
(or the test's temporary directory).
"""

import json
import os
import re
import shutil
import time

import pytest

from control.objects import kinds
from tests.e2e.conftest import running_cluster

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                                "(make deb-packages installs it)"),
    pytest.mark.timeout(240),
]
playwright = pytest.importorskip("playwright.sync_api",
                                 reason="playwright is in setup.cfg's test extra")
expect = playwright.expect

# Chromium as root, with nothing that reaches out: no sandbox (root), no GPU, no QUIC,
# no first-run, background networking, component updates or sync.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT_MS = 60_000
TICKER = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "ticker", "namespace": "default"},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "ticker"}},
             "template": {"metadata": {"labels": {"app": "ticker"}}, "spec": {
                 "terminationGracePeriodSeconds": 2,
                 "containers": [{"name": "tick", "image": "busybox", "command": [
                     "/bin/sh", "-c",
                     "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]}]}}}}


def service_account_token(rest, name, cluster_admin):
    rest.create(kinds.lookup("", "v1", "serviceaccounts"), "default",
                {"metadata": {"name": name}})
    if cluster_admin:
        rest.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", body={
            "metadata": {"name": f"{name}-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": "default"}]})
    answer = rest.request("POST", f"/api/v1/namespaces/default/serviceaccounts/{name}/token",
                          body={"apiVersion": "authentication.k8s.io/v1",
                                "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})
    return answer["status"]["token"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory, nodes=1) as c:
        c.rest.create(kinds.DEPLOYMENTS, "default", TICKER)
        c.tokens = {"admin": service_account_token(c.rest, "dash-admin", True),
                    "nobody": service_account_token(c.rest, "dash-nobody", False)}
        yield c


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    where = os.environ.get("STEER_DASHBOARD_SHOTS") or str(tmp_path_factory.mktemp("shots"))
    os.makedirs(where, exist_ok=True)
    return where


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            args=CHROMIUM_ARGS, headless=True, ignore_https_errors=True,
            viewport={"width": 1280, "height": 800})
        try:
            yield context
        finally:
            context.close()


RUNNING = "#pods tr.pod[data-phase=Running]:not([data-terminating])"
LIVE_PODS = "#pods tr.pod:not([data-terminating])"


def test_dashboard_login_scale_logs_edit_and_forbidden(cluster, browser, shots):
    url = cluster.url
    figures = {}
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)

    # Log in with the admin's ServiceAccount token.
    started = time.monotonic()
    page.goto(f"{url}/ui/login", wait_until="load")
    figures["login_page_cold_load_s"] = round(time.monotonic() - started, 3)
    page.fill("#token", cluster.tokens["admin"])
    page.click("#login")
    page.wait_for_url("**/ui/namespaces/default/workloads")

    # The first page load: a fresh navigation to the workloads page, until it is loaded.
    started = time.monotonic()
    page.goto(f"{url}/ui/namespaces/default/workloads", wait_until="load")
    figures["first_page_load_s"] = round(time.monotonic() - started, 3)
    assert page.locator("table[data-kind=deployments] a", has_text="ticker").count() == 1
    page.screenshot(path=os.path.join(shots, "dashboard-workloads.png"))

    # The Deployment, its pod Running, the watch stream connected.
    page.click("text=ticker")
    page.wait_for_selector("#pods[data-live=ready]")
    expect(page.locator(RUNNING)).to_have_count(1, timeout=WAIT_MS)

    # Scale to 3 with the button; the new pods appear (and go Running) on the page.
    page.fill("#replicas", "3")
    started = time.monotonic()
    page.click("#scale")
    page.wait_for_selector("#notice")
    expect(page.locator(LIVE_PODS)).to_have_count(3, timeout=WAIT_MS)
    figures["scale_click_to_new_pods_shown_s"] = round(time.monotonic() - started, 3)
    expect(page.locator(RUNNING)).to_have_count(3, timeout=WAIT_MS)
    figures["scale_click_to_pods_running_shown_s"] = round(time.monotonic() - started, 3)
    expect(page.locator("#workload-status")).to_have_text("3/3", timeout=WAIT_MS)
    page.screenshot(path=os.path.join(shots, "dashboard-deployment.png"))

    # A change made elsewhere (kubectl scale, here the API) shows without a reload.
    page.evaluate("window.__sameDocument = true")
    cluster.rest.patch(kinds.DEPLOYMENTS, "default", "ticker", {"spec": {"replicas": 2}},
                       subresource="scale")
    expect(page.locator(LIVE_PODS)).to_have_count(2, timeout=WAIT_MS)
    assert page.evaluate("() => window.__sameDocument") is True     # no reload happened
    assert page.get_attribute("#pods", "data-updated")

    # A pod's log, followed as it is written.
    page.locator(f"{RUNNING} a", has_text="logs").first.click()
    page.wait_for_selector("#log[data-live=ready]")
    expect(page.locator("#log")).to_contain_text("tick", timeout=WAIT_MS)
    last = max(int(n) for n in re.findall(r"tick (\d+)", page.inner_text("#log")))
    # A line written after the page opened arrives on the open stream.
    expect(page.locator("#log")).to_contain_text(f"tick {last + 1}", timeout=WAIT_MS)
    page.screenshot(path=os.path.join(shots, "dashboard-logs.png"))

    # An invalid edit: the server's 422 cause is shown beside the YAML.
    page.goto(f"{url}/ui/yaml/default/deployments/ticker")
    text = page.input_value("#yaml")
    page.fill("#yaml", text.replace("replicas: 2", "replicas: -1", 1))
    page.click("#save")
    page.wait_for_selector("#causes")
    assert "spec.replicas" in page.inner_text("#causes")
    page.screenshot(path=os.path.join(shots, "dashboard-yaml-error.png"))

    # Rollout restart: the live pod list ends with new pods only; undo goes back.
    page.goto(f"{url}/ui/namespaces/default/deployments/ticker")
    page.wait_for_selector("#pods[data-live=ready]")
    before = set(page.locator(LIVE_PODS).evaluate_all("rows => rows.map(r => r.dataset.name)"))
    page.click("#restart")
    expect(page.locator("#notice")).to_contain_text("restarted")
    page.wait_for_selector("#pods[data-live=ready]")
    for name in before:
        expect(page.locator(f"#pods tr.pod[data-name='{name}']")).to_have_count(
            0, timeout=WAIT_MS)
    expect(page.locator(RUNNING)).to_have_count(2, timeout=WAIT_MS)
    restarted = cluster.deployment("ticker")["spec"]["template"]["metadata"]
    assert "kubectl.kubernetes.io/restartedAt" in restarted.get("annotations", {})
    page.click("#undo")
    expect(page.locator("#notice")).to_have_text("rolled back to the previous revision")
    undone = cluster.deployment("ticker")["spec"]["template"]["metadata"]
    assert "kubectl.kubernetes.io/restartedAt" not in (undone.get("annotations") or {})

    # Nodes with their conditions, and the namespace's events.
    page.goto(f"{url}/ui/nodes")
    expect(page.locator("tr.node[data-name=node-1]")).to_contain_text("Ready=True")
    page.screenshot(path=os.path.join(shots, "dashboard-nodes.png"))
    page.goto(f"{url}/ui/namespaces/default/events")
    expect(page.locator("table.events")).to_contain_text("ticker")

    # Log out; a token without rights sees 403 pages, never the workloads.
    page.click("header .logout button")
    page.wait_for_url("**/ui/login")
    page.fill("#token", cluster.tokens["nobody"])
    page.click("#login")
    page.wait_for_selector("#error-title")
    assert page.inner_text("#error-title") == "Forbidden"
    assert page.locator("text=ticker").count() == 0

    with open(os.path.join(shots, "dashboard-timings.json"), "w") as f:
        json.dump(figures, f)
    print(f"\ndashboard figures: {figures} (screenshots in {shots})")
