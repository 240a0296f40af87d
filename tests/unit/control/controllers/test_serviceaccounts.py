"""The serviceaccounts controller and the root CA publisher, on fake caches."""

from control.client import Forbidden
from control.controllers.serviceaccounts import RootCACertPublisher, ServiceAccountsController
from tests.unit.control.controllers.fakes import FakeInformer, FakeRest


def ns(name, terminating=False):
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}, "status": {}}
    if terminating:
        obj["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        obj["status"]["phase"] = "Terminating"
    return obj


class Rest(FakeRest):
    def update(self, resource, namespace, body, subresource=None):
        self.actions.append(("update", resource.plural, namespace, body))
        return body


def test_every_active_namespace_gets_a_default_account():
    namespaces = FakeInformer([ns("a"), ns("b"), ns("gone", terminating=True)])
    accounts = FakeInformer([{"kind": "ServiceAccount",
                              "metadata": {"name": "default", "namespace": "b"}}])
    rest = Rest()
    controller = ServiceAccountsController(rest, namespaces, accounts)
    for key in ("a", "b", "gone", "missing"):
        controller.sync(key)
    assert [(a[0], a[1], a[2], a[3]["metadata"]["name"]) for a in rest.actions] == [
        ("create", "serviceaccounts", "a", "default")]


def test_a_deleted_default_account_is_queued_again():
    namespaces, accounts = FakeInformer([ns("a")]), FakeInformer()
    controller = ServiceAccountsController(Rest(), namespaces, accounts)
    account = {"kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "a"}}
    accounts.put(account)
    controller.queue.get(0)
    controller.queue.done("a")
    accounts.remove(account)
    assert controller.queue.get(0) == "a"


def test_a_terminating_namespace_refusal_is_dropped():
    refuse = lambda body: Forbidden(403, "Forbidden", "namespace a is being terminated")  # noqa
    controller = ServiceAccountsController(Rest(fail={"create": refuse}),
                                           FakeInformer([ns("a")]), FakeInformer())
    controller.sync("a")        # no exception: nothing to retry


def test_the_root_ca_is_published_and_kept_current():
    cms = FakeInformer([{"kind": "ConfigMap", "metadata": {
        "name": "kube-root-ca.crt", "namespace": "b", "resourceVersion": "7"},
        "data": {"ca.crt": "OLD"}}])
    rest = Rest()
    controller = RootCACertPublisher(rest, FakeInformer([ns("a"), ns("b")]), cms, "PEM")
    controller.sync("a")
    controller.sync("b")
    (create,), (update,) = rest.of("create"), rest.of("update")
    assert create[3]["data"] == {"ca.crt": "PEM"} and create[2] == "a"
    assert update[3]["data"] == {"ca.crt": "PEM"} and \
        update[3]["metadata"]["resourceVersion"] == "7"
