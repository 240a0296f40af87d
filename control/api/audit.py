"""Audit every request, as kube-apiserver's --audit-policy-file does.

The policy is Kubernetes' audit.k8s.io/v1 Policy: its rules are tried in order
and the first that matches a request gives its level (no match: None).

- ``None`` logs nothing; ``Metadata`` logs who did what to which object and the
  answer's code; ``Request`` adds the request's body; ``RequestResponse`` is
  treated as ``Request`` (response bodies are never logged here).
- Secrets, TokenReviews and ServiceAccount tokens are logged at most at
  Metadata, whatever the policy says: Kubernetes would log their bodies if
  asked, and then the audit log holds every secret in plain text. We choose not to.

An event (audit.k8s.io/v1 Event) is written when the response is complete, or,
for a watch or a followed log, when its response starts (stage ResponseStarted):
the stream's end is not seen here. Events go one JSON object a line to an
AuditLog (control/api/auditlog.py). The user is ``req.context.user`` (set by the
authentication middleware); a request without one is logged as system:anonymous.
"""

import json
import time
import uuid
from dataclasses import dataclass, field

from control.api import configfile, limits
from control.api.auditlog import AuditLog
from control.api.auth.request_info import RequestInfo, request_info

LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
#: (group, resource) whose request bodies are never logged: they carry secrets.
SENSITIVE = {("", "secrets"), ("authentication.k8s.io", "tokenreviews"),
             ("", "serviceaccounts/token")}
ANONYMOUS = ("system:anonymous", ("system:unauthenticated",))


class PolicyError(ValueError):
    """The audit policy file is not one the API server can use."""


@dataclass(frozen=True)
class Attributes:
    """What a rule matches on: who (user, groups) asks for what (a RequestInfo)."""

    user: str
    groups: tuple
    info: RequestInfo


@dataclass
class Rule:
    level: str
    users: list = field(default_factory=list)
    user_groups: list = field(default_factory=list)
    verbs: list = field(default_factory=list)
    resources: list = field(default_factory=list)      # [{"group", "resources", "resourceNames"}]
    namespaces: list = field(default_factory=list)
    non_resource_urls: list = field(default_factory=list)
    omit_stages: list = field(default_factory=list)

    def matches(self, a):
        if self.users and a.user not in self.users:
            return False
        if self.user_groups and not set(a.groups) & set(self.user_groups):
            return False
        info = a.info
        if self.verbs and info.verb not in self.verbs:
            return False
        if not (self.resources or self.namespaces or self.non_resource_urls):
            return True
        if not info.resource_request:
            if self.resources or self.namespaces:
                return False
            return any(info.path == u or (u.endswith("*") and info.path.startswith(u[:-1]))
                       for u in self.non_resource_urls)
        if self.non_resource_urls:
            return False
        if self.namespaces and info.namespace not in self.namespaces:
            return False
        return not self.resources or any(_group_matches(g, info) for g in self.resources)


def _group_matches(group_resources, info):
    if group_resources.get("group", "") != info.api_group:
        return False
    listed = group_resources.get("resources") or []
    if not listed:
        return True
    names = group_resources.get("resourceNames") or []
    for res in listed:
        if res in (info.resource_and_sub, "*") or (
                info.subresource and res in (f"*/{info.subresource}", f"{info.resource}/*")):
            return not names or info.name in names
    return False


class Policy:
    """The ordered rules and the stages to omit; ``level(attributes)`` decides."""

    def __init__(self, rules, omit_stages=()):
        self.rules = rules
        self.omit_stages = set(omit_stages)

    def level(self, a):
        """(level, stages to omit) for a request."""
        for rule in self.rules:
            if rule.matches(a):
                return rule.level, self.omit_stages | set(rule.omit_stages)
        return "None", self.omit_stages



def load_policy(path):
    """Read an audit Policy file (YAML or JSON); PolicyError says what is wrong."""
    return parse_policy(configfile.read_document(path, PolicyError), path)


def parse_policy(document, where="the audit policy"):
    if not isinstance(document, dict) or document.get("kind") != "Policy" or \
            document.get("apiVersion") != "audit.k8s.io/v1":
        raise PolicyError(f"{where}: want apiVersion audit.k8s.io/v1, kind Policy")
    rules = []
    for i, raw in enumerate(document.get("rules") or []):
        if not isinstance(raw, dict) or raw.get("level") not in LEVELS:
            raise PolicyError(f"{where}: rules[{i}].level: want one of {', '.join(LEVELS)}")
        lists = {}
        for key in ("users", "userGroups", "verbs", "resources", "namespaces",
                    "nonResourceURLs", "omitStages"):
            value = raw.get(key) or []
            if not isinstance(value, list):
                raise PolicyError(f"{where}: rules[{i}].{key}: want a list")
            lists[key] = value
        if (lists["resources"] or lists["namespaces"]) and lists["nonResourceURLs"]:
            raise PolicyError(f"{where}: rules[{i}]: nonResourceURLs cannot be combined with "
                              "resources or namespaces")
        if not all(isinstance(g, dict) for g in lists["resources"]):
            raise PolicyError(f"{where}: rules[{i}].resources: want {{group, resources}} items")
        rules.append(Rule(raw["level"], lists["users"], lists["userGroups"], lists["verbs"],
                          lists["resources"], lists["namespaces"], lists["nonResourceURLs"],
                          _stages(lists["omitStages"], f"{where}: rules[{i}]")))
    return Policy(rules, _stages(document.get("omitStages") or [], where))


def _stages(stages, where):
    for stage in stages:
        if stage not in STAGES:
            raise PolicyError(f"{where}: omitStages: {stage!r} is not one of {', '.join(STAGES)}")
    return list(stages)


def attributes(req, user):
    """The Attributes of a request: its user, and its URL read as kube-apiserver reads it."""
    name, groups = user
    return Attributes(name, tuple(groups), request_info(req.method, req.path, req.params))


def user_of(req):
    user = req.context.get("user")
    if user is None:
        return ANONYMOUS
    return user.name, tuple(user.groups)


def _timestamp(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + \
        f".{int(seconds * 1e6) % 1000000:06d}Z"


class AuditMiddleware:
    """Falcon middleware writing one audit Event per request the policy selects.

    Put it first in the middleware list so that requests refused early (a 401, a
    429) are audited too.
    """

    def __init__(self, policy, log, clock=time.time, new_id=lambda: str(uuid.uuid4())):
        self.policy, self.log, self.clock, self.new_id = policy, log, clock, new_id

    def process_request(self, req, resp):
        req.context.audit_received = self.clock()
        req.context.audit_id = self.new_id()
        resp.set_header("Audit-Id", req.context.audit_id)

    def process_response(self, req, resp, resource, req_succeeded):
        received = req.context.get("audit_received")
        if received is None:
            return
        attrs = attributes(req, user_of(req))
        info = attrs.info
        level, omit = self.policy.level(attrs)
        stage = "ResponseStarted" if limits.is_long_running(req) else "ResponseComplete"
        if level == "None" or stage in omit:
            return
        sensitive = (info.api_group, info.resource_and_sub) in SENSITIVE
        if level in ("Request", "RequestResponse") and sensitive:
            level = "Metadata"
        event = self.event(req, resp, attrs, "Request" if level != "Metadata" else level,
                           stage, received)
        self.log.write(json.dumps(event, separators=(",", ":")).encode())

    def event(self, req, resp, attrs, level, stage, received):
        user = req.context.get("user")
        event = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level,
                 "auditID": req.context.audit_id, "stage": stage,
                 "requestURI": req.relative_uri, "verb": attrs.info.verb,
                 "user": {"username": attrs.user, "groups": list(attrs.groups),
                          **({"uid": user.uid} if user is not None and user.uid else {})},
                 "sourceIPs": [req.remote_addr] if req.remote_addr else [],
                 "userAgent": req.user_agent or "",
                 "responseStatus": _response_status(resp),
                 "requestReceivedTimestamp": _timestamp(received),
                 "stageTimestamp": _timestamp(self.clock())}
        info = attrs.info
        if info.resource_request:
            ref = {"resource": info.resource, "namespace": info.namespace, "name": info.name,
                   "apiGroup": info.api_group, "apiVersion": info.api_version,
                   "subresource": info.subresource}
            event["objectRef"] = {k: v for k, v in ref.items() if v}
        if level == "Request":
            body = _request_object(req.context.get("raw_body"))
            if body is not None:
                event["requestObject"] = body
        return event


def _response_status(resp):
    status = {"metadata": {}, "code": resp.status_code}
    if resp.status_code >= 400 and resp.text and len(resp.text) < 65536:
        try:
            body = json.loads(resp.text)
        except ValueError:
            return status
        if isinstance(body, dict) and body.get("kind") == "Status":
            status.update({k: body[k] for k in ("status", "message", "reason") if k in body})
    return status


def _request_object(raw):
    """The request body as JSON, if it was JSON (YAML is not parsed twice: alias bombs).

    ``raw`` is the body bodies.buffer_body read (``req.context.raw_body``); a
    body the request never had read is not read here either.
    """
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def middleware(policy_file, log_path, max_size_mb=100, max_backups=0):
    """The audit middleware as a list (empty unless both a policy and a log are given)."""
    if not (policy_file and log_path):
        return []
    return [AuditMiddleware(load_policy(policy_file),
                            AuditLog(log_path, max_size_mb, max_backups))]
