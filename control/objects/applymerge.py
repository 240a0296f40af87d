"""Merge an applied configuration into a live object, and remove fields by path.

Server-side apply's value side (managedfields.py decides ownership): maps and
structs merge field by field, associative lists item by item by their keys
(new items appended in the configuration's order), sets are united, atomic
lists and structs and scalars are replaced. A ``null`` in the configuration
removes the field.
"""

import copy
import json

from control.objects import fieldpath, schema


def merge(live, config, type_name):
    """Return ``live`` with ``config`` merged in (neither is changed)."""
    return _merge(copy.deepcopy(live), config, type_name, None, None)


def _merge(live, config, type_name, parent_type, field):
    """Merge ``config`` into ``live``, a copy this merge owns and may change."""
    if isinstance(config, dict) and isinstance(live, dict) and fieldpath.granular(type_name):
        for key, value in config.items():
            if value is None:
                live.pop(key, None)
            else:
                live[key] = _merge(live.get(key), value, fieldpath.child_type(type_name, key),
                                   type_name, key)
        return live
    if isinstance(config, list) and isinstance(live, list) and type_name \
            and schema.is_list(type_name):
        item_type = schema.element_type(type_name)
        kind = fieldpath.list_kind(parent_type, field, item_type)
        if kind == fieldpath.SET:
            return live + [copy.deepcopy(v) for v in config if v not in live]
        if kind is not None:
            return _merge_keyed(live, config, kind, item_type)
    return copy.deepcopy(config)


def _merge_keyed(live, config, keys, item_type):
    positions = {}
    for index, item in enumerate(live):
        positions.setdefault(fieldpath.item_element(item, keys), index)
    for item in config:
        element = fieldpath.item_element(item, keys)
        index = positions.get(element) if element else None
        if index is None:
            live.append(copy.deepcopy(item))
        else:
            live[index] = _merge(live[index], item, item_type, None, None)
    return live


def remove(obj, path, type_name):
    """Remove the field or list item at ``path`` from ``obj`` in place; False if absent.

    A map (labels, annotations, data...) or a list left empty by the removal goes
    too, as Kubernetes does not send an empty one back.
    """
    trail = []
    node, node_type, parent_type, field = obj, type_name, None, None
    for element in path[:-1]:
        found = _step(node, element, node_type, parent_type, field)
        if found is None:
            return False
        trail.append((node, element, found[1]))
        node, node_type, parent_type, field = found
    last = path[-1]
    if isinstance(node, dict) and last.startswith("f:") and last[2:] in node:
        del node[last[2:]]
    elif isinstance(node, list) and last[:2] in ("k:", "v:"):
        kind = fieldpath.list_kind(parent_type, field, _item_type(node_type))
        index = fieldpath.find_item(node, last, kind or _guess_keys(last))
        if index is None:
            return False
        node.pop(index)
    else:
        return False
    for parent, element, child_type in reversed(trail):
        if not (element.startswith("f:") and isinstance(parent, dict)):
            break
        child = parent.get(element[2:])
        empty_map = child == {} and child_type and schema.is_map(child_type)
        if not (empty_map or child == []):
            break
        del parent[element[2:]]
    return True


def _item_type(list_type):
    if list_type and schema.is_list(list_type):
        return schema.element_type(list_type)
    return None


def _step(node, element, node_type, parent_type, field):
    """Follow one path element; return (child, its type, its parent's type, its field)."""
    if isinstance(node, dict) and element.startswith("f:"):
        name = element[2:]
        if name not in node:
            return None
        return node[name], fieldpath.child_type(node_type, name), node_type, name
    if isinstance(node, list) and element[:2] in ("k:", "v:"):
        item_type = _item_type(node_type)
        kind = fieldpath.list_kind(parent_type, field, item_type) if node_type else None
        index = fieldpath.find_item(node, element, kind or _guess_keys(element))
        if index is None:
            return None
        return node[index], item_type, None, None
    return None


def _guess_keys(element):
    """The key fields named by a ``k:`` element (used where the schema says nothing)."""
    if element.startswith("v:"):
        return fieldpath.SET
    try:
        return tuple(json.loads(element[2:]))
    except ValueError:
        return ()
