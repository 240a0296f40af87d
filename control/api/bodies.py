"""Read request bodies (JSON or YAML, size-capped) and write JSON responses."""

import json

import yaml

from control import errors

#: kube-apiserver's own limit on a request body.
MAX_BODY_BYTES = 3 * 1024 * 1024


def read_object(req):
    """Parse the request body as one JSON or YAML object."""
    body = read_value(req)
    if not isinstance(body, dict):
        raise errors.BadRequest("the request body must be an object, not "
                                f"{type(body).__name__}")
    return body


def read_value(req):
    """Parse the request body as any JSON or YAML value (a JSON patch is a list)."""
    length = req.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise errors.RequestEntityTooLarge(
            f"the request body is {length} bytes; the limit is {MAX_BODY_BYTES} bytes")
    raw = req.bounded_stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise errors.RequestEntityTooLarge(f"the request body is over {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        raise errors.BadRequest("the request body is empty; send a JSON or YAML object")
    content_type = (req.content_type or "application/json").split(";")[0].strip()
    try:
        if content_type in ("application/yaml", "application/x-yaml", "text/yaml",
                            "application/apply-patch+yaml"):
            body = yaml.safe_load(raw)
        else:
            body = json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.BadRequest(f"the request body is not valid "
                                f"{'YAML' if 'yaml' in content_type else 'JSON'}: {exc}") from None
    return body


def write_json(resp, body, status=None):
    resp.content_type = "application/json"
    resp.text = json.dumps(body, separators=(",", ":"))
    if status is not None:
        resp.status = status
