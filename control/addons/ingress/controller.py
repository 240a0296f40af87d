"""Watch the API and keep nginx serving the Ingresses of this controller's classes.

Informers cache IngressClasses, Ingresses, Services, EndpointSlices, TLS Secrets
and this controller's own pods. Any change wakes one sync loop, which renders
the configuration from the caches (render.py) and hands it to nginx (nginx.py):
an unchanged text does nothing, a changed one is checked and reloaded, a
rejected one keeps the running configuration and is reported as a Warning
Event (reason RELOAD, as ingress-nginx) on the Ingresses. After each sync the
Ingresses' status.loadBalancer.ingress is set to the node addresses of this
controller's running, ready pods (the DaemonSet listens on the nodes' ports 80
and 443): the address each pod publishes in the annotation
ingress.steersman.io/address (the node's own address on its network, which
__main__ finds), else the pod's hostIP.

An Ingress is this controller's when its ``spec.ingressClassName`` (or the
older ``kubernetes.io/ingress.class`` annotation) names an IngressClass whose
``spec.controller`` is ours, or when it names none and one of ours carries
``ingressclass.kubernetes.io/is-default-class: "true"``.
"""

import logging
import threading

from control.addons.ingress import CONTROLLER_NAME
from control.addons.ingress.nginx import ConfigRejected
from control.addons.ingress.render import render
from control.client import ApiException, Informer
from control.client.events import EventRecorder
from control.objects import kinds

log = logging.getLogger(__name__)

CLASS_ANNOTATION = "kubernetes.io/ingress.class"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
TLS_SECRETS = "type=kubernetes.io/tls"
#: Where each controller pod publishes the address its node is reached on, when that
#: is not the node's InternalIP (a local cluster's nodes live in namespaces of their own).
ADDRESS_ANNOTATION = "ingress.steersman.io/address"
#: Seconds changes are gathered before a sync: a rollout's burst is one reload.
SETTLE = 0.1
INGRESSES = kinds.lookup("networking.k8s.io", "v1", "ingresses")
INGRESSCLASSES = kinds.lookup("networking.k8s.io", "v1", "ingressclasses")


def our_classes(classes, controller=CONTROLLER_NAME):
    """(names of the IngressClasses of ``controller``, whether one of them is the default)."""
    names, default = set(), False
    for item in classes:
        if (item.get("spec") or {}).get("controller") != controller:
            continue
        meta = item.get("metadata") or {}
        names.add(meta.get("name"))
        if (meta.get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true":
            default = True
    return names, default


def is_ours(ingress, names, default):
    """Whether ``ingress`` belongs to one of the classes ``names`` (see the module doc)."""
    chosen = (ingress.get("spec") or {}).get("ingressClassName") or \
        ((ingress.get("metadata") or {}).get("annotations") or {}).get(CLASS_ANNOTATION)
    return chosen in names if chosen else default


def node_addresses(pods):
    """Sorted addresses of the running, ready pods in ``pods``: each one's published
    address (ADDRESS_ANNOTATION), else its node's (status.hostIP)."""
    found = set()
    for pod in pods:
        status = pod.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions") or [])
        published = ((pod.get("metadata") or {}).get("annotations") or {}).get(
            ADDRESS_ANNOTATION) or status.get("hostIP")
        if status.get("phase") == "Running" and ready and published:
            found.add(published)
    return sorted(found)


class IngressController:
    """The sync loop: caches in, nginx configuration and Ingress status out."""

    def __init__(self, rest, nginx, settings, pod_namespace, pod_selector, recorder=None,
                 pod_name="", own_address=""):
        self.rest, self.nginx, self.settings = rest, nginx, settings
        self.pod_namespace, self.pod_name, self.own_address = pod_namespace, pod_name, \
            own_address
        self.recorder = recorder or EventRecorder(rest, "ingress-nginx-controller")
        self.classes = Informer(rest, INGRESSCLASSES)
        self.ingresses = Informer(rest, INGRESSES)
        self.services = Informer(rest, kinds.SERVICES)
        self.slices = Informer(rest, kinds.ENDPOINTSLICES)
        self.secrets = Informer(rest, kinds.SECRETS, field_selector=TLS_SECRETS)
        self.pods = Informer(rest, kinds.PODS, namespace=pod_namespace,
                             label_selector=pod_selector)
        self.informers = [self.classes, self.ingresses, self.services, self.slices,
                          self.secrets, self.pods]
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.syncs = 0
        for informer in self.informers:
            informer.add_handler(self._changed, self._changed, self._changed)

    def _changed(self, *objects):
        self._wake.set()

    def start(self):
        for informer in self.informers:
            informer.start()

    def synced(self):
        return all(informer.has_synced() for informer in self.informers)

    def stop(self):
        self._stop.set()
        self._wake.set()
        for informer in self.informers:
            informer.stop(timeout=2)

    def run(self):
        """Sync whenever something changed, until ``stop``.

        nginx starts at once on a configuration that routes nothing and answers
        /readyz with 503, so the liveness probe (/healthz) holds while the caches
        fill; the first sync makes it ready.
        """
        self.nginx.apply(render([], [], [], [], self.settings, ready=False))
        while not self._stop.is_set():
            if not self.synced():
                self._stop.wait(0.1)
                continue
            self._wake.clear()
            try:
                self.sync()
            except ApiException as exc:
                log.warning("msg=status update failed, retrying at the next change: %s", exc)
                self._stop.wait(1.0)
                self._wake.set()
            if not self.nginx.running() and self.nginx.text is not None:
                raise RuntimeError("nginx exited; the controller stops so that it is restarted")
            self._wake.wait(5.0)
            self._stop.wait(SETTLE)

    def ours(self):
        names, default = our_classes(self.classes.store.list())
        return [i for i in self.ingresses.store.list() if is_ours(i, names, default)]

    def sync(self):
        """Render, apply (reload when the text changed), report problems, set status."""
        self.syncs += 1
        ingresses = self.ours()
        rendered = render(ingresses, self.services.store.list(), self.slices.store.list(),
                          self.secrets.store.list(), self.settings, ready=True)
        by_ref = {f"{(i.get('metadata') or {}).get('namespace')}/"
                  f"{(i.get('metadata') or {}).get('name')}": i for i in ingresses}
        for ref, reason, message in rendered.problems:
            if ref in by_ref:
                self.recorder.event(by_ref[ref], "Warning", reason, message)
        try:
            if self.nginx.apply(rendered):
                log.info("msg=nginx configuration applied ingresses=%d reloads=%d",
                         len(ingresses), self.nginx.reloads)
        except ConfigRejected as exc:
            log.warning("msg=nginx -t rejected the new configuration; the running one is "
                        "kept: %s", exc)
            for ingress in ingresses:
                self.recorder.event(ingress, "Warning", "RELOAD",
                                    f"Error reloading NGINX: {exc}")
        self.update_status(ingresses)

    def publish_own_address(self):
        """Annotate this controller's pod with its address (once; the cache tells)."""
        if not (self.pod_name and self.own_address):
            return
        pod = self.pods.store.get(f"{self.pod_namespace}/{self.pod_name}")
        annotations = ((pod or {}).get("metadata") or {}).get("annotations") or {}
        if pod is not None and annotations.get(ADDRESS_ANNOTATION) != self.own_address:
            self.rest.patch(kinds.PODS, self.pod_namespace, self.pod_name, {"metadata": {
                "annotations": {ADDRESS_ANNOTATION: self.own_address}}})

    def update_status(self, ingresses):
        self.publish_own_address()
        wanted = [{"ip": ip} for ip in node_addresses(self.pods.store.list())]
        for ingress in ingresses:
            current = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            if (current or []) == wanted:
                continue
            body = {**ingress, "status": {"loadBalancer": {"ingress": wanted} if wanted
                                          else {}}}
            meta = ingress["metadata"]
            self.rest.update_status(INGRESSES, meta.get("namespace"), body)
            log.info("msg=status set ingress=%s/%s addresses=%s", meta.get("namespace"),
                     meta.get("name"), ",".join(w["ip"] for w in wanted) or "-")
