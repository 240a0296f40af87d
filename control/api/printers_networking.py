"""Table columns of Ingresses and IngressClasses, as kube-apiserver's printers make them.

``kubectl get ingress`` shows NAME, CLASS, HOSTS (three at most, then "+ N
more..."; ``*`` when no rule names a host), ADDRESS (status.loadBalancer's IPs
and host names), PORTS (``80``, or ``80, 443`` when the Ingress has TLS) and AGE;
``kubectl get ingressclass`` NAME, CONTROLLER, PARAMETERS and AGE.
"""

from control.api.printers import AGE, NAME, column, created_age, metadata_of, spec_of

MAX_HOSTS = 3

INGRESS_COLUMNS = [
    NAME,
    column("Class", description="The name of the IngressClass resource that should be used "
           "for ingress"),
    column("Hosts", description="Hosts that incoming requests are matched against before the "
           "ingress rule"),
    column("Address", description="Address is a list containing ingress points for the "
           "load-balancer"),
    column("Ports", description="Ports of TLS configurations that open"),
    AGE]
INGRESSCLASS_COLUMNS = [
    NAME,
    column("Controller", description="Controller that is responsible for handling this class"),
    column("Parameters", description="A reference to a resource with additional "
           "parameters"),
    AGE]


def format_hosts(rules):
    """The first three hosts the rules name, "+ N more..." beyond; ``*`` when none does."""
    hosts, more = [], False
    for rule in rules:
        if len(hosts) == MAX_HOSTS:
            more = True
        if not more and rule.get("host"):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - MAX_HOSTS} more..." if more else text


def load_balancer_addresses(obj):
    """status.loadBalancer.ingress's IPs and host names, comma-separated."""
    entries = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return ",".join(e.get("ip") or e.get("hostname") or "" for e in entries
                    if e.get("ip") or e.get("hostname"))


def print_ingress(obj, now):
    """NAME, CLASS (``<none>`` unset), HOSTS, ADDRESS, PORTS, AGE."""
    spec = spec_of(obj)
    return [metadata_of(obj).get("name", ""), spec.get("ingressClassName") or "<none>",
            format_hosts(spec.get("rules") or []), load_balancer_addresses(obj),
            "80, 443" if spec.get("tls") else "80", created_age(obj, now)]


def print_ingressclass(obj, now):
    """NAME, CONTROLLER, PARAMETERS (``Kind.group/name``, ``<none>``), AGE."""
    spec = spec_of(obj)
    params = spec.get("parameters")
    shown = "<none>"
    if params:
        kind = params.get("kind", "")
        if params.get("apiGroup"):
            kind = f"{kind}.{params['apiGroup']}"
        shown = f"{kind}/{params.get('name', '')}"
    return [metadata_of(obj).get("name", ""), spec.get("controller", ""), shown,
            created_age(obj, now)]
