"""Fakes for the agent's unit tests: a clock, the API, an event recorder, a prober."""

import itertools

from agent.backoff import Backoff
from agent.containers import Context
from agent.podworker import PodWorker
from agent.runtime.fake import FakeRuntime


class FakeClock:
    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class FakeApi:
    def __init__(self):
        self.objects = {}           # (kind, namespace, name) -> object
        self.statuses = []          # every status posted, in order
        self.deleted = []

    def lookup(self, kind, namespace, name):
        return self.objects.get((kind, namespace, name))

    def patch_status(self, pod, status):
        self.statuses.append(status)

    def delete(self, pod):
        self.deleted.append(pod["metadata"]["name"])

    @property
    def last(self):
        return self.statuses[-1]


class FakeRecorder:
    def __init__(self):
        self.events = []

    def event(self, obj, kind, reason, message):
        self.events.append((kind, reason, message))

    def reasons(self):
        return [reason for _, reason, _ in self.events]


class FakeProber:
    """Probe outcomes scripted per (container, kind): a list consumed in order, then ``default``."""

    def __init__(self, default=True):
        self.script, self.default, self.runs = {}, default, []

    def run(self, state, record, container, pod_ip):
        key = (container["name"], state.kind)
        self.runs.append(key)
        queue = self.script.get(key)
        ok = queue.pop(0) if queue else self.default
        return ok, "" if ok else "scripted failure"


_uids = itertools.count(1)


def make_pod(containers=None, init=None, policy="Always", name="web", grace=None, **spec):
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "uid": f"uid-{next(_uids)}"},
           "spec": {"nodeName": "n1", "restartPolicy": policy,
                    "containers": containers or [{"name": "c", "image": "busybox",
                                                  "command": ["sleep", "1000"]}],
                    **spec},
           "status": {}}
    if init:
        pod["spec"]["initContainers"] = init
    if grace is not None:
        pod["spec"]["terminationGracePeriodSeconds"] = grace
    return pod


class Harness:
    """A pod worker on the fake runtime, clock and API; ``step`` runs one sync."""

    def __init__(self, pod, tmp_path, backoff=None, prober=None, records=()):
        self.clock, self.api, self.recorder = FakeClock(), FakeApi(), FakeRecorder()
        self.runtime = FakeRuntime(clock=self.clock)
        self.prober = prober or FakeProber()
        self.ctx = Context(self.runtime, self.api, self.recorder,
                           backoff or Backoff(10, 300, 600), self.prober, self.clock,
                           str(tmp_path), "10.0.0.5", "n1")
        self.pod = pod
        self.worker = PodWorker(self.ctx, pod, records)
        self.uid = pod["metadata"]["uid"]

    def step(self, advance=0.0):
        self.clock.advance(advance)
        return self.worker.sync(self.clock())

    def status(self, name="c"):
        status = self.api.last
        for item in status.get("initContainerStatuses", []) + status["containerStatuses"]:
            if item["name"] == name:
                return item
        raise KeyError(name)

    def state(self, name="c"):
        return next(iter(self.status(name)["state"]))

    def condition(self, kind):
        return next(c for c in self.api.last["conditions"] if c["type"] == kind)["status"]
