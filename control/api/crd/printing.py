"""``kubectl get`` columns of custom objects: the CRD's additionalPrinterColumns.

Name first, then each column's jsonPath value (dates as ages, as kube-apiserver
prints them); a CRD without columns prints Name and Age.
"""

from control.api import printers
from control.api.crd import jsonpath

NAME = {"name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace. Is required when creating "
                       "resources, although some resources may allow a client to request the "
                       "generation of an appropriate name automatically."}
AGE = {"name": "Age", "type": "date", "format": "", "priority": 0,
       "description": "CreationTimestamp is a timestamp representing the server time when "
                      "this object was created."}


def printer_for(resource):
    """Return (column definitions, ``print(obj, now)``) for a custom resource."""
    columns = resource.custom.columns
    if not columns:
        return [NAME, AGE], lambda obj, now: [obj.get("metadata", {}).get("name", ""),
                                              printers.created_age(obj, now)]
    definitions = [NAME] + [{"name": c["name"], "type": c["type"], "format": c.get("format", ""),
                             "description": c.get("description", ""),
                             "priority": c.get("priority", 0)} for c in columns]

    def print_row(obj, now):
        return [obj.get("metadata", {}).get("name", "")] + [_cell(obj, c, now) for c in columns]

    return definitions, print_row


def _cell(obj, column, now):
    try:
        values = jsonpath.find(obj, column["jsonPath"])
    except jsonpath.PathError:
        return None
    if not values:
        return None
    value = values[0] if len(values) == 1 else ",".join(str(v) for v in values)
    if column["type"] == "date" and isinstance(value, str):
        return printers.age(value, now)
    if column["type"] == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if column["type"] == "string" and not isinstance(value, str):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value
