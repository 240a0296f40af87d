"""Benchmark a list of 500 pods fetched as JSON and as protobuf, in the same run.

Run: ``.venv/bin/python -m bench.api_protobuf`` (``make bench-api`` runs it after
bench.api). It starts a real store cluster and `steer-apiserver` (plain HTTP, so the
figures are the API server's and not TLS's), creates 500 realistic pods (with a
running status), then lists them over one keep-alive connection, alternating JSON
and protobuf rounds so a change in the machine's load weighs on both alike, and
prints requests per second, bytes per answer and the ratio. Protobuf lists are written from the
serialization cache (envelope.SerializationCache), as unchanged pods are in
kube-apiserver; the cold figures (every pod encoded afresh) are measured
in-process, beside json.dumps of the same list.
"""

import argparse
import copy
import http.client
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from control.api.protobuf import envelope  # noqa: E402
from tests.support.apiproc import LocalApiServer  # noqa: E402
from tests.unit.control.protobuf_objects import POD_SPEC, POD_STATUS  # noqa: E402

PODS = "/api/v1/namespaces/default/pods"
JSON = "application/json"
PROTOBUF = f"{envelope.MEDIA_TYPE},application/json"


def pod(index):
    spec = copy.deepcopy(POD_SPEC)
    for unbound in ("nodeName", "priorityClassName", "priority", "hostNetwork"):
        spec.pop(unbound, None)             # scheduled, admitted, valid: as users send them
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"bench-{index:04d}", "labels": {"app": "bench",
                                                                   "index": str(index)}},
            "spec": spec}


def create_pods(server, count):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    failures = []
    for index in range(count):
        conn.request("POST", PODS, body=json.dumps(pod(index)),
                     headers={"Content-Type": JSON})
        answer = conn.getresponse()
        text = answer.read()
        if answer.status != 201:
            failures.append((answer.status, text[:300]))
            continue
        running = dict(json.loads(text), status=POD_STATUS)    # as a node reports it
        conn.request("PUT", f"{PODS}/{running['metadata']['name']}/status",
                     body=json.dumps(running), headers={"Content-Type": JSON})
        answer = conn.getresponse()
        text = answer.read()
        if answer.status != 200:
            failures.append((answer.status, text[:300]))
    conn.close()
    if failures:
        raise SystemExit(f"{len(failures)} pod writes were refused, first: {failures[0]}")


def fetch(conn, accept):
    conn.request("GET", PODS, headers={"Accept": accept})
    answer = conn.getresponse()
    body = answer.read()
    if answer.status != 200:
        raise SystemExit(f"list answered {answer.status}: {body[:300]!r}")
    return answer.getheader("Content-Type"), body


def timed_round(conn, accept, seconds):
    """Return (requests per second, bytes of one answer) over ``seconds``."""
    count, size, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, body = fetch(conn, accept)
        size = len(body)
        count += 1
    return count / (time.perf_counter() - start), size


def codec_figures(listed, repeat=5):
    """In-process: ms to write the list with json.dumps, protobuf cold and cached."""
    def best(action, before=None):
        times = []
        for _ in range(repeat):
            if before:
                before()
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
        return min(times) * 1000
    dumps = best(lambda: json.dumps(listed, separators=(",", ":")))
    cold = best(lambda: envelope.encode(listed), before=envelope.serialized.clear)
    warm = best(lambda: envelope.encode(listed))
    return dumps, cold, warm


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4, help="JSON/protobuf round pairs")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per round")
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-proto-") as base:
        server = LocalApiServer(base, tls=False, extra_args=["--authorization-mode",
                                                             "AlwaysAllow"])
        try:
            server.start()
            create_pods(server, args.pods)
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
            media, raw = fetch(conn, PROTOBUF)
            assert media == envelope.MEDIA_TYPE, media
            _, text = fetch(conn, JSON)
            listed = json.loads(text)
            assert envelope.decode(raw)["items"] == [
                {k: v for k, v in item.items() if k not in ("apiVersion", "kind")}
                for item in listed["items"]], "the protobuf list differs from the JSON one"
            rates = {JSON: [], PROTOBUF: []}
            sizes = {}
            for turn in range(args.rounds):
                for accept in ((JSON, PROTOBUF) if turn % 2 == 0 else (PROTOBUF, JSON)):
                    rate, sizes[accept] = timed_round(conn, accept, args.seconds)
                    rates[accept].append(rate)
            conn.close()
        finally:
            server.stop()
    dumps, cold, warm = codec_figures(listed)
    json_rate = sum(rates[JSON]) / len(rates[JSON])
    proto_rate = sum(rates[PROTOBUF]) / len(rates[PROTOBUF])
    print(f"\n| list of {args.pods} pods | req/s | pods/s | bytes per answer |")
    print("| --- | ---: | ---: | ---: |")
    for name, rate, accept in (("JSON", json_rate, JSON), ("protobuf", proto_rate, PROTOBUF)):
        print(f"| {name} | {rate:,.1f} | {rate * args.pods:,.0f} | {sizes[accept]:,} |")
    print(f"| protobuf / JSON | {proto_rate / json_rate:.2f}x | | "
          f"{sizes[PROTOBUF] / sizes[JSON]:.2f}x |")
    print(f"\nin-process, writing the list: json.dumps {dumps:.1f} ms, protobuf cold "
          f"{cold:.1f} ms (every pod encoded), cached {warm:.2f} ms")
    print(f"rounds (req/s): JSON {[round(r, 1) for r in rates[JSON]]}, protobuf "
          f"{[round(r, 1) for r in rates[PROTOBUF]]}")
    print(f"load average after: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
