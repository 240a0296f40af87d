"""Pull secrets: docker config formats, registry matching, Docker Hub aliases, missing secrets."""

import base64
import json

import pytest

from agent import pullsecrets
from tests.unit.agent.fakes import FakeApi, FakeRecorder, make_pod


def secret(name, entries, kind="kubernetes.io/dockerconfigjson"):
    if kind == "kubernetes.io/dockerconfigjson":
        key, payload = ".dockerconfigjson", {"auths": entries}
    else:
        key, payload = ".dockercfg", entries
    return {"metadata": {"name": name, "namespace": "default"}, "type": kind,
            "data": {key: base64.b64encode(json.dumps(payload).encode()).decode()}}


def logins(image, secrets):
    return [(c.username, c.password) for c in pullsecrets.credentials_for(image, secrets)]


def b64(text):
    return base64.b64encode(text.encode()).decode()


def test_auth_field_is_decoded_and_wins_over_username():
    s = secret("s", {"reg.example.com": {"username": "x", "password": "y", "auth": b64("u:p:q")}})
    assert logins("reg.example.com/app:1", [s]) == [("u", "p:q")]


def test_dockercfg_format():
    s = secret("s", {"reg.example.com": {"username": "u", "password": "p"}},
               kind="kubernetes.io/dockercfg")
    assert logins("reg.example.com/app", [s]) == [("u", "p")]


def test_other_secret_types_are_ignored():
    s = secret("s", {"reg.example.com": {"username": "u", "password": "p"}})
    s["type"] = "Opaque"
    assert logins("reg.example.com/app", [s]) == []


@pytest.mark.parametrize("location", [
    "https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io",
    "https://registry-1.docker.io/v2/"])
def test_docker_hub_aliases(location):
    s = secret("hub", {location: {"username": "u", "password": "p"}})
    assert logins("busybox", [s]) == [("u", "p")]
    assert logins("docker.io/me/app:1", [s]) == [("u", "p")]
    assert logins("quay.io/me/app:1", [s]) == []


@pytest.mark.parametrize("location, image, matches", [
    ("127.0.0.1:5000", "127.0.0.1:5000/app:1", True),
    ("http://127.0.0.1:5000", "127.0.0.1:5000/app:1", True),
    ("127.0.0.1:5001", "127.0.0.1:5000/app:1", False),
    ("127.0.0.1", "127.0.0.1:5000/app:1", False),
    ("*.example.com", "reg.example.com/app", True),
    ("*.example.com", "example.com/app", False),
    ("reg.example.com/team", "reg.example.com/team/app", True),
    ("reg.example.com/team", "reg.example.com/teamx/app", False),
    ("reg.example.com/team", "reg.example.com/other/app", False),
])
def test_location_matching(location, image, matches):
    s = secret("s", {location: {"username": "u", "password": "p"}})
    assert bool(logins(image, [s])) is matches


def test_more_specific_locations_first_and_duplicates_once():
    secrets = [secret("a", {"reg.example.com": {"username": "host", "password": "1"}}),
               secret("b", {"reg.example.com/team": {"username": "team", "password": "2"}}),
               secret("c", {"https://reg.example.com": {"username": "host", "password": "1"}})]
    assert logins("reg.example.com/team/app", secrets) == [("team", "2"), ("host", "1")]


def test_auth_config_names_the_endpoint_host():
    s = secret("hub", {"https://index.docker.io/v1/": {"username": "u", "password": "p"}})
    credential = pullsecrets.credentials_for("busybox", [s])[0]
    from agent import imageref
    assert credential.auth_config(imageref.parse("busybox"))["server_address"] == \
        "https://registry-1.docker.io"


@pytest.mark.parametrize("payload, message", [
    (b"[1]", "is not a JSON object"),
    (b'{"auths": {"r.io": {"auth": "bm9jb2xvbg=="}}}', "not base64 of user:password"),
])
def test_malformed_configs_say_what_is_wrong(payload, message):
    s = {"metadata": {"name": "bad"}, "type": "kubernetes.io/dockerconfigjson",
         "data": {".dockerconfigjson": base64.b64encode(payload).decode()}}
    with pytest.raises(pullsecrets.PullSecretError, match=message):
        pullsecrets.credentials_for("r.io/app", [s])


def test_pull_secrets_for_reports_missing_ones():
    api, recorder = FakeApi(), FakeRecorder()
    present = secret("present", {"r.io": {"username": "u", "password": "p"}})
    api.objects[("Secret", "default", "present")] = present
    pod = make_pod(imagePullSecrets=[{"name": "present"}, {"name": "gone"}])
    assert pullsecrets.pull_secrets_for(pod, api.lookup, recorder) == [present]
    assert recorder.events == [(
        "Warning", "FailedToRetrieveImagePullSecret",
        "Unable to retrieve some image pull secrets (default/gone); attempting to pull the "
        "image may not succeed.")]
