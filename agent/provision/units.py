"""Render the templates in agent/provision/templates: unit files, programs, configs (pure).

The Jinja2 environment is set up as Ansible's template module sets up its own
(trim_blocks, trailing newline kept), so a template renders to the same bytes here
and in a role. plan.py renders component configs with ``render``; services.py and the
Ansible lookup turn a plan's ServiceSpecs into systemd units or supervisord programs
with ``service_files``.
"""

import functools
import os

import jinja2

from agent.provision import plan as planmod

TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
MANAGED_BY = "Managed by Steersman (steer cluster / ansible steersman.cluster): edits are replaced."
#: Unit and program settings shared by every service.
DEFAULTS = {"managed_by": MANAGED_BY, "restart_sec": 2, "limit_nofile": 1048576,
            "stop_timeout": 30, "start_retries": 1000, "supervisor_minfds": 8192,
            "log_dir": planmod.LOG_DIR,
            "run_dir": planmod.RUN_DIR, "supervisor_dir": planmod.SUPERVISOR_DIR}
SUPERVISORD_CONF = f"{planmod.SUPERVISOR_DIR}/supervisord.conf"
MANAGERS = ("systemd", "supervisord")


@functools.lru_cache(maxsize=1)
def environment():
    """The Jinja2 environment: strict about undefined names, Ansible's whitespace rules."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=False, keep_trailing_newline=True,
        autoescape=False)


def render(template, **values):
    """Render ``template`` (a file name in templates/) with DEFAULTS and ``values``."""
    return environment().get_template(template).render({**DEFAULTS, **values})


def unit_path(manager, name):
    """Where the unit (systemd) or program (supervisord) of service ``name`` lives."""
    if manager == "systemd":
        return f"{planmod.SYSTEMD_DIR}/{name}.service"
    if manager == "supervisord":
        return f"{planmod.SUPERVISOR_DIR}/conf.d/{name}.conf"
    raise ValueError(f"unknown service manager {manager!r}: expected one of {MANAGERS}")


def service_file(manager, service):
    """The FileSpec of one service's unit or program (0644: it holds no secret)."""
    template = "systemd.service.j2" if manager == "systemd" else "supervisor-program.conf.j2"
    content = render(template, service=service).encode()
    return planmod.FileSpec(unit_path(manager, service.name), content, 0o644, (service.name,))


def service_files(manager, services):
    """Every unit or program of ``services``, plus supervisord.conf for supervisord."""
    files = [service_file(manager, service) for service in services]
    if manager == "supervisord":
        files.insert(0, planmod.FileSpec(SUPERVISORD_CONF, render("supervisord.conf.j2").encode(),
                                         0o644, ()))
    return files


def manager_directories(manager):
    """Directories the manager's files need, with their modes."""
    if manager == "supervisord":
        return [(planmod.SUPERVISOR_DIR, 0o755), (f"{planmod.SUPERVISOR_DIR}/conf.d", 0o755)]
    return [(planmod.SYSTEMD_DIR, 0o755)]
