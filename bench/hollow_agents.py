"""Run several fake-runtime node agents in one process (kubemark's hollow nodes).

Used by bench/pods.py: ``python -m bench.hollow_agents --kubeconfig FILE --first 0
--count 25 --data-dir DIR`` registers nodes ``hollow-000`` ... and runs until
SIGTERM. Each agent is the real `steer-agent` code with the `fake` runtime.
"""

import argparse
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agent.main import Agent, parse_args  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=25)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    agents = []
    for index in range(args.first, args.first + args.count):
        name = f"hollow-{index:03d}"
        agent_args = parse_args([
            "--kubeconfig", args.kubeconfig, "--node-name", name,
            "--node-ip", f"127.0.2.{index % 250 + 1}", "--port", "0", "--runtime", "fake",
            "--data-dir", os.path.join(args.data_dir, name), "--log-level", "WARNING",
            "--max-pods", "110",
            # Hollow nodes serve no logs worth reading (the fake runtime): their ports
            # are plain HTTP on purpose rather than 100 serving certificates.
            "--insecure-plain-http"])
        agents.append(Agent(agent_args).start(stop))
    stop.wait()
    for agent in agents:
        agent.stop()


if __name__ == "__main__":
    main()
