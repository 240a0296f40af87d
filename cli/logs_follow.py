"""Logs of many containers at once: a label selector's pods, or every container of a pod.

Each line is written whole, prefixed ``[pod/<name>/<container>] `` as ``kubectl logs
--prefix`` does (the colour per pod only on a terminal). Without ``--follow`` the
streams are read one after the other. With it they are read together, and for a
selector, as stern does, a watch on the selector opens the streams of pods (and of
restarted containers) that start later and drops those of pods that are deleted;
``--max-log-requests`` caps how many streams are open at once (kubectl's limit of 5).
"""

import http.client
import socket
import sys
import threading

from control.client import errors as api_errors

#: ANSI colours for the pods' prefixes, in the order the pods first appear.
PALETTE = ("32", "33", "34", "35", "36", "31", "92", "93", "94", "95", "96", "91")
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"


def too_many_streams(count, limit):
    """kubectl's refusal to follow more streams than --max-log-requests."""
    return (f"you are attempting to follow {count} log streams, but maximum allowed "
            f"concurrency is {limit}, use --max-log-requests to increase the limit")


def container_names(pod, container=None, all_containers=False):
    """The containers whose logs to read: the named one, all of them, or the default one."""
    spec = pod.get("spec") or {}
    regular = [c["name"] for c in spec.get("containers") or []]
    every = ([c["name"] for c in spec.get("initContainers") or []] + regular +
             [c["name"] for c in spec.get("ephemeralContainers") or []])
    if container:
        return [container] if container in every else []
    if all_containers:
        return every
    default = ((pod.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER)
    if default in regular:
        return [default]
    return regular[:1]


def started_instances(pod):
    """{container name: containerID} of the containers that have started (running or ended)."""
    status = pod.get("status") or {}
    found = {}
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for entry in status.get(key) or []:
            state = entry.get("state") or {}
            if "running" in state or "terminated" in state:
                found[entry.get("name")] = entry.get("containerID") or \
                    f"restart-{entry.get('restartCount', 0)}"
    return found


class Printer:
    """Write whole lines from many threads, each with its stream's prefix."""

    def __init__(self, out, prefix=True, colour=False):
        self.out, self.prefix, self.colour = out, prefix, colour
        self._lock = threading.Lock()
        self._colours = {}

    def label(self, pod, container):
        text = f"[pod/{pod}/{container}] "
        if not self.colour:
            return text.encode()
        code = self._colours.setdefault(pod, PALETTE[len(self._colours) % len(PALETTE)])
        return f"\x1b[{code}m{text}\x1b[0m".encode()

    def line(self, pod, container, data):
        if not data.endswith(b"\n"):
            data += b"\n"
        with self._lock:
            if self.prefix:
                self.out.write(self.label(pod, container))
            self.out.write(data)
            self.out.flush()


class LogStream:
    """One streaming GET of a pod's log on its own connection; ``close()`` from any thread."""

    def __init__(self, rest, path, query):
        self._conn = rest._new_connection(None)
        self._closed = False
        try:
            self._conn.request("GET", rest._url(path, query),
                               headers={**rest._headers(None), "Accept": "*/*"})
            self._response = self._conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            raise api_errors.ConnectionFailed(f"GET {path}: {exc}") from exc
        if self._response.status >= 400:
            data = self._response.read()
            self._conn.close()
            raise api_errors.from_status(self._response.status, data)

    def readline(self):
        """The next line (b"" at the end, or once closed)."""
        try:
            return self._response.readline()
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            if self._closed:
                return b""
            raise

    def close(self):
        self._closed = True
        sock = self._conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)     # wakes a thread blocked reading
            except OSError:
                pass
        self._conn.close()


def pump(stream, emit, stopped=lambda: False):
    """Hand every line of ``stream`` to ``emit`` until it ends or ``stopped()``."""
    while not stopped():
        line = stream.readline()
        if not line:
            return
        if not stopped():
            emit(line)


def read_one_by_one(targets, open_stream, printer, warn=None):
    """Read each (pod, container)'s log whole, in order; return how many failed."""
    warn = warn or (lambda text: print(text, file=sys.stderr))
    failed = 0
    for pod, container in targets:
        try:
            stream = open_stream(pod, container, False)
        except api_errors.ApiException as exc:
            warn(f"error: {exc}")
            failed += 1
            continue
        try:
            pump(stream, lambda data, p=pod, c=container: printer.line(p, c, data))
        finally:
            stream.close()
    return failed


class SelectorFollower:
    """Keep one open stream per started container of the pods a selector matches.

    ``open_stream(pod, container, first)`` opens a followed log (``first``: the pod
    was there at the start, so --tail and --since apply; a pod or container instance
    that starts later is read from its first line). ``spawn(fn)`` runs ``fn`` on its
    own thread (injected so tests can run it inline).
    """

    def __init__(self, open_stream, printer, containers_of, max_streams, spawn=None,
                 warn=None):
        self.open_stream, self.printer = open_stream, printer
        self.containers_of, self.max_streams = containers_of, max_streams
        self.spawn = spawn or (lambda fn: threading.Thread(target=fn, daemon=True).start())
        self.warn = warn or (lambda text: print(text, file=sys.stderr, flush=True))
        self._lock = threading.Lock()
        self._pods = {}          # uid -> the last pod object seen
        self._active = {}        # (uid, container) -> [instance id, stream or None, stopped]
        self._done = {}          # (uid, container) -> the instance id last read to its end
        self._initial = set()    # uids present at the start
        self._refused = set()

    def start(self, pods):
        """Take the first list: refuse (kubectl's error) when there are too many streams."""
        count = sum(len(self.containers_of(pod)) for pod in pods)
        if count > 1 and count > self.max_streams:
            raise ValueError(too_many_streams(count, self.max_streams))
        self._initial = {pod["metadata"]["uid"] for pod in pods}
        self.reconcile(pods)

    def reconcile(self, pods):
        """A full list (after a watch restarts): forget the pods gone, sync the rest."""
        uids = {pod["metadata"]["uid"] for pod in pods}
        for uid in [uid for uid in self._pods if uid not in uids]:
            self.forget(self._pods[uid])
        for pod in pods:
            self.sync(pod)

    def sync(self, pod):
        """A pod was added or changed: open the streams of containers that started since."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            self._pods[uid] = pod
            to_open = []
            started = started_instances(pod)
            for container in self.containers_of(pod):
                key, instance = (uid, container), started.get(container)
                if instance is None or key in self._active or self._done.get(key) == instance:
                    continue
                if len(self._active) >= self.max_streams:
                    if key not in self._refused:
                        self._refused.add(key)
                        self.warn(f"not following pod/{pod['metadata']['name']}/{container}: "
                                  f"{len(self._active)} streams are open "
                                  f"(--max-log-requests {self.max_streams})")
                    continue
                self._refused.discard(key)
                first = uid in self._initial and key not in self._done
                entry = self._active[key] = [instance, None, False]
                to_open.append((key, entry, pod["metadata"]["name"], container, first))
        for item in to_open:
            self.spawn(lambda item=item: self._read(*item))

    def forget(self, pod):
        """A pod was deleted: stop reading its streams."""
        uid = pod["metadata"]["uid"]
        with self._lock:
            self._pods.pop(uid, None)
            self._initial.discard(uid)
            closing = [key for key in self._active if key[0] == uid]
            streams = []
            for key in closing:
                entry = self._active.pop(key)
                entry[2] = True
                streams.append(entry[1])
            for key in [key for key in self._done if key[0] == uid]:
                del self._done[key]
        for stream in streams:
            if stream is not None:
                stream.close()

    def active(self):
        """The (pod uid, container) pairs being read now."""
        with self._lock:
            return sorted(self._active)

    def _read(self, key, entry, pod_name, container, first):
        stream = None
        try:
            stream = self.open_stream(pod_name, container, first)
            with self._lock:
                if entry[2]:
                    return
                entry[1] = stream
            pump(stream, lambda data: self.printer.line(pod_name, container, data),
                 stopped=lambda: entry[2])
        except api_errors.ApiException as exc:
            if not entry[2]:
                self.warn(f"error: pod/{pod_name}/{container}: {exc}")
        finally:
            if stream is not None:
                stream.close()
            self._finished(key, entry)

    def _finished(self, key, entry):
        """A stream ended: a newer instance may already have started (a restart)."""
        with self._lock:
            if self._active.get(key) is not entry:
                return                     # forgotten meanwhile
            del self._active[key]
            self._done[key] = entry[0]
            pod = self._pods.get(key[0])
        if pod is not None:
            self.sync(pod)


def follow_selector(rest, pods_resource, namespace, selector, follower, sleep,
                    watch_seconds=300):
    """List then watch the selector's pods, feeding ``follower``, until interrupted."""
    items, version = rest.list_all(pods_resource, namespace, selector)
    follower.start(items)
    while True:
        if version is None:
            try:
                items, version = rest.list_all(pods_resource, namespace, selector)
            except api_errors.ApiException:
                sleep(1.0)
                continue
            follower.reconcile(items)
        try:
            for kind, obj in rest.watch(pods_resource, namespace, resource_version=version,
                                        timeout_seconds=watch_seconds,
                                        label_selector=selector):
                if kind == "ERROR":
                    version = None             # too old: list again
                    break
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind == "DELETED":
                    follower.forget(obj)
                elif kind in ("ADDED", "MODIFIED"):
                    follower.sync(obj)
        except api_errors.ApiException:
            version = None
            sleep(1.0)


def follow_fixed(targets, open_stream, printer):
    """Follow a fixed set of (pod, container) streams together until all of them end."""
    threads = []
    for pod, container in targets:
        def run(pod=pod, container=container):
            try:
                stream = open_stream(pod, container, True)
            except api_errors.ApiException as exc:
                print(f"error: {exc}", file=sys.stderr, flush=True)
                return
            try:
                pump(stream, lambda data: printer.line(pod, container, data))
            finally:
                stream.close()
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        while thread.is_alive():
            thread.join(0.5)
