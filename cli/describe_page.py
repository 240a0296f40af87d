"""The page `steer describe` prints: aligned key/value lines, and the blocks every kind
shares (name and namespace, owner, events).

``Page`` collects lines of cells at indentation levels and lays them out with Go's
tabwriter rules (see cli.output.tabwrite), which is how kubectl's describers align.
"""

from datetime import datetime, timezone

from cli import output
from cli.events_cmd import first_seen, last_seen
from control.client import errors as api_errors

SKIP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


class Page:
    """Lines of tab-separated cells at indentation levels, printed through tabwrite."""

    def __init__(self):
        self.lines = []

    def add(self, level, *cells):
        cells = [str(c) for c in cells]
        cells[0] = "  " * level + cells[0]
        self.lines.append(cells)

    def kv(self, level, key, value):
        self.add(level, f"{key}:", "<none>" if value in (None, "") else value)

    def mapping(self, level, key, values, sep="="):
        """Labels/annotations: first on the key's line, the rest below it, aligned."""
        items = [(k, v) for k, v in sorted((values or {}).items()) if k not in SKIP_ANNOTATIONS]
        if not items:
            self.kv(level, key, "<none>")
            return
        for index, (k, v) in enumerate(items):
            text = f"{k}{sep}{v}"
            if index == 0:
                self.add(level, f"{key}:", text)
            else:
                self.add(level, "", text)

    def text(self):
        return "\n".join(line.rstrip() for line in output.tabwrite(self.lines, 0, 2))


def when(timestamp):
    """RFC 1123 with numeric zone, as kubectl's describe prints times."""
    parsed = output.parse_time(timestamp)
    return parsed.strftime("%a, %d %b %Y %H:%M:%S %z") if parsed else "<unset>"


# -- events --------------------------------------------------------------------------------
def object_events(session, obj):
    events = session.resolve("events")
    meta = obj["metadata"]
    selector = f"involvedObject.kind={obj['kind']},involvedObject.name={meta['name']}"
    try:
        items, _ = session.rest.list_all(events, meta.get("namespace") or None,
                                         field_selector=selector)
    except api_errors.ApiException:
        return []
    uid = meta.get("uid")
    items = [e for e in items if not (e.get("involvedObject") or {}).get("uid")
             or e["involvedObject"]["uid"] == uid]
    return sorted(items, key=last_seen)


def events_section(page, events):
    if not events:
        page.add(0, "Events:", "<none>")
        return
    now = datetime.now(timezone.utc)
    page.add(0, "Events:")
    page.add(1, "Type", "Reason", "Age", "From", "Message")
    page.add(1, "----", "------", "----", "----", "-------")
    for event in events:
        count = event.get("count") or 1
        age = output.human_duration((now - first_seen(event)).total_seconds())
        if count > 1:
            last = output.human_duration((now - last_seen(event)).total_seconds())
            age = f"{last} (x{count} over {age})"
        source = ((event.get("source") or {}).get("component")
                  or event.get("reportingComponent") or "")
        page.add(1, event.get("type", ""), event.get("reason", ""), age, source,
                 (event.get("message") or "").strip())


# -- shared blocks -------------------------------------------------------------------------
def header(page, obj, namespaced=True, created=False):
    meta = obj["metadata"]
    page.kv(0, "Name", meta["name"])
    if namespaced:
        page.kv(0, "Namespace", meta.get("namespace"))
    if created:
        page.kv(0, "CreationTimestamp", when(meta.get("creationTimestamp")))


def controlled_by(page, obj):
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            page.kv(0, "Controlled By", f"{ref.get('kind')}/{ref.get('name')}")
