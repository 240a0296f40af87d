"""A small synchronous client for a CRI runtime (containerd) over its unix socket.

One client holds one gRPC channel and is shared by every pod worker thread (gRPC
channels are thread-safe). Every call carries a deadline, so a hung runtime turns into
a CriError instead of a stuck worker. Methods take and return the generated messages
of agent.runtime.cri.api_pb2, except where a plain Python value is what callers want
(ids, URLs, exec output, lists).
"""
import time

import grpc

from agent.runtime.cri import api_pb2 as api
from agent.runtime.cri import api_pb2_grpc as api_grpc

DEFAULT_TIMEOUT = 10.0
# Pulls move whole images; kubelet has no deadline at all for them by default.
DEFAULT_PULL_TIMEOUT = 300.0
# A node with many containers answers ListContainers with a large message.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Reconnect quickly after containerd (re)starts instead of gRPC's default of up to 2 min.
_CHANNEL_OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
API_VERSION = "v1"


class CriError(Exception):
    """A CRI call failed; ``code`` is the grpc.StatusCode, ``method`` the CRI rpc name."""

    def __init__(self, code, details, method):
        self.code = code
        self.details = details or ""
        self.method = method
        name = getattr(code, "name", str(code))
        super().__init__(f"CRI {method} failed: {name}: {self.details}")

    @property
    def not_found(self):
        """True when the runtime does not know the sandbox, container or image."""
        return self.code == grpc.StatusCode.NOT_FOUND


def _target(endpoint):
    """Return a gRPC target for ``endpoint``: "unix:///path" as is, a bare path made one."""
    if endpoint.startswith("/"):
        return f"unix://{endpoint}"
    return endpoint


def _image_spec(image):
    return image if isinstance(image, api.ImageSpec) else api.ImageSpec(image=image)


class CriClient:
    """Talk to the CRI RuntimeService and ImageService at ``endpoint``.

    ``timeout`` (seconds) bounds every call; ``pull_timeout`` bounds image pulls.
    """

    def __init__(self, endpoint, timeout=DEFAULT_TIMEOUT, pull_timeout=DEFAULT_PULL_TIMEOUT):
        self.endpoint = endpoint
        self.timeout = timeout
        self.pull_timeout = pull_timeout
        self._channel = grpc.insecure_channel(_target(endpoint), options=_CHANNEL_OPTIONS)
        self._runtime = api_grpc.RuntimeServiceStub(self._channel)
        self._images = api_grpc.ImageServiceStub(self._channel)

    def close(self):
        """Close the channel; calls made afterwards fail."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _call(self, stub, method, request, timeout=None, wait_for_ready=None):
        """Invoke ``method`` on ``stub`` with a deadline, turning gRPC errors into CriError."""
        try:
            return getattr(stub, method)(
                request,
                timeout=self.timeout if timeout is None else timeout,
                wait_for_ready=wait_for_ready,
            )
        except grpc.RpcError as exc:
            raise CriError(exc.code(), exc.details(), method) from None

    def _runtime_call(self, method, request, timeout=None):
        return self._call(self._runtime, method, request, timeout)

    def _image_call(self, method, request, timeout=None):
        return self._call(self._images, method, request, timeout)

    # --- runtime -------------------------------------------------------------

    def version(self):
        """Return the runtime's VersionResponse (runtime_name, runtime_api_version ...)."""
        return self._runtime_call("Version", api.VersionRequest(version=API_VERSION))

    def check_version(self):
        """Return the VersionResponse; raise CriError if the runtime does not speak CRI v1."""
        try:
            response = self.version()
        except CriError as exc:
            if exc.code != grpc.StatusCode.UNIMPLEMENTED:
                raise
            raise CriError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the runtime at {self.endpoint} does not serve the CRI API runtime.v1 "
                "(containerd 1.6 or newer does; is the CRI plugin disabled in its config?)",
                "Version",
            ) from None
        if response.runtime_api_version != API_VERSION:
            raise CriError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{response.runtime_name} {response.runtime_version} at {self.endpoint} "
                f"speaks CRI {response.runtime_api_version!r}, Steersman needs {API_VERSION!r}",
                "Version",
            )
        return response

    def wait_ready(self, timeout=30.0, clock=time.monotonic):
        """Poll Version until the runtime answers (it may still be starting); return it.

        Raises the last CriError once ``timeout`` seconds have passed.
        """
        deadline = clock() + timeout
        while True:
            remaining = deadline - clock()
            try:
                # wait_for_ready: block while the socket is missing or refusing, not fail fast.
                return self._call(
                    self._runtime,
                    "Version",
                    api.VersionRequest(version=API_VERSION),
                    timeout=max(0.05, min(remaining, self.timeout)),
                    wait_for_ready=True,
                )
            except CriError as exc:
                retry = exc.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                if not retry or clock() >= deadline:
                    raise CriError(
                        exc.code,
                        f"the runtime at {self.endpoint} did not answer within {timeout:g}s "
                        f"(is containerd running?): {exc.details}",
                        "Version",
                    ) from None

    def status(self, verbose=False):
        """Return the StatusResponse; its conditions say RuntimeReady and NetworkReady."""
        return self._runtime_call("Status", api.StatusRequest(verbose=verbose))

    # --- pod sandboxes -------------------------------------------------------

    def run_pod_sandbox(self, config, runtime_handler="", timeout=None):
        """Create and start a sandbox from a PodSandboxConfig; return its id."""
        request = api.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        return self._runtime_call("RunPodSandbox", request, timeout).pod_sandbox_id

    def stop_pod_sandbox(self, sandbox_id, timeout=None):
        """Stop every process of the sandbox and release its network (idempotent)."""
        request = api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id)
        self._runtime_call("StopPodSandbox", request, timeout)

    def remove_pod_sandbox(self, sandbox_id, timeout=None):
        """Remove the sandbox and its containers (idempotent)."""
        request = api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id)
        self._runtime_call("RemovePodSandbox", request, timeout)

    def pod_sandbox_status(self, sandbox_id, verbose=False):
        """Return the PodSandboxStatusResponse (.status; .info is filled when verbose)."""
        request = api.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose)
        return self._runtime_call("PodSandboxStatus", request)

    def list_pod_sandbox(self, label_selector=None, state=None, sandbox_id=None):
        """Return the PodSandbox items matching all given filters."""
        flt = api.PodSandboxFilter(id=sandbox_id or "", label_selector=label_selector or {})
        if state is not None:
            # Present even when 0 (SANDBOX_READY): an absent wrapper means any state.
            flt.state.CopyFrom(api.PodSandboxStateValue(state=state))
        request = api.ListPodSandboxRequest(filter=flt)
        return list(self._runtime_call("ListPodSandbox", request).items)

    # --- containers ----------------------------------------------------------

    def create_container(self, sandbox_id, config, sandbox_config, timeout=None):
        """Create a container from a ContainerConfig in the sandbox; return its id."""
        request = api.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config
        )
        return self._runtime_call("CreateContainer", request, timeout).container_id

    def start_container(self, container_id, timeout=None):
        """Start a created container."""
        request = api.StartContainerRequest(container_id=container_id)
        self._runtime_call("StartContainer", request, timeout)

    def stop_container(self, container_id, timeout):
        """Stop the container: its stop signal, then SIGKILL after ``timeout`` seconds.

        The call's own deadline is the grace period plus the client's timeout.
        """
        request = api.StopContainerRequest(container_id=container_id, timeout=int(timeout))
        self._runtime_call("StopContainer", request, int(timeout) + self.timeout)

    def remove_container(self, container_id, timeout=None):
        """Remove the container, killing it if it still runs (idempotent)."""
        request = api.RemoveContainerRequest(container_id=container_id)
        self._runtime_call("RemoveContainer", request, timeout)

    def list_containers(self, label_selector=None, sandbox_id=None, state=None, container_id=None):
        """Return the Container items matching all given filters."""
        flt = api.ContainerFilter(
            id=container_id or "",
            pod_sandbox_id=sandbox_id or "",
            label_selector=label_selector or {},
        )
        if state is not None:
            flt.state.CopyFrom(api.ContainerStateValue(state=state))
        request = api.ListContainersRequest(filter=flt)
        return list(self._runtime_call("ListContainers", request).containers)

    def container_status(self, container_id, verbose=False):
        """Return the ContainerStatusResponse (.status; .info is filled when verbose)."""
        request = api.ContainerStatusRequest(container_id=container_id, verbose=verbose)
        return self._runtime_call("ContainerStatus", request)

    def update_container_resources(self, container_id, linux_resources):
        """Apply new LinuxContainerResources to a running container."""
        request = api.UpdateContainerResourcesRequest(
            container_id=container_id, linux=linux_resources
        )
        self._runtime_call("UpdateContainerResources", request)

    def reopen_container_log(self, container_id):
        """Make the runtime write the container's output to a fresh file at its log path.

        Called after the agent renamed (rotated) the file; fails for a container that
        does not run, and then no new file is made.
        """
        request = api.ReopenContainerLogRequest(container_id=container_id)
        self._runtime_call("ReopenContainerLog", request)

    # --- exec, attach, port-forward ------------------------------------------

    def exec_sync(self, container_id, cmd, timeout):
        """Run ``cmd`` in the container; return (exit_code, stdout bytes, stderr bytes).

        ``timeout`` seconds bounds the command (0: none); the call's deadline is that
        plus the client's timeout, or the pull timeout when the command has none.
        """
        request = api.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=int(timeout))
        deadline = int(timeout) + self.timeout if timeout else self.pull_timeout
        response = self._runtime_call("ExecSync", request, deadline)
        return response.exit_code, response.stdout, response.stderr

    def exec(self, container_id, cmd, tty=False, stdin=False, stdout=True, stderr=True):
        """Prepare an exec session; return the streaming server URL to connect to."""
        request = api.ExecRequest(
            container_id=container_id, cmd=list(cmd),
            tty=tty, stdin=stdin, stdout=stdout, stderr=stderr,
        )
        return self._runtime_call("Exec", request).url

    def attach(self, container_id, tty=False, stdin=False, stdout=True, stderr=True):
        """Prepare an attach session; return the streaming server URL to connect to."""
        request = api.AttachRequest(
            container_id=container_id, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr
        )
        return self._runtime_call("Attach", request).url

    def port_forward(self, sandbox_id, ports=()):
        """Prepare a port-forward session into the sandbox; return the streaming URL."""
        request = api.PortForwardRequest(pod_sandbox_id=sandbox_id, port=list(ports))
        return self._runtime_call("PortForward", request).url

    # --- stats ---------------------------------------------------------------

    def container_stats(self, container_id):
        """Return the ContainerStats of one container."""
        request = api.ContainerStatsRequest(container_id=container_id)
        return self._runtime_call("ContainerStats", request).stats

    def list_container_stats(self, label_selector=None, sandbox_id=None, container_id=None):
        """Return ContainerStats for the running containers matching the filters."""
        flt = api.ContainerStatsFilter(
            id=container_id or "",
            pod_sandbox_id=sandbox_id or "",
            label_selector=label_selector or {},
        )
        request = api.ListContainerStatsRequest(filter=flt)
        return list(self._runtime_call("ListContainerStats", request).stats)

    def pod_sandbox_stats(self, sandbox_id):
        """Return the PodSandboxStats of one sandbox (runtimes without it: UNIMPLEMENTED)."""
        request = api.PodSandboxStatsRequest(pod_sandbox_id=sandbox_id)
        return self._runtime_call("PodSandboxStats", request).stats

    def list_pod_sandbox_stats(self, label_selector=None, sandbox_id=None):
        """Return PodSandboxStats matching the filters (runtimes without it: UNIMPLEMENTED)."""
        flt = api.PodSandboxStatsFilter(id=sandbox_id or "", label_selector=label_selector or {})
        request = api.ListPodSandboxStatsRequest(filter=flt)
        return list(self._runtime_call("ListPodSandboxStats", request).stats)

    # --- images --------------------------------------------------------------

    def pull_image(self, image, auth=None, sandbox_config=None, timeout=None):
        """Pull ``image`` (a reference or ImageSpec); return the image ref (its id).

        ``auth`` is an AuthConfig or a dict of its fields (username, password ...).
        """
        if isinstance(auth, dict):
            auth = api.AuthConfig(**auth)
        request = api.PullImageRequest(
            image=_image_spec(image), auth=auth, sandbox_config=sandbox_config
        )
        deadline = self.pull_timeout if timeout is None else timeout
        return self._image_call("PullImage", request, deadline).image_ref

    def image_status(self, image, verbose=False):
        """Return the Image for ``image`` (reference, id or ImageSpec), or None if absent."""
        request = api.ImageStatusRequest(image=_image_spec(image), verbose=verbose)
        response = self._image_call("ImageStatus", request)
        return response.image if response.HasField("image") else None

    def list_images(self, image=None):
        """Return the Image items in the store, optionally only those matching ``image``."""
        request = api.ListImagesRequest()
        if image is not None:
            request.filter.image.CopyFrom(_image_spec(image))
        return list(self._image_call("ListImages", request).images)

    def remove_image(self, image):
        """Remove ``image`` (reference, id or ImageSpec) with all its tags (idempotent)."""
        self._image_call("RemoveImage", api.RemoveImageRequest(image=_image_spec(image)))

    def image_fs_info(self):
        """Return the ImageFsInfoResponse (.image_filesystems usage of the image store)."""
        return self._image_call("ImageFsInfo", api.ImageFsInfoRequest())
