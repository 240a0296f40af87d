"""The Ingress controller's sync: only its class, status from its pods, rejects reported."""

from control.addons.ingress.controller import INGRESSES, IngressController
from control.addons.ingress.nginx import ConfigRejected
from control.addons.ingress.render import Settings
from control.client.rest import object_key
from tests.unit.control.ingress_objects import endpoint_slice, ingress, rule, service


class FakeRest:
    def __init__(self):
        self.status_writes, self.patches = [], []

    def patch(self, resource, namespace, name, body):
        self.patches.append((resource.plural, namespace, name, body))

    def update_status(self, resource, namespace, body):
        self.status_writes.append((resource, namespace, body))
        return body


class FakeNginx:
    def __init__(self, reject=None):
        self.applied, self.reject, self.text, self.reloads = [], reject, None, 0

    def apply(self, rendered):
        if self.reject:
            raise ConfigRejected(self.reject)
        changed = rendered.text != self.text
        self.text = rendered.text
        self.applied.append(rendered)
        return changed

    def running(self):
        return True


class Recorder:
    def __init__(self):
        self.events = []

    def event(self, obj, event_type, reason, message):
        self.events.append((obj["metadata"]["name"], event_type, reason, message))


def fill(informer, *objects):
    for obj in objects:
        informer.store._put(object_key(obj), obj)


def controller(nginx=None, pod_name="", own_address=""):
    recorder = Recorder()
    found = IngressController(FakeRest(), nginx or FakeNginx(), Settings(), "ingress-nginx",
                              "app.kubernetes.io/name=ingress-nginx", recorder=recorder,
                              pod_name=pod_name, own_address=own_address)
    fill(found.classes, {"metadata": {"name": "steer"},
                         "spec": {"controller": "steersman.io/ingress-nginx"}},
         {"metadata": {"name": "other"}, "spec": {"controller": "example.com/x"}})
    fill(found.services, service("foo"))
    fill(found.slices, endpoint_slice("foo", ["10.244.1.5"]))
    ready = [{"type": "Ready", "status": "True"}]
    fill(found.pods, {"metadata": {"name": "c1", "namespace": "ingress-nginx"},
                      "status": {"phase": "Running", "hostIP": "172.31.250.2",
                                 "conditions": ready}},
         {"metadata": {"name": "c2", "namespace": "ingress-nginx"},
          "status": {"phase": "Running", "hostIP": "172.31.250.1", "conditions": ready}})
    return found, recorder


def test_sync_renders_only_this_class_and_sets_the_status_once():
    ctrl, _ = controller()
    fill(ctrl.ingresses, ingress("mine", rules=[rule("a.example.com", ("/", "Prefix", "foo"))]),
         ingress("theirs", class_name="other",
                 rules=[rule("b.example.com", ("/", "Prefix", "foo"))]))
    ctrl.sync()
    text = ctrl.nginx.applied[-1].text
    assert "a.example.com" in text and "b.example.com" not in text
    assert "server 10.244.1.5:8080" in text
    [(resource, namespace, body)] = ctrl.rest.status_writes
    assert resource is INGRESSES and namespace == "default"
    assert body["metadata"]["name"] == "mine"
    assert body["status"] == {"loadBalancer": {"ingress": [{"ip": "172.31.250.1"},
                                                           {"ip": "172.31.250.2"}]}}
    # Once the cache holds the status, another sync writes nothing.
    fill(ctrl.ingresses, body)
    ctrl.sync()
    assert len(ctrl.rest.status_writes) == 1


def test_a_rejected_configuration_is_a_warning_event_on_the_ingresses():
    ctrl, recorder = controller(FakeNginx(reject="nginx: [emerg] PEM_read_bio_X509_AUX failed"))
    fill(ctrl.ingresses, ingress("mine", rules=[rule("a.example.com", ("/", "Prefix", "foo"))],
                                 tls=[{"hosts": ["a.example.com"], "secretName": "gone"}]))
    ctrl.sync()
    reasons = {(name, kind, reason) for name, kind, reason, _ in recorder.events}
    assert ("mine", "Warning", "RELOAD") in reasons
    assert ("mine", "Warning", "InvalidSecret") in reasons
    [message] = [m for _, _, r, m in recorder.events if r == "RELOAD"]
    assert message.startswith("Error reloading NGINX: nginx: [emerg]")


def test_a_pod_publishes_its_address_and_the_status_prefers_published_addresses():
    ctrl, _ = controller(pod_name="c1", own_address="172.31.250.2")
    fill(ctrl.ingresses, ingress("mine", rules=[rule("a.example.com", ("/", "Prefix", "foo"))]))
    ctrl.sync()
    assert ctrl.rest.patches == [("pods", "ingress-nginx", "c1", {"metadata": {
        "annotations": {"ingress.steersman.io/address": "172.31.250.2"}}})]
    published = ctrl.pods.store.get("ingress-nginx/c2")
    fill(ctrl.pods, {**published, "metadata": {**published["metadata"], "annotations": {
        "ingress.steersman.io/address": "172.31.250.1"}}})
    ctrl.sync()
    assert ctrl.rest.status_writes[-1][2]["status"]["loadBalancer"]["ingress"] == [
        {"ip": "172.31.250.1"}, {"ip": "172.31.250.2"}]
