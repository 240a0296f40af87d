"""`steer describe quota` and `steer describe limitrange`, laid out as kubectl's describers.

A ResourceQuota: its scopes, then each resource of status.hard with what is used
(``Resource  Used  Hard``); a LimitRange: one row per type and resource with its
Min, Max, Default Request, Default Limit and Max Limit/Request Ratio ("-" unset).
"""

from cli.describe_page import header

LIMIT_FIELDS = ("min", "max", "defaultRequest", "default", "maxLimitRequestRatio")


def describe_resourcequota(session, page, quota):
    """Name, Namespace, Scopes, then Resource / Used / Hard rows sorted by resource."""
    header(page, quota)
    scopes = (quota.get("spec") or {}).get("scopes") or []
    if scopes:
        page.kv(0, "Scopes", ", ".join(scopes))
    status = quota.get("status") or {}
    hard, used = status.get("hard") or {}, status.get("used") or {}
    page.add(0, "Resource", "Used", "Hard")
    page.add(0, "--------", "----", "----")
    for name in sorted(hard):
        page.add(0, name, used.get(name, "0"), hard[name])


def describe_limitrange(session, page, limit_range):
    """Name, Namespace, then a row per limit type and resource."""
    header(page, limit_range)
    page.add(0, "Type", "Resource", "Min", "Max", "Default Request", "Default Limit",
             "Max Limit/Request Ratio")
    page.add(0, "----", "--------", "---", "---", "---------------", "-------------",
             "-----------------------")
    for item in (limit_range.get("spec") or {}).get("limits") or []:
        names = set()
        for field in LIMIT_FIELDS:
            names.update(item.get(field) or {})
        for name in sorted(names):
            page.add(0, item.get("type", ""), name,
                     *((item.get(field) or {}).get(name, "-") for field in LIMIT_FIELDS))
