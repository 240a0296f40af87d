"""Run a control plane around a test's API server: controller manager, scheduler, nodes.

Most control-plane integration modules need the same three things next to their
``server``: a `steer-controller-manager` running some controllers, a
`steer-scheduler`, and hollow nodes. ``ControlPlane`` starts them (nodes first, so
the scheduler finds them), stops them in reverse, by pid, and gathers their logs
for a failing assertion.
"""

from control.objects import kinds
from tests.support.apiproc import ComponentProcesses
from tests.support.hollow_nodes import HollowNodes


class ControlPlane:
    """A controller manager, an optional scheduler and hollow nodes for one server."""

    def __init__(self, server, base_dir, controllers=None, manager_args=(), nodes=(),
                 scheduler=True, manager_identity="cm", **node_options):
        self.server = server
        args = (["--controllers", controllers] if controllers else []) + list(manager_args)
        self.manager = ComponentProcesses(server, base_dir, "control.controllers.manager",
                                          extra_args=args)
        self.manager_identity = manager_identity
        self.scheduler = (ComponentProcesses(server, base_dir, "control.scheduler.main")
                          if scheduler else None)
        self.nodes = (HollowNodes(server.url, nodes, client_kwargs=server.client_kwargs,
                                  **node_options) if nodes else None)

    def start(self):
        if self.nodes is not None:
            self.nodes.start()
        if self.scheduler is not None:
            self.scheduler.start("sched")
        self.manager.start(self.manager_identity)
        return self

    def stop(self):
        self.manager.stop_all()
        if self.scheduler is not None:
            self.scheduler.stop_all()
        if self.nodes is not None:
            self.nodes.stop()

    def logs(self):
        """The manager's and the scheduler's logs (the tail of each)."""
        return "\n".join([self.manager.logs()] +
                         ([self.scheduler.logs()] if self.scheduler is not None else []))

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()


def create_namespace(rest, name):
    """Create the Namespace ``name``; return its name (each test works in its own)."""
    rest.create(kinds.NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": name}})
    return name
