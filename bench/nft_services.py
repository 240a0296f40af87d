"""Time the nftables Service rules: build and apply N Services x M endpoints.

    sudo .venv/bin/python -m bench.nft_services [--services 1000] [--endpoints 10]

Runs in a network namespace of its own (deleted at the end); prints the script
size, the time to build it, the first apply (empty table), a re-apply after one
endpoint changed with the table replaced whole, and the same change sent as a change
script (what the Syncer does once a table is in place). Prints figures only.
"""

import argparse
import os
import time

from agent import netns
from agent.network.nft_apply import run_script
from agent.network.nft_rules import NodeView, build_ruleset
from agent.network.nft_ruleset import update_script

VIEW = NodeView("node-1", ("10.250.0.1",), "10.244.0.0/16", "10.96.0.0/16")


def objects(services, endpoints, changed=False):
    svcs, slices = [], []
    for i in range(services):
        name = f"s{i}"
        svcs.append({"metadata": {"namespace": "default", "name": name},
                     "spec": {"type": "NodePort", "clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                              "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                         "nodePort": 30000 + i % 2700}]}})
        addresses = [f"10.{100 + i // 250}.{i % 250}.{j + 1}" for j in range(endpoints)]
        if changed and i == 0:
            addresses[0] = "10.99.99.99"
        slices.append({"metadata": {"namespace": "default", "name": f"{name}-x",
                                    "labels": {"kubernetes.io/service-name": name}},
                       "addressType": "IPv4",
                       "endpoints": [{"addresses": [a], "nodeName": f"node-{j % 3}"}
                                     for j, a in enumerate(addresses)],
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    return svcs, slices


def timed(fn):
    started = time.monotonic()
    value = fn()
    return value, time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=10)
    args = parser.parse_args()
    name = f"steer-bench-nft-{os.getpid()}"
    path = netns.add(name)
    try:
        rules, build = timed(lambda: build_ruleset(*objects(args.services, args.endpoints),
                                                   VIEW))
        script = rules.script()
        _, first = timed(lambda: run_script(script, path))
        changed = build_ruleset(*objects(args.services, args.endpoints, changed=True), VIEW)
        _, again = timed(lambda: run_script(changed.script(), path))
        change, diff = timed(lambda: update_script(changed, rules))
        _, incremental = timed(lambda: run_script(change, path))
        print(f"services={args.services} endpoints={args.endpoints} "
              f"script_bytes={len(script)} script_lines={script.count(chr(10))}")
        print(f"build_s={build:.2f} first_apply_s={first:.2f} replace_apply_s={again:.2f}")
        print(f"change_script_bytes={len(change)} diff_s={diff:.3f} "
              f"change_apply_s={incremental:.3f}")
    finally:
        netns.delete(name)


if __name__ == "__main__":
    main()
