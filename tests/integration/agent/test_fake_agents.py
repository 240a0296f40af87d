"""Several agents with the fake runtime in this one process, as kubemark runs hollow nodes."""

import pytest

from agent.main import Agent, parse_args
from control.client import NotFound
from control.objects.kinds import NODES, PODS
from tests.support.apiproc import eventually


@pytest.fixture(scope="module")
def agents(server, tmp_path_factory):
    base = tmp_path_factory.mktemp("fake-agents")
    started = []
    try:
        for index in range(3):
            name = f"fake-{index}"
            args = parse_args(["--kubeconfig", server.kubeconfig, "--node-name", name,
                               *server.agent_tls_args(name),
                               "--node-ip", "127.0.0.1", "--port", "0", "--runtime", "fake",
                               "--data-dir", str(base / f"n{index}"), "--heartbeat-interval",
                               "1", "--backoff-base", "0.2", "--sync-period", "0.2",
                               "--max-pods", "3"])
            started.append(Agent(args).start())
        yield started
    finally:
        for agent in started:
            agent.stop()


def _phase(rest, name):
    try:
        pod = rest.get(PODS, "default", name)
    except NotFound:
        return "gone"
    return (pod.get("status") or {}).get("phase"), pod


def _pod(name, node):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "x",
                                                       "command": ["serve"]}]}}


def test_many_fake_agents_run_their_pods(server, agents):
    rest = server.rest_client()
    for agent in agents:
        node = rest.get(NODES, None, agent.args.node_name)
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("fake://")
    for index in range(3):
        for n in range(2):
            rest.create(PODS, "default", _pod(f"f{index}-{n}", f"fake-{index}"))
    for name in (f"f{index}-{n}" for index in range(3) for n in range(2)):
        eventually(lambda name=name: _phase(rest, name)[0] == "Running", timeout=60,
                   message=f"{name} running")
    # A crash on a fake node restarts like a real one.
    agent = agents[0]
    uid = rest.get(PODS, "default", "f0-0")["metadata"]["uid"]
    agent.runtime.exit(uid, "main", 1)
    eventually(lambda: _phase(rest, "f0-0")[1]["status"]["containerStatuses"][0]
               ["restartCount"] == 1, timeout=60, message="restart on a fake node")
    # Deleting is confirmed by the agent.
    rest.delete(PODS, "default", "f1-0")
    eventually(lambda: _phase(rest, "f1-0") == "gone", timeout=60, message="f1-0 deleted")


def test_pods_beyond_max_pods_are_rejected(server, agents):
    rest = server.rest_client()
    for n in range(2, 4):
        rest.create(PODS, "default", _pod(f"f2-{n}", "fake-2"))
    phases = eventually(lambda: sorted(str(_phase(rest, f"f2-{n}")[0]) for n in range(2, 4))
                        if all(_phase(rest, f"f2-{n}")[0] in ("Running", "Failed")
                               for n in range(2, 4)) else None,
                        timeout=60, message="the 3rd pod runs, the 4th is rejected")
    assert phases == ["Failed", "Running"]
    rejected = next(f"f2-{n}" for n in range(2, 4) if _phase(rest, f"f2-{n}")[0] == "Failed")
    assert _phase(rest, rejected)[1]["status"]["reason"] == "OutOfpods"
