"""Turn the v3 paths of openapi_paths.py into a swagger 2.0 document (/openapi/v2).

Swagger 2.0 puts a body among the parameters (``in: body``), types on the
parameters themselves, media types in ``consumes`` and ``produces``, and schemas
under ``definitions``. Keywords swagger 2.0 lacks (oneOf, anyOf, not, nullable,
which a custom resource's schema may hold) are dropped, as kube-apiserver does.
"""

REF = "#/definitions/"
_V3_ONLY = ("oneOf", "anyOf", "not", "nullable")


def _parameter(param):
    out = {"name": param["name"], "in": param["in"], "type": param["schema"]["type"]}
    if param.get("description"):
        out["description"] = param["description"]
    if param.get("required"):
        out["required"] = True
    if param["in"] == "path":
        out["uniqueItems"] = True
    return out


def _operation(op):
    out = {key: value for key, value in op.items()
           if key not in ("parameters", "requestBody", "responses")}
    parameters = [_parameter(p) for p in op.get("parameters", ())]
    body = op.get("requestBody")
    if body is not None:
        media = list(body["content"])
        parameters.insert(0, {"name": "body", "in": "body", "required": True,
                              "schema": body["content"][media[0]]["schema"]})
        out["consumes"] = media
    out["parameters"] = parameters
    produces, responses = [], {}
    for code, response in op["responses"].items():
        converted = {"description": response["description"]}
        for media, content in (response.get("content") or {}).items():
            converted["schema"] = content["schema"]
            if media not in produces:
                produces.append(media)
        responses[code] = converted
    out["produces"] = produces
    out["schemes"] = ["https"]
    out["responses"] = responses
    return out


def _clean(value):
    """Drop the schema keywords swagger 2.0 lacks, at any depth."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if k not in _V3_ONLY}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def document(paths, schemas):
    """Return the swagger 2.0 document of ``paths`` (v3 path items) and ``schemas``."""
    v2_paths = {}
    for path, item in paths.items():
        converted = {}
        for key, value in item.items():
            if key == "parameters":
                converted[key] = [_parameter(p) for p in value]
            else:
                converted[key] = _operation(value)
        v2_paths[path] = converted
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": v2_paths, "definitions": _clean(schemas),
            "securityDefinitions": {"BearerToken": {
                "type": "apiKey", "name": "authorization", "in": "header",
                "description": "Bearer Token authentication"}},
            "security": [{"BearerToken": []}]}
