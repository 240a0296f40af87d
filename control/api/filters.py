"""Turn ``labelSelector`` and ``fieldSelector`` query parameters into a predicate."""

from control import errors
from control.objects import selectors


def from_request(req, resource):
    """Return ``matches(obj) -> bool`` for the request's selectors (400 if malformed)."""
    try:
        labels = selectors.parse_label_selector(req.get_param("labelSelector") or "")
        fields = selectors.parse_field_selector(req.get_param("fieldSelector") or "",
                                                selectors.fields_for_kind(resource.kind))
    except selectors.SelectorError as exc:
        raise errors.BadRequest(str(exc)) from None
    if labels.empty and fields.empty:
        return lambda obj: True
    return lambda obj: (labels.matches(obj.get("metadata", {}).get("labels"))
                        and fields.matches(obj))
