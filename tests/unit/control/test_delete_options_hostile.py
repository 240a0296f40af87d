"""DeleteOptions of the wrong type or out of range are 400s, never 500s (found by fuzzing)."""

import json

import falcon.testing
import pytest

from control.api.app import create_app
from tests.support.fake_store import FakeStore

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
def client():
    return falcon.testing.TestClient(create_app(FakeStore()))


@pytest.mark.parametrize("options,message", [
    ({"dryRun": {"a": 1}}, "dryRun must be an array of strings"),
    ({"dryRun": 5}, "dryRun must be an array of strings"),
    ({"dryRun": [{"a": 1}]}, "dryRun must be an array of strings"),
    ({"preconditions": ["x"]}, "preconditions must be an object of strings"),
    ({"preconditions": {"uid": {"a": 1}}}, "preconditions must be an object of strings"),
    ({"gracePeriodSeconds": 1e300}, "gracePeriodSeconds must be an integer"),
    ({"gracePeriodSeconds": True}, "gracePeriodSeconds must be an integer"),
    ({"gracePeriodSeconds": 2**64}, "gracePeriodSeconds=18446744073709551616 is out of range"),
    ({"propagationPolicy": ["Orphan"]}, "propagationPolicy must be a string"),
    ({"orphanDependents": "yes"}, "orphanDependents must be a boolean"),
])
@pytest.mark.parametrize("path", [CONFIGMAPS, CONFIGMAPS + "/c"])
def test_mistyped_delete_options_are_bad_requests(client, path, options, message):
    client.simulate_post(CONFIGMAPS, json={"metadata": {"name": "c"}})
    response = client.simulate_delete(path, body=json.dumps(options),
                                      headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert message in response.json["message"]
    assert client.simulate_get(f"{CONFIGMAPS}/c").status_code == 200    # nothing deleted


def test_out_of_range_grace_in_the_query_is_a_bad_request(client):
    response = client.simulate_delete(f"{CONFIGMAPS}/c", params={"gracePeriodSeconds": "9" * 30})
    assert response.status_code == 400 and "out of range" in response.json["message"]
    assert client.simulate_get("/api/v1/namespaces/default").status_code == 200


def test_a_huge_grace_period_marks_a_bound_pod_and_can_be_shortened(client):
    pod = {"metadata": {"name": "p"},
           "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}
    assert client.simulate_post(PODS, json=pod).status_code == 201
    first = client.simulate_delete(f"{PODS}/p", params={"gracePeriodSeconds": str(2**62)})
    assert first.status_code == 202, first.text
    assert first.json["metadata"]["deletionGracePeriodSeconds"] == 2**62
    shortened = client.simulate_delete(f"{PODS}/p", params={"gracePeriodSeconds": "5"})
    assert shortened.status_code in (200, 202), shortened.text
    assert shortened.json["metadata"]["deletionGracePeriodSeconds"] == 5
