"""Lookup plugin: one host's plan from agent.provision.plan, for the roles to apply."""

from __future__ import annotations

from ansible.errors import AnsibleError

from ansible.plugins.lookup import LookupBase

DOCUMENTATION = r"""
name: host_plan
author: Steersman project
version_added: "0.1.0"
short_description: The files and services of one Steersman host
description:
  - Builds the cluster from the inventory groups, issues (once, on the controller) the
    certificates and secrets the host needs into O(pki_dir), and returns the host's
    plan from C(agent.provision.plan.plan_host) with its units rendered by
    C(agent.provision.units) from the same templates C(steer cluster create) uses.
  - Steersman must be installed on the controller beside ansible-core.
options:
  _terms:
    description: The inventory name of the host to plan.
    required: true
  cluster_name:
    description: The cluster's name.
    type: str
    required: true
  version:
    description: The release the services run (C(/opt/steersman/<version>)).
    type: str
    required: true
  control:
    description: Inventory names of the control hosts (store members, control plane).
    type: list
    elements: str
    required: true
  workers:
    description: Inventory names of the worker hosts.
    type: list
    elements: str
    default: []
  manager:
    description: The host's service manager.
    type: str
    choices: [systemd, supervisord]
    required: true
  pki_dir:
    description: Directory on the controller holding the cluster's CAs and issued files.
    type: path
    required: true
  settings:
    description: Other ClusterSpec fields (pod_cidr, service_cidr, sandbox_image, ...).
    type: dict
    default: {}
"""

RETURN = r"""
_raw:
  description: The plan as a dict (directories, files with content, services, units).
  type: list
  elements: dict
"""

def _host_spec(planmod, hostvars, name):
    host = hostvars[name]
    address = host.get("steersman_address") or host.get("ansible_host") or name
    return planmod.HostSpec(str(host.get("steersman_node_name") or name), str(address),
                            str(name))


def build_plan(name, hostvars, options):
    """Return the plan of inventory host ``name`` as plain data (used by the tests too)."""
    from agent.provision import plan as planmod
    from agent.provision import services, units
    from cli.baremetal.credentials import ClusterCredentials

    settings = dict(options.get("settings") or {})
    if "registry_mirrors" in settings:
        settings["registry_mirrors"] = tuple(sorted(dict(settings["registry_mirrors"]).items()))
    if "extra_sans" in settings:
        settings["extra_sans"] = tuple(settings["extra_sans"])
    spec = planmod.ClusterSpec(
        name=options["cluster_name"], version=str(options["version"]),
        control=tuple(_host_spec(planmod, hostvars, h) for h in options["control"]),
        workers=tuple(_host_spec(planmod, hostvars, h) for h in options.get("workers") or ()),
        **settings)
    host = _host_spec(planmod, hostvars, name)
    credentials = ClusterCredentials(options["pki_dir"]).host_files(spec, host)
    plan = planmod.plan_host(spec, host, credentials)
    manager = options["manager"]
    files = services.desired_files(plan, manager)
    directories = dict(plan.directories)
    for path, mode in units.manager_directories(manager):
        directories.setdefault(path, mode)
    for item in files:          # parents of the files (e.g. /etc/containerd)
        directories.setdefault(item.path.rsplit("/", 1)[0], 0o755)
    pki = planmod.PKI_DIR + "/"
    return {
        "host": host.name, "version": plan.version, "manager": manager,
        "directories": [{"path": p, "mode": f"0{m:o}"} for p, m in
                        sorted(directories.items(), key=lambda kv: kv[0].count("/"))],
        "files": [{"path": f.path, "content": f.content.decode(), "mode": f"0{f.mode:o}",
                   "services": list(f.services), "secret": f.path.startswith(pki)}
                  for f in files],
        "services": [s.name for s in plan.services],
        "venv": f"{planmod.OPT_DIR}/{plan.version}/venv",
        "store_endpoints": ",".join(spec.store_endpoints),
        "api_server": spec.api_server_url(host),
        "units": {s.name: units.unit_path(manager, s.name) for s in plan.services},
    }


class LookupModule(LookupBase):
    """Return the plan of each host named in the terms."""

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        options = {key: self.get_option(key) for key in (
            "cluster_name", "version", "control", "workers", "manager", "pki_dir", "settings")}
        hostvars = (variables or {}).get("hostvars", {})
        try:
            return [build_plan(term, hostvars, options) for term in terms]
        except ImportError as exc:
            raise AnsibleError(f"steersman is not installed beside ansible-core on the "
                               f"controller ({exc}): pip install steersman there") from exc
        except ValueError as exc:
            raise AnsibleError(f"cannot plan {', '.join(terms)}: {exc}") from exc
