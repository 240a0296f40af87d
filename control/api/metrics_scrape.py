"""Fetch the agents' /stats/summary for metrics.k8s.io (metrics_api.py), with a short cache.

Each Ready node's agent is asked over the same mutual TLS as pods/log
(subresources.kubelet_client_context: its serving certificate must name the node), at
its InternalIP and daemon endpoint port, with a deadline, several at once. An answer
(or a failure) is reused for ``CACHE_SECONDS``, as metrics-server scrapes every 15 s;
a node whose agent failed is left out until the next try.
"""

import concurrent.futures
import http.client
import json
import logging
import ssl
import threading
import time

from control import errors
from control.api import subresources
from control.objects import conditions

log = logging.getLogger(__name__)

#: How long one scrape of an agent is reused (metrics-server's resolution is 15 s).
CACHE_SECONDS = 10.0
CONNECT_TIMEOUT, READ_TIMEOUT = 2.0, 5.0
MAX_SUMMARY_BYTES = 16 * 2**20
SCRAPE_THREADS = 16


def agent_endpoint(node):
    """(host, port) of a Node's agent (its InternalIP and daemon endpoint), or None."""
    try:
        return subresources.agent_endpoint(node)
    except ValueError:
        return None


def fetch_summary(context, node_name, host, port, timeout=READ_TIMEOUT):
    """GET /stats/summary from an agent over mutual TLS; its certificate must name the node."""
    conn = http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT)
    try:
        try:
            conn.sock = subresources.dial_agent(context, host, port, node_name, CONNECT_TIMEOUT)
        except errors.ApiError as exc:      # unreachable, or not the node: left out
            raise OSError(str(exc)) from None
        conn.sock.settimeout(timeout)
        conn.request("GET", "/stats/summary", headers={"Accept": "application/json"})
        response = conn.getresponse()
        body = response.read(MAX_SUMMARY_BYTES + 1)
    finally:
        conn.close()
    if response.status != 200:
        raise OSError(f"the agent answered {response.status}")
    if len(body) > MAX_SUMMARY_BYTES:
        raise OSError(f"the agent's summary is larger than {MAX_SUMMARY_BYTES} bytes")
    summary = json.loads(body)
    if not isinstance(summary, dict):
        raise ValueError("the agent's summary is not a JSON object")
    return summary


class Summaries:
    """Agents' summaries by node name, fetched when older than ``ttl`` (failures too)."""

    def __init__(self, kubelet_tls, fetch=None, clock=time.monotonic, ttl=CACHE_SECONDS):
        self.kubelet_tls, self.clock, self.ttl = kubelet_tls, clock, ttl
        self.fetch = fetch or fetch_summary
        self._cache = {}            # node name -> (fetched at, endpoint, summary or None)
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(SCRAPE_THREADS,
                                                           thread_name_prefix="metrics-scrape")

    def for_nodes(self, nodes):
        """Return {node name: summary} of the Ready ``nodes`` whose agents answered."""
        if self.kubelet_tls is None:
            raise errors.ServiceUnavailable(subresources.NO_KUBELET_CLIENT)
        wanted = {}
        for node in nodes:
            endpoint = agent_endpoint(node)
            if endpoint is not None and conditions.is_ready(node):
                wanted[node["metadata"]["name"]] = endpoint
        with self._lock:            # one scrape at a time; requests meanwhile share it
            now = self.clock()
            stale = {name: endpoint for name, endpoint in wanted.items()
                     if name not in self._cache or self._cache[name][1] != endpoint
                     or now - self._cache[name][0] >= self.ttl}
            futures = {name: self._pool.submit(self._fetch_one, name, endpoint)
                       for name, endpoint in stale.items()}
            for name, future in futures.items():
                self._cache[name] = (now, stale[name], future.result())
            return {name: self._cache[name][2] for name in wanted
                    if self._cache[name][2] is not None}

    def _fetch_one(self, name, endpoint):
        try:
            return self.fetch(self.kubelet_tls, name, *endpoint)
        except (OSError, ValueError, ssl.SSLError, http.client.HTTPException) as exc:
            log.info("event=metrics_scrape_failed node=%s error=%s", name, exc)
            return None
