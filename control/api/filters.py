"""Turn a list's or watch's ``labelSelector`` and ``fieldSelector`` into a predicate."""

from control import errors
from control.objects import selectors


def matcher(resource, label_selector=None, field_selector=None):
    """Return ``matches(obj) -> bool`` for the selectors' text (400 if malformed)."""
    try:
        labels = selectors.parse_label_selector(label_selector or "")
        fields = selectors.parse_field_selector(field_selector or "",
                                                selectors.fields_for_kind(resource.kind))
    except selectors.SelectorError as exc:
        raise errors.BadRequest(str(exc)) from None
    if labels.empty and fields.empty:
        return lambda obj: True
    return lambda obj: (labels.matches(obj.get("metadata", {}).get("labels"))
                        and fields.matches(obj))
