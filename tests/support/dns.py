"""A small cluster in informer caches for the DNS tests, and helpers to read answers.

``cluster_view()`` fills ``control.client.Store``s (as informers would) with
Services, EndpointSlices, Endpoints and Pods that exercise every kind of name:
ClusterIP, dual-stack, headless with slices (hostnames, no hostname, unready),
headless with Endpoints only, headless without endpoints, ExternalName, and a
Service of the same name in another namespace.
"""

import asyncio
import threading

import dns.rdatatype

from control.client.cache import Store
from control.client.rest import object_key
from control.dns.server import DnsServer
from control.dns.view import ClusterView


def service(namespace, name, cluster_ip=None, ports=(), **spec):
    body = {"ports": list(ports), **spec}
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": namespace, "name": name}, "spec": body}


def port(name, number, protocol="TCP"):
    return {"name": name, "port": number, "protocol": protocol}


def endpoint_slice(namespace, service_name, suffix, endpoints, ports, address_type="IPv4"):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": namespace, "name": f"{service_name}-{suffix}",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": address_type, "endpoints": endpoints, "ports": ports}


def slice_endpoint(ip, hostname=None, ready=True):
    endpoint = {"addresses": [ip], "conditions": {"ready": ready}}
    if ready is None:
        endpoint["conditions"] = {}
    if hostname:
        endpoint["hostname"] = hostname
    return endpoint


def endpoints(namespace, name, addresses=(), not_ready=(), ports=()):
    subset = {"addresses": list(addresses), "ports": list(ports)}
    if not_ready:
        subset["notReadyAddresses"] = list(not_ready)
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"namespace": namespace, "name": name}, "subsets": [subset]}


def pod(namespace, name, ip):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": namespace, "name": name},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}


def store_of(objects):
    """A Store holding ``objects``, as an informer's cache after its first list."""
    store = Store()
    for obj in objects:
        store._put(object_key(obj), obj)
    return store


SERVICES = [
    service("default", "web", "10.96.0.10", [port("http", 80), port("dns", 53, "UDP")]),
    service("default", "dual", "10.96.0.11", [port("http", 80)],
            clusterIPs=["10.96.0.11", "fd00::11"]),
    service("default", "v6only", "fd00::12", [port("http", 80)]),
    service("default", "db", "None", [port("pg", 5432)]),
    service("default", "legacy", "None", [port("http", 80)]),
    service("default", "empty", "None", [port("http", 80)]),
    service("default", "pub", "None", [port("http", 80)], publishNotReadyAddresses=True),
    service("default", "ext", None, [], type="ExternalName", externalName="example.com"),
    service("default", "alias", None, [], type="ExternalName",
            externalName="web.default.svc.cluster.local"),
    service("other", "web", "10.96.1.1", [port("https", 443)]),
]

SLICES = [
    endpoint_slice("default", "db", "a", [
        slice_endpoint("10.244.1.5", "db-0"),
        slice_endpoint("10.244.2.6", "db-1", ready=None),      # no condition: ready
        slice_endpoint("10.244.3.7"),                          # no hostname: its dashed IP
        slice_endpoint("10.244.4.8", "db-3", ready=False),     # not ready: left out
    ], [port("pg", 5432)]),
    # The same endpoint again in a second slice (a move in progress): answered once.
    endpoint_slice("default", "db", "b", [slice_endpoint("10.244.1.5", "db-0")],
                   [port("pg", 5432)]),
    endpoint_slice("default", "db", "fqdn", [{"addresses": ["db.example.com"]}],
                   [port("pg", 5432)], address_type="FQDN"),
]

ENDPOINTS = [
    # No slices for legacy: its Endpoints are read instead.
    endpoints("default", "legacy", [{"ip": "10.244.5.9", "hostname": "old-0"}],
              [{"ip": "10.244.5.10"}], [port("http", 8080)]),
    endpoints("default", "pub", [], [{"ip": "10.244.6.1", "hostname": "p-0"}],
              [port("http", 8080)]),
    # Ignored: db has slices, which win.
    endpoints("default", "db", [{"ip": "10.244.9.9"}], [], [port("pg", 5432)]),
]

PODS = [pod("default", "db-0", "10.244.1.5")]


def cluster_view(services=SERVICES, slices=SLICES, endpoint_objects=ENDPOINTS, pods=PODS):
    return ClusterView(store_of(services), store_of(slices), store_of(endpoint_objects),
                       store_of(pods))


def rows(rrsets):
    """Sections as sorted "TYPE data" strings, e.g. ["A 10.96.0.10"]."""
    return sorted(f"{dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}"
                  for rrset in rrsets for rdata in rrset)


class ServerThread:
    """Run a DnsServer for ``handler`` on a free 127.0.0.x port, in a loop of its own thread."""

    def __init__(self, handler, host="127.0.0.1"):
        self.handler, self.host, self.port = handler, host, None
        self.loop = asyncio.new_event_loop()
        self.server = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="dns-test-server")

    def start(self):
        self._thread.start()
        self.server = DnsServer(self.handler, self.host, 0)
        _, self.port = asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self

    def call(self, coroutine, timeout=10):
        """Run ``coroutine`` on the server's loop; return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self):
        if self._thread.is_alive():
            if self.server is not None:
                self.call(self.server.aclose())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.loop.close()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
