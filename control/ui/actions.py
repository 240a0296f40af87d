"""The dashboard's writes: scale, rollout restart, rollout undo, YAML edit.

Each is a POST from a form (CSRF-checked by the session gate) that becomes one API
request as the user; a refusal is shown, never hidden.
"""

import datetime
import urllib.parse

import falcon
import yaml

from control import errors
from control.api import decoding
from control.ui import kinds
from control.ui.failure import UiError
from control.ui.views import answer_or_raise, notice_text

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
REVISION = "deployment.kubernetes.io/revision"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def _back(ns, plural, name, notice):
    query = urllib.parse.urlencode({"notice": notice})
    raise falcon.HTTPSeeOther(f"/ui/namespaces/{urllib.parse.quote(ns, safe='')}/{plural}/"
                              f"{urllib.parse.quote(name, safe='')}?{query}")


def scale(api, form, ns, plural, name):
    if plural not in kinds.SCALABLE:
        raise UiError(400, f"{plural} cannot be scaled")
    try:
        replicas = int(form.get("replicas", ""))
    except ValueError:
        raise UiError(400, "replicas must be a whole number") from None
    if not 0 <= replicas <= 100000:
        raise UiError(400, "replicas must be between 0 and 100000")
    answer_or_raise(api.call("PATCH", kinds.path(plural, ns, name, "scale"),
                             body=b'{"spec":{"replicas":%d}}' % replicas, content_type=MERGE))
    return "scaled"


def restart(api, form, ns, plural, name, clock=None):
    """Stamp the pod template (kubectl rollout restart): the controller rolls every pod."""
    if plural not in kinds.RESTARTABLE:
        raise UiError(400, f"{plural} cannot be restarted")
    now = (clock or (lambda: datetime.datetime.now(datetime.timezone.utc)))()
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    answer_or_raise(api.call("PATCH", kinds.path(plural, ns, name), body=patch,
                             content_type=MERGE))
    return "restarted"


def previous_template(deployment, replica_sets):
    """Return the pod template of the revision before the current one (kubectl's undo)."""
    uid = deployment["metadata"].get("uid")
    owned = []
    for rs in replica_sets:
        owners = rs["metadata"].get("ownerReferences") or []
        revision = (rs["metadata"].get("annotations") or {}).get(REVISION, "")
        if any(o.get("uid") == uid for o in owners) and revision.isdigit():
            owned.append((int(revision), rs))
    owned.sort(key=lambda pair: pair[0])
    if len(owned) < 2:
        return None
    template = dict(owned[-2][1]["spec"]["template"])
    metadata = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items()
              if k != "pod-template-hash"}
    metadata["labels"] = labels
    template["metadata"] = metadata
    return template


def undo(api, form, ns, plural, name):
    if plural != "deployments":
        raise UiError(400, "rollout undo is offered for Deployments only")
    deployment = answer_or_raise(api.get(kinds.path(plural, ns, name)))
    selector = kinds.selector_string(deployment["spec"].get("selector"))
    replica_sets = answer_or_raise(api.get(f"/apis/apps/v1/namespaces/{ns}/replicasets",
                                           labelSelector=selector or None)).get("items") or []
    template = previous_template(deployment, replica_sets)
    if template is None:
        raise UiError(409, f"deployment {name} has no previous revision to roll back to")
    patch = [{"op": "replace", "path": "/spec/template", "value": template}]
    answer_or_raise(api.call("PATCH", kinds.path(plural, ns, name), body=patch,
                             content_type=JSON_PATCH))
    return "undone"


ACTIONS = {"scale": scale, "restart": restart, "undo": undo}


class Action:
    def on_post(self, req, resp, ns, plural, name, action):
        if action not in ACTIONS or plural not in kinds.KINDS:
            raise UiError(404, f"no action {action} for {plural}")
        notice = ACTIONS[action](req.context.api, req.context.form, ns, plural, name)
        _back(ns, plural, name, notice)


def to_yaml(obj):
    return yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True)


class YamlEditor:
    """Show an object as YAML; PUT the edited YAML, the server's 422 causes inline."""

    def __init__(self, templates):
        self.templates = templates

    def _render(self, req, resp, ns, plural, name, text, code=200, error="", causes=()):
        self.templates.render(resp, "yaml.html", code, session=req.context.session, ns=ns,
                              plural=plural, name=name, text=text, error=error,
                              causes=list(causes), notice=notice_text(req))

    def on_get(self, req, resp, ns, plural, name):
        if plural not in kinds.KINDS:
            raise UiError(404, f"the dashboard does not edit {plural}")
        obj = answer_or_raise(req.context.api.get(kinds.path(plural, ns, name)))
        # As kubectl edit: managedFields are hidden, and a PUT without them keeps them.
        obj.get("metadata", {}).pop("managedFields", None)
        self._render(req, resp, ns, plural, name, to_yaml(obj))

    def on_post(self, req, resp, ns, plural, name):
        if plural not in kinds.KINDS:
            raise UiError(404, f"the dashboard does not edit {plural}")
        text = req.context.form.get("yaml", "")
        try:
            obj = decoding.decode_yaml(text.encode("utf-8"))
        except errors.ApiError as exc:
            return self._render(req, resp, ns, plural, name, text, 400, exc.message)
        if not isinstance(obj, dict):
            return self._render(req, resp, ns, plural, name, text, 400,
                                "the YAML must be one object (a mapping)")
        answer = req.context.api.call("PUT", kinds.path(plural, ns, name), body=obj)
        if not answer.ok:
            return self._render(req, resp, ns, plural, name, text, answer.code,
                                answer.message, answer.causes())
        raise falcon.HTTPSeeOther(f"/ui/yaml/{urllib.parse.quote(ns, safe='')}/{plural}/"
                                  f"{urllib.parse.quote(name, safe='')}?notice=saved")


def add_routes(app, templates):
    app.add_route("/ui/act/{ns}/{plural}/{name}/{action}", Action())
    app.add_route("/ui/yaml/{ns}/{plural}/{name}", YamlEditor(templates))
