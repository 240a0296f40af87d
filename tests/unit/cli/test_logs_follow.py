"""Many log streams at once: prefixes, kubectl's stream limit, and the selector follower."""

import io

import pytest

from cli import logs_follow
from control.client import errors as api_errors


def pod(name, uid=None, containers=("app",), init=(), started=None, annotations=None):
    """A pod; ``started`` maps container -> containerID of its running instance."""
    statuses = [{"name": c, "restartCount": 0, "containerID": cid, "state": {"running": {}}}
                for c, cid in (started or {}).items()]
    return {"metadata": {"name": name, "uid": uid or f"uid-{name}",
                         "annotations": annotations or {}},
            "spec": {"containers": [{"name": c} for c in containers],
                     "initContainers": [{"name": c} for c in init]},
            "status": {"containerStatuses": statuses}}


class FakeStream:
    def __init__(self, lines):
        self.lines, self.closed = list(lines), False

    def readline(self):
        return b"" if self.closed or not self.lines else self.lines.pop(0)

    def close(self):
        self.closed = True


class Opener:
    """Opens FakeStreams from a script; records every open (pod, container, first)."""

    def __init__(self, script=None):
        self.script, self.opened = script or {}, []

    def __call__(self, pod_name, container, first):
        self.opened.append((pod_name, container, first))
        lines = self.script.get((pod_name, container), [f"{pod_name} says hi\n".encode()])
        if isinstance(lines, Exception):
            raise lines
        return FakeStream(lines)


class Later:
    """A spawn that runs nothing until ``run()``: a stream stays open in between."""

    def __init__(self):
        self.pending = []

    def __call__(self, fn):
        self.pending.append(fn)

    def run(self):
        while self.pending:
            self.pending.pop(0)()


def follower(opener, max_streams=5, spawn=None, warnings=None, **names):
    out = io.BytesIO()
    printer = logs_follow.Printer(out)
    f = logs_follow.SelectorFollower(
        opener, printer, lambda p: logs_follow.container_names(p, **names), max_streams,
        spawn=spawn or (lambda fn: fn()), warn=(warnings if warnings is not None else []).append)
    return f, out


def test_each_line_carries_its_pod_and_container():
    out = io.BytesIO()
    printer = logs_follow.Printer(out)
    printer.line("web-1", "app", b"one\n")
    printer.line("web-2", "side", b"two")          # a last line without its newline
    assert out.getvalue() == b"[pod/web-1/app] one\n[pod/web-2/side] two\n"


def test_colour_per_pod_only_when_asked():
    out = io.BytesIO()
    printer = logs_follow.Printer(out, colour=True)
    for name in ("a", "b", "a"):
        printer.line(name, "c", b"x\n")
    lines = out.getvalue().split(b"\n")
    assert lines[0].startswith(b"\x1b[32m[pod/a/c] \x1b[0m")
    assert lines[1].startswith(b"\x1b[33m[pod/b/c] ") and lines[2] == lines[0]
    plain = io.BytesIO()
    logs_follow.Printer(plain, prefix=False).line("a", "c", b"x\n")
    assert plain.getvalue() == b"x\n"


def test_which_containers():
    p = pod("web", containers=("app", "side"), init=("setup",))
    assert logs_follow.container_names(p) == ["app"]
    assert logs_follow.container_names(p, all_containers=True) == ["setup", "app", "side"]
    assert logs_follow.container_names(p, container="side") == ["side"]
    assert logs_follow.container_names(p, container="nope") == []
    chosen = pod("web", containers=("app", "side"),
                 annotations={logs_follow.DEFAULT_CONTAINER: "side"})
    assert logs_follow.container_names(chosen) == ["side"]


def test_reading_one_by_one_goes_on_after_a_failure():
    opener = Opener({("b", "app"): api_errors.from_status(400, b'{"message": "waiting"}')})
    out, warned = io.BytesIO(), []
    failed = logs_follow.read_one_by_one([("a", "app"), ("b", "app"), ("c", "app")], opener,
                                         logs_follow.Printer(out), warned.append)
    assert failed == 1 and len(warned) == 1 and "error:" in warned[0]
    assert out.getvalue() == b"[pod/a/app] a says hi\n[pod/c/app] c says hi\n"


def test_too_many_streams_is_kubectls_error():
    f, _ = follower(Opener(), max_streams=2, all_containers=True)
    pods = [pod("a", containers=("x", "y")), pod("b")]
    with pytest.raises(ValueError) as exc:
        f.start(pods)
    assert str(exc.value) == ("you are attempting to follow 3 log streams, but maximum "
                              "allowed concurrency is 2, use --max-log-requests to "
                              "increase the limit")


def test_one_stream_is_never_too_many():
    f, _ = follower(Opener(), max_streams=1)
    f.start([pod("a", started={"app": "c1"})])


def test_started_pods_are_followed_and_later_ones_are_picked_up():
    opener = Opener()
    f, out = follower(opener)
    f.start([pod("a", started={"app": "c1"}), pod("b")])       # b not started yet
    assert opener.opened == [("a", "app", True)]
    f.sync(pod("b", started={"app": "c2"}))                    # b starts
    f.sync(pod("c", started={"app": "c3"}))                    # a new pod
    assert opener.opened[1:] == [("b", "app", True), ("c", "app", False)]
    assert out.getvalue().count(b"says hi") == 3


def test_the_same_instance_is_not_read_twice_but_a_restart_is():
    opener = Opener()
    f, _ = follower(opener)
    f.start([pod("a", started={"app": "c1"})])
    f.sync(pod("a", started={"app": "c1"}))                    # a status update
    assert len(opener.opened) == 1
    f.sync(pod("a", started={"app": "c2"}))                    # the container restarted
    assert opener.opened[1] == ("a", "app", False)             # read whole, no --tail


def test_a_restart_seen_while_the_old_stream_is_open_is_read_when_it_ends():
    opener, later = Opener(), Later()
    f, _ = follower(opener, spawn=later)
    f.start([pod("a", started={"app": "c1"})])
    f.sync(pod("a", started={"app": "c2"}))                    # old stream not done yet
    assert f.active() == [("uid-a", "app")]
    later.run()                                                # c1 ends; c2 opens
    assert [o[2] for o in opener.opened] == [True, False]
    assert f.active() == []


def test_a_deleted_pod_is_dropped_and_its_stream_closed():
    opened = []

    def opener(pod_name, container, first):
        opened.append(FakeStream([b"line\n"] * 3))
        return opened[-1]

    later = Later()
    f, out = follower(opener, spawn=later)
    f.start([pod("a", started={"app": "c1"})])
    f.forget(pod("a"))
    later.run()
    assert f.active() == [] and out.getvalue() == b""
    assert not opened or opened[0].closed


def test_the_limit_holds_for_pods_that_come_later_and_frees_up():
    later, warnings = Later(), []
    f, _ = follower(Opener(), max_streams=1, spawn=later, warnings=warnings)
    f.start([pod("a", started={"app": "c1"})])
    f.sync(pod("b", started={"app": "c2"}))
    assert f.active() == [("uid-a", "app")]
    assert warnings and "--max-log-requests 1" in warnings[0]
    f.forget(pod("a"))
    f.sync(pod("b", started={"app": "c2"}))                    # the next event opens it
    assert f.active() == [("uid-b", "app")]


def test_a_relist_forgets_pods_that_went_away_during_a_broken_watch():
    later = Later()
    f, _ = follower(Opener(), spawn=later)
    f.start([pod("a", started={"app": "c1"}), pod("b", started={"app": "c2"})])
    f.reconcile([pod("b", started={"app": "c2"})])
    assert f.active() == [("uid-b", "app")]


def test_an_open_failure_is_reported_and_frees_the_slot():
    warnings = []
    opener = Opener({("a", "app"): api_errors.ConnectionFailed("refused")})
    f, _ = follower(opener, warnings=warnings)
    f.start([pod("a", started={"app": "c1"})])
    assert f.active() == [] and "pod/a/app" in warnings[0]


class FakeRest:
    """list_all answers in turn; each watch call pops one script of events."""

    def __init__(self, lists, watches):
        self.answers, self.watches, self.lists = list(lists), list(watches), 0

    def list_all(self, resource, namespace, selector):
        self.lists += 1
        return self.answers.pop(0), "10"

    def watch(self, resource, namespace, resource_version, timeout_seconds, label_selector):
        if not self.watches:
            raise KeyboardInterrupt
        events = self.watches.pop(0)
        if isinstance(events, Exception):
            raise events
        return iter(events)


def test_follow_selector_lists_watches_and_relists_after_expiry():
    new_pod = pod("b", started={"app": "c2"})
    rest = FakeRest([[pod("a", started={"app": "c1"})], [new_pod], [new_pod]], [
        [("ADDED", new_pod), ("DELETED", pod("a"))],
        [("ERROR", {"code": 410})],
        api_errors.ConnectionFailed("broken"),
    ])
    opener = Opener()
    f, _ = follower(opener)
    with pytest.raises(KeyboardInterrupt):
        logs_follow.follow_selector(rest, "pods", "default", "app=web", f, lambda s: None)
    assert rest.lists == 3                 # the first list, after the 410, after the break
    assert [o[0] for o in opener.opened] == ["a", "b"]
