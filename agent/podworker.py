"""One worker per pod: converge the runtime to the pod's spec, step by step.

``sync(now)`` is one level-triggered step (kubelet's SyncPod): it looks at the
pod and at the runtime's records, starts what should run (init containers one
at a time, in order, then every container), restarts what exited as
restartPolicy says with crash-loop backoff, runs due probes, kills what failed
its liveness or startup probe, and posts the status when it changed. It returns
the wall-clock time it next wants to run. When the pod is being deleted it stops
every container (SIGTERM, then SIGKILL after the grace period), then deletes the
pod for good (grace 0), as kubelet confirms a graceful deletion.

The step is deterministic given the runtime, the clock and the API fake, so the
unit tests drive it without threads or sleeps; ``start`` runs it on a thread.
"""

import logging
import os
import signal
import threading

from agent import env as envmod
from agent import launch, paths, pullsecrets, volumes
from agent import status as statusmod
from agent.containers import ContainerState
from agent.probes import ProbeState
from agent.runtime.base import CreateContainerError, Record, RuntimeError_
from control.client import ApiException

log = logging.getLogger(__name__)

#: Seconds before retrying a container whose configuration could not be resolved.
CONFIG_RETRY = 2.0
DEFAULT_GRACE = 30
#: Seconds between rewrites of configMap and secret volumes (kubelet's sync is ~1 minute).
VOLUME_REFRESH = 60.0


class PodWorker:
    """Converge one pod; feed it updates with ``update`` and ``gone``."""

    def __init__(self, ctx, pod, records=()):
        self.ctx, self.pod = ctx, pod
        meta = pod["metadata"]
        self.uid, self.key = meta["uid"], f"{meta['namespace']}/{meta['name']}"
        #: Why the agent refuses to touch this pod's files at all (a hostile uid), or None.
        self.refused = None
        try:
            self.pod_dir = paths.pod_dir(ctx.data_dir, self.uid)
        except paths.UnsafePath as exc:
            self.pod_dir, self.refused = None, str(exc)
        # Secrets and tokens go to the agent's tmpfs directory when it has one.
        secret_base = getattr(ctx, "secret_dir", None)
        self.secret_dir = os.path.join(secret_base, self.uid) \
            if secret_base and self.pod_dir else None
        spec = pod.get("spec") or {}
        self.init = [ContainerState(c, init=True) for c in spec.get("initContainers") or ()]
        self.main = [ContainerState(c) for c in spec.get("containers") or ()]
        self.volume_paths = None
        self.volumes_refresh_at = 0.0
        self.sandbox_id = None      # image runtimes: the sandbox containers start in
        self.sandbox_stopped = False    # stopped once the pod finished (Succeeded/Failed)
        self.init_failed = False
        self.removed = False        # the pod object is gone from the API
        self.terminating_deadline = self.terminating_since = None
        self.finished = False
        self.start_time = None
        self.last_status = None
        self._adopt(records)
        self._cond = threading.Condition()
        self._dirty = False
        self._thread = None
        self._stopping = False

    # -- input ----------------------------------------------------------------------
    def _adopt(self, records):
        """Take over attempts a previous agent started (newest = current, next = previous)."""
        by_name = {}
        for record in records:
            by_name.setdefault((record.init, record.name), []).append(record)
        for state in self.init + self.main:
            attempts = sorted(by_name.get((state.init, state.name), ()), key=lambda r: r.attempt)
            if attempts:
                state.current = attempts[-1]
                state.previous = attempts[-2] if len(attempts) > 1 else None
                if state.running:
                    self._new_probes(state, state.current.started_at)
                log.info("pod=%s container=%s attempt=%d msg=re-adopted running=%s", self.key,
                         state.name, state.current.attempt, state.running)
        if any(s.current for s in self.init + self.main):
            self.start_time = min(s.current.started_at for s in self.init + self.main
                                  if s.current and s.current.started_at)

    def update(self, pod):
        self.pod = pod
        self.poke()

    def gone(self):
        """The pod was deleted from the API (for good): stop everything, confirm nothing."""
        self.removed = True
        self.poke()

    # -- the step -------------------------------------------------------------------
    def sync(self, now):
        """Converge once; return the wall-clock time the worker next wants to run."""
        if self.finished:
            return None
        self._refresh()
        if self.removed or self.pod["metadata"].get("deletionTimestamp"):
            return self._terminate(now)
        if self.start_time is None:
            self.start_time = now
        wake = [now + self.ctx.poll]
        if self._terminal():
            if not self.sandbox_stopped:
                self.ctx.runtime.stop_pod(self.uid)     # frees the pod's IP (cri)
                self.sandbox_stopped = True
            return wake[0] + 9 * self.ctx.poll      # nothing restarts; keep a slow eye
        if self.refused:
            return self._refuse(now)
        if self.volume_paths is None:
            try:
                self.volume_paths = self._materialise()
                self.volumes_refresh_at = now + VOLUME_REFRESH
            except envmod.ConfigError as exc:
                self._event("Warning", "FailedMount", f"MountVolume.SetUp failed: {exc}")
                for state in self.init + self.main:
                    state.waiting_reason, state.waiting_message = "ContainerCreating", str(exc)
                self._post(now)
                return now + CONFIG_RETRY
        elif now >= self.volumes_refresh_at and volumes.has_projected(self.pod):
            self._refresh_volumes(now)
        blocked_until = self._sync_sandbox(now)
        if blocked_until is not None:
            self._post(now)
            return blocked_until
        if self._sync_init(now, wake):
            for state in self.main:
                self._sync_container(state, now, wake)
        else:
            for state in self.main:
                if state.current is None:
                    state.waiting_reason = "PodInitializing"
                elif state.running:
                    self._sync_kill(state, now, wake)   # killed with an old sandbox
        self._post(now)
        return min(wake)

    def _materialise(self):
        """Create the pod's directory (0700) and its volumes; return name -> host path."""
        paths.make_private_dir(os.path.join(self.ctx.data_dir, "pods"))
        paths.make_private_dir(self.pod_dir)
        return volumes.materialise(self.pod, self.pod_dir, self.ctx.api.lookup,
                                   secret_dir=self.secret_dir,
                                   token=getattr(self.ctx.api, "request_token", None),
                                   host_ip=self.ctx.host_ip,
                                   for_containers=self.ctx.runtime.runs_images)

    def _sync_sandbox(self, now):
        """Have the pod's sandbox run (image runtimes); None once containers may start,
        else the time to look again.

        A sandbox that died is replaced, and what still runs in the old one is
        killed so that it restarts in the new one, where the init containers run
        again first, as kubelet does. It is not replaced when nothing would run
        in it (kubelet's computePodActions): a restartPolicy Never pod that ran,
        or one whose init containers and containers are all done for good.
        """
        if self._had_sandbox():
            if self.ctx.runtime.sandbox_ready(self.uid):
                if self.sandbox_id is not None:
                    return None
            elif not self._recreate_sandbox():
                return self._stop_in_dead_sandbox(now)
        try:
            sandbox = self.ctx.runtime.prepare_pod(self.pod, self.pod_dir)
        except RuntimeError_ as exc:
            self._event("Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}")
            for state in self.init + self.main:
                if not state.running:
                    state.waiting_reason, state.waiting_message = "ContainerCreating", str(exc)
            return now + CONFIG_RETRY
        if sandbox is None:
            return None
        if self.sandbox_id is not None and self.sandbox_id != sandbox.id:
            self._event("Normal", "SandboxChanged",
                        "Pod sandbox changed, it will be killed and re-created.")
        self.sandbox_id = sandbox.id
        for state in self.init + self.main:
            if state.running and state.kill_deadline is None and \
                    state.current.sandbox_id not in ("", sandbox.id):
                self._kill(state, now, self._grace())
        return None

    def _had_sandbox(self):
        """True once the pod has had a sandbox (this agent's, or one adopted from records)."""
        return self.sandbox_id is not None or any(
            record is not None and record.sandbox_id
            for state in self.init + self.main for record in (state.current, state.previous))

    def _recreate_sandbox(self):
        """Whether a dead sandbox is replaced: only if something would run in the new one."""
        policy = self._policy()
        if policy == "Never" and any(s.current is not None for s in self.init + self.main):
            return False
        to_start = [s for s in self.main if not (policy == "OnFailure" and _succeeded(s))]
        return bool(to_start) or not all(_succeeded(s) for s in self.init)

    def _stop_in_dead_sandbox(self, now):
        """Kill what still runs of a pod whose sandbox died and will not be replaced."""
        wake = [now + self.ctx.poll]
        for state in self.init + self.main:
            if state.running and state.kill_deadline is None:
                self._kill(state, now, self._grace())
            if state.running:
                self._sync_kill(state, now, wake)
        return min(wake)

    def _in_sandbox(self, record):
        """True if ``record`` ran in the pod's current sandbox (or the runtime has none)."""
        return not record.sandbox_id or self.sandbox_id is None or \
            record.sandbox_id == self.sandbox_id

    def _refuse(self, now):
        """Run nothing of a pod whose files could not be kept in its directory; say why."""
        for state in self.init + self.main:
            state.waiting_reason, state.waiting_message = "CreateContainerConfigError", \
                self.refused
        if self.last_status is None:
            self._event("Warning", "Failed", f"Error: {self.refused}")
        self._post(now)
        return now + 10 * self.ctx.poll

    def _refresh_volumes(self, now):
        """Rewrite configMap, secret and projected volumes, so containers see updates."""
        self.volumes_refresh_at = now + VOLUME_REFRESH
        try:
            self._materialise()
        except envmod.ConfigError as exc:
            log.info("pod=%s msg=volume refresh failed, keeping the old files error=%s",
                     self.key, exc)

    def _terminal(self):
        return (self.last_status or self.pod.get("status") or {}).get("phase") in \
            ("Succeeded", "Failed") and not any(s.running for s in self.init + self.main)

    def _sync_init(self, now, wake):
        """Run init containers in order; return True once all have succeeded."""
        policy = self._policy()
        for state in self.init:
            if state.running:
                self._sync_kill(state, now, wake)
                return False
            fresh = state.current is not None and self._in_sandbox(state.current)
            if fresh and state.current.exit_code == 0:
                continue
            if not fresh:
                # Never ran, or ran in a sandbox that is gone: (again) from the first one.
                self._start(state, now, wake)
            elif policy == "Never":
                self.init_failed = True
            else:
                self._restart(state, now, wake)
            return False
        return True

    def _sync_container(self, state, now, wake):
        if state.current is None:
            self._start(state, now, wake)
            return
        if state.running:
            self._sync_kill(state, now, wake)
            if state.kill_deadline is None:
                self._probe(state, now, wake)
            return
        state.kill_deadline = None
        policy, code = self._policy(), state.current.exit_code
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            self._restart(state, now, wake)

    def _restart(self, state, now, wake):
        """Start the next attempt, unless crash-loop backoff says to wait."""
        if state.retry_at is not None and now < state.retry_at:
            wake.append(state.retry_at)     # a configuration or create error: keep waiting
            return
        key = f"{self.uid}/{state.name}"
        finished = state.current.finished_at or now
        backoff = self.ctx.backoff
        if backoff.in_backoff_since(key, finished, now):
            delay = backoff.current(key)
            state.waiting_reason = "CrashLoopBackOff"
            state.waiting_message = (f"back-off {delay:g}s restarting failed container="
                                     f"{state.name} pod={self._pod_ref()}")
            if state.backoff_reported != finished:
                state.backoff_reported = finished
                self._event("Warning", "BackOff", "Back-off restarting failed container "
                                                  f"{state.name} in pod {self._pod_ref()}")
            wake.append(now + backoff.remaining(key, finished, now))
            return
        backoff.next(key, now)
        self._start(state, now, wake)

    def _service_env(self):
        """Services' variables (agent/env.py service_env) for containers of an image runtime."""
        services = getattr(self.ctx.api, "services", None)
        if services is None or not self.ctx.runtime.runs_images:
            return {}
        namespace = self.pod["metadata"]["namespace"]
        try:
            listed = services(namespace)
        except (ApiException, OSError) as exc:
            raise envmod.ConfigError(f"failed to list services: {exc}") from None
        links = (self.pod.get("spec") or {}).get("enableServiceLinks", True) is not False
        return envmod.service_env(listed, namespace, links)

    def _create_key(self, state):
        return f"{self.uid}/{state.name}/create"

    def _start(self, state, now, wake):
        if state.retry_at is not None and now < state.retry_at:
            wake.append(state.retry_at)
            return
        attempt = state.current.attempt + 1 if state.current else 0
        image = self._ensure_image(state, now, wake)
        if image is None:
            return
        try:
            paths.check_name(state.name, "container")
            container_env = envmod.resolve_env(self.pod, state.spec, self.ctx.api.lookup,
                                               self.ctx.host_ip,
                                               extra={**self._service_env(),
                                                      "HOSTNAME": self.pod["metadata"]["name"]})
            build = launch.image_config if self.ctx.runtime.runs_images else \
                launch.process_config
            files = launch.PodFiles(self.pod, self.pod_dir, self.volume_paths, self.secret_dir)
            config = build(files, state.spec, attempt, container_env, image, init=state.init)
        except envmod.ConfigError as exc:
            self._config_error(state, now, wake, exc)
            return
        try:
            record = self.ctx.runtime.start(config)
        except envmod.ConfigError as exc:         # the runtime refused the configuration
            self._config_error(state, now, wake, exc)
            return
        except CreateContainerError as exc:
            self._create_error(state, now, wake, exc)
            return
        except RuntimeError_ as exc:
            # As a StartError: the attempt counts and ends at once, so backoff applies.
            record = Record("", self.uid, state.name, attempt, started_at=now, exit_code=128,
                            finished_at=now, reason="StartError", init=state.init,
                            message=str(exc))
            self._event("Warning", "Failed", f"Error: {exc}")
        else:
            # Both once the runtime answered: a refused configuration created nothing.
            self._event("Normal", "Created", f"Created container {state.name}")
            self._event("Normal", "Started", f"Started container {state.name}")
        self.ctx.backoff.forget(self._create_key(state))
        if state.current is not None:
            self._forget(state.previous)        # kubelet keeps one previous attempt
            state.previous = state.current
        state.current = record
        state.waiting_reason = state.waiting_message = None
        state.kill_deadline = None
        if record.running:
            self._new_probes(state, now)
        wake.append(now)        # look again at once (a crash at start is seen quickly)

    def _config_error(self, state, now, wake, exc):
        state.waiting_reason, state.waiting_message = "CreateContainerConfigError", str(exc)
        state.retry_at = now + CONFIG_RETRY
        self._event("Warning", "Failed", f"Error: {exc}")
        wake.append(now + CONFIG_RETRY)

    def _create_error(self, state, now, wake, exc):
        """kubelet's CreateContainerError: nothing ran, so the container waits and is
        retried after a delay that doubles per failure (10 s, 20 s ... up to the cap)."""
        delay = self.ctx.backoff.next(self._create_key(state), now)
        state.waiting_reason, state.waiting_message = "CreateContainerError", str(exc)
        state.retry_at = now + delay
        self._event("Warning", "Failed", f"Error: {exc}")
        wake.append(state.retry_at)

    def _ensure_image(self, state, now, wake):
        """The image to run (the image manager's ref), or None while the container waits."""
        if self.ctx.images is None:
            return state.spec.get("image", "")
        secrets = pullsecrets.pull_secrets_for(self.pod, self.ctx.api.lookup, self.ctx.recorder)
        result = self.ctx.images.ensure(self.pod, state.spec, secrets)
        if result.ref:
            return result.ref
        state.waiting_reason, state.waiting_message = result.waiting_reason, \
            result.waiting_message
        state.retry_at = result.retry_at if result.retry_at is not None else now + CONFIG_RETRY
        wake.append(state.retry_at)
        return None

    def _new_probes(self, state, started_at):
        state.probes = {kind: ProbeState(kind, state.spec[f"{kind}Probe"], started_at)
                        for kind in ("startup", "liveness", "readiness")
                        if state.spec.get(f"{kind}Probe") and not state.init}

    def _probe(self, state, now, wake):
        """Run the due probes: startup until it succeeds, then liveness and readiness."""
        for kind in ("startup", "liveness", "readiness"):
            probe = state.probes.get(kind)
            if probe is None:
                continue
            if kind != "startup" and not state.started():
                return
            if kind == "startup" and probe.result is True:
                continue
            if probe.due(now):
                ok, message = self.ctx.prober.run(
                    probe, state.current, state.spec,
                    self.ctx.runtime.pod_ip(self.uid, self.ctx.host_ip))
                probe.record(ok, now, message)
                if not ok:
                    self._event("Warning", "Unhealthy",
                                f"{kind.capitalize()} probe failed: {message}")
                if kind in ("liveness", "startup") and probe.result is False:
                    self._event("Normal", "Killing", f"Container {state.name} failed {kind} "
                                                     "probe, will be restarted")
                    grace = probe.probe.get("terminationGracePeriodSeconds")
                    self._kill(state, now, self._grace() if grace is None else grace)
                    wake.append(now)
                    return
            if kind != "startup" or probe.result is not True:
                wake.append(probe.next_due)

    # -- killing --------------------------------------------------------------------
    def _kill(self, state, now, grace):
        state.kill_deadline = now + grace
        if grace <= 0:
            self.ctx.runtime.signal(state.current.container_id, signal.SIGKILL)
        else:
            self.ctx.runtime.signal(state.current.container_id, signal.SIGTERM, grace=grace)
        self._refresh_one(state)

    def _sync_kill(self, state, now, wake):
        if state.kill_deadline is None:
            return
        if now >= state.kill_deadline:
            self.ctx.runtime.signal(state.current.container_id, signal.SIGKILL)
            self._refresh_one(state)
        else:
            wake.append(state.kill_deadline)

    def _grace(self):
        grace = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        return DEFAULT_GRACE if grace is None else grace

    def _terminate(self, now):
        grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        grace = self._grace() if grace is None else grace
        if self.terminating_deadline is None:
            self.terminating_since = now
            self.terminating_deadline = now + grace
            for state in self.init + self.main:
                if state.running:
                    self._event("Normal", "Killing", f"Stopping container {state.name}")
                    self._kill(state, now, grace)
        # A second delete may shorten the grace period (never lengthen it).
        self.terminating_deadline = min(self.terminating_deadline,
                                        self.terminating_since + grace)
        running = [s for s in self.init + self.main if s.running]
        if running and now < self.terminating_deadline:
            return min(now + self.ctx.poll, self.terminating_deadline)
        for state in running:
            self.ctx.runtime.signal(state.current.container_id, signal.SIGKILL)
            self._refresh_one(state)
        if any(s.running for s in self.init + self.main):
            return now + min(self.ctx.poll, 0.2)        # SIGKILL is being delivered
        if not self.removed:
            self.ctx.api.delete(self.pod)       # raises to retry; NotFound is success
        self._cleanup()
        self.finished = True
        return None

    def _cleanup(self):
        for state in self.init + self.main:
            for record in (state.current, state.previous):
                if record is not None and record.container_id:
                    self.ctx.runtime.remove(record.container_id)
        if self.pod_dir is not None:
            # Only <data dir>/pods/<uid> (and its tmpfs twin); a hostPath is never removed.
            try:
                paths.remove_pod_dir(self.ctx.data_dir, self.uid)
                if self.secret_dir:
                    paths.remove_entry(self.secret_dir, os.path.dirname(self.secret_dir))
            except OSError as exc:
                log.warning("pod=%s msg=cannot remove the pod's directory error=%s", self.key,
                            exc)
        self.ctx.runtime.release_pod(self.uid)
        if self.ctx.images is not None:
            self.ctx.images.forget_pod(self.uid)
        for state in self.init + self.main:
            self.ctx.backoff.forget(f"{self.uid}/{state.name}")
            self.ctx.backoff.forget(self._create_key(state))

    # -- helpers ----------------------------------------------------------------------
    def _forget(self, record):
        if record is None:
            return
        if record.container_id:
            self.ctx.runtime.remove(record.container_id)
        if not record.log_path or self.pod_dir is None:
            return
        logs_dir = os.path.join(self.pod_dir, "logs")
        for path in [record.log_path] + [f"{record.log_path}.{i}" for i in range(1, 10)]:
            # The record's path comes from disk: remove it only inside this pod's logs.
            if os.path.lexists(path) and paths.is_within(os.path.dirname(path), logs_dir):
                os.remove(path)

    def _refresh(self):
        for state in self.init + self.main:
            self._refresh_one(state)

    def _refresh_one(self, state):
        if state.running and state.current.container_id:
            record = self.ctx.runtime.inspect(state.current.container_id)
            if record is not None:
                state.current = record
            else:
                # The runtime lost it (removed behind our back): over, with an unknown end.
                state.current = Record(**{**state.current.__dict__, "exit_code": 137,
                                          "finished_at": self.ctx.clock(),
                                          "reason": "ContainerStatusUnknown"})

    def _policy(self):
        return (self.pod.get("spec") or {}).get("restartPolicy") or "Always"

    def _pod_ref(self):
        meta = self.pod["metadata"]
        return f"{meta['name']}_{meta['namespace']}({self.uid})"

    def _event(self, kind, reason, message):
        self.ctx.recorder.event(self.pod, kind, reason, message)

    def _post(self, now):
        status = self.build_status(now)
        if status != self.last_status:
            self.ctx.api.patch_status(self.pod, status)
            self.last_status = status

    def build_status(self, now):
        host_ip = self.ctx.host_ip
        pod_ip = self.ctx.runtime.pod_ip(self.uid, host_ip)
        return statusmod.build(self.pod, [s.view() for s in self.init],
                               [s.view() for s in self.main], now, host_ip, pod_ip,
                               self.start_time or now, self.ctx.runtime.scheme,
                               init_failed=self.init_failed,
                               old=self.last_status or self.pod.get("status") or {})

    def log_path(self, container, previous=False):
        """The log file of a container's current (or previous) attempt, or None."""
        for state in self.init + self.main:
            if state.name == container:
                record = state.previous if previous else state.current
                return (record.log_path or None) if record else None
        return None

    def waiting_reason(self, container):
        return next((s.waiting_reason or "ContainerCreating" for s in self.init + self.main
                     if s.name == container), None)

    def is_running(self, container):
        return any(s.name == container and s.running for s in self.init + self.main)

    # -- thread -----------------------------------------------------------------------
    def poke(self):
        with self._cond:
            self._dirty = True
            self._cond.notify()

    def start(self):
        self._thread = threading.Thread(target=self._loop, name=f"pod-{self.key}", daemon=True)
        self._thread.start()

    def stop(self):
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def _loop(self):
        wake = self.ctx.clock()
        while True:
            with self._cond:
                while not self._dirty and not self._stopping:
                    timeout = wake - self.ctx.clock() if wake is not None else None
                    if timeout is not None and timeout <= 0:
                        break
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                self._dirty = False
            try:
                wake = self.sync(self.ctx.clock())
            except Exception as exc:       # an API or runtime hiccup: look again soon
                log.warning("pod=%s msg=sync failed, retrying error=%r", self.key, exc)
                wake = self.ctx.clock() + 1.0
            if self.finished:
                return


def _succeeded(state):
    """True if the container's last attempt ended with exit code 0."""
    return state.current is not None and not state.running and state.current.exit_code == 0
