"""Container runtimes behind one interface (base.Runtime): cri (containerd), process, fake.

The cri runtime needs a CRI endpoint and is built by agent.main (build_cri_runtime).
"""


def create(name, data_dir, clock=None):
    """Return the runtime called ``name`` ("process" or "fake") keeping state in ``data_dir``."""
    if name == "process":
        from agent.runtime.process import ProcessRuntime
        return ProcessRuntime(data_dir)
    if name == "fake":
        from agent.runtime.fake import FakeRuntime
        return FakeRuntime(clock=clock)
    raise ValueError(f"unknown runtime {name!r}: choose process or fake")
