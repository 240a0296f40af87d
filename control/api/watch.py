"""Stream watch events as newline-delimited JSON, as kube-apiserver does.

A watch starts after ``resourceVersion`` (or now), ends after ``timeoutSeconds``
(default: a random 30–60 minutes, like kube-apiserver's), and reports a compacted
start as one ERROR event carrying a 410 Status, after which the client relists.
"""

import json
import random
import time

from control import errors
from control.registry import watch_event
from store.client import Compacted, StoreError

BOOKMARK_INTERVAL = 60.0
POLL = 1.0


def stream(registry, resource, namespace, since, timeout, bookmarks, matches,
           clock=time.monotonic, transform=None):
    """Yield encoded watch events until the timeout or the client goes away.

    ``transform(event_type, obj)``, when given, replaces each ADDED, MODIFIED,
    DELETED and BOOKMARK object (a Table for ``kubectl get -w``); ERRORs pass as is.
    """
    emit = transform or (lambda kind, obj: obj)
    deadline = clock() + (timeout if timeout else random.uniform(1800, 3600))
    try:
        watch = registry.watch(resource, namespace, since)
    except errors.Gone as exc:
        yield _line("ERROR", exc.status())
        return
    last_bookmark = clock()
    revision = since
    try:
        while clock() < deadline:
            try:
                event = watch.next_event(timeout=min(POLL, max(0.0, deadline - clock())))
            except Compacted as exc:
                yield _line("ERROR", errors.Gone(f"too old resource version: {exc.message}").status())
                return
            except StoreError as exc:
                yield _line("ERROR", errors.ServiceUnavailable(exc.message).status())
                return
            if event is not None:
                kind, obj = watch_event(event)
                revision = event["kv"]["mod_revision"]
                if matches(obj):
                    yield _line(kind, emit(kind, obj))
            elif bookmarks and clock() - last_bookmark >= BOOKMARK_INTERVAL:
                last_bookmark = clock()
                bookmark = {"kind": resource.kind, "apiVersion": resource.api_version,
                            "metadata": {"resourceVersion": str(revision or watch.revision)}}
                yield _line("BOOKMARK", emit("BOOKMARK", bookmark))
    finally:
        watch.cancel()


def _line(kind, obj):
    return (json.dumps({"type": kind, "object": obj}, separators=(",", ":")) + "\n").encode()
