"""Make sure a container's image is on the node before it is created, as kubelet's image manager.

``ImageManager.ensure`` applies the pull policy (Never / IfNotPresent / Always,
defaulted as the API server does when absent), asks the runtime first when the
policy allows a cached image (CRI PullImage always contacts the registry), and
pulls with the pod's pull secrets otherwise. It records the events kubelet
records (Pulling, Pulled, Failed, BackOff, ErrImageNeverPull, InspectFailed,
each failure followed by ``Error: <reason>``) and answers with the image ref to
create the container from, or the waiting reason and message for the status.

A failed pull puts (pod uid, image) in backoff: 10 s, doubling to 300 s, forgotten
after a successful pull or after twice the cap untouched. Within the backoff the
answer is ImagePullBackOff without contacting the registry; its events are
recorded once per backoff window, not on every sync.

Two pods needing the same image at once cause one pull: the second waits for the
first and shares its outcome when it pulls with the same credentials (otherwise it
pulls after it). Pulls of different images run side by side in the workers' threads.
"""

import dataclasses
import logging
import threading

from agent import imageref, pullsecrets

log = logging.getLogger(__name__)

ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
INVALID_IMAGE_NAME = "InvalidImageName"
IMAGE_INSPECT_ERROR = "ImageInspectError"


@dataclasses.dataclass(frozen=True)
class ImageResult:
    """``ref`` to create the container from, or why not (the container's waiting state).

    ``retry_at``: the earliest wall-clock time a new ``ensure`` can change the answer
    (None when ``ref`` is set).
    """
    ref: str = None
    waiting_reason: str = None
    waiting_message: str = None
    retry_at: float = None

    @property
    def ok(self):
        return self.ref is not None


@dataclasses.dataclass
class _Flight:
    """One pull under way; other pods pulling the same image with the same logins wait on it."""
    auth_key: tuple
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    ref: str = None
    size: int = 0
    error: str = None
    duration: float = 0.0


@dataclasses.dataclass
class _Failure:
    delay: float
    failed_at: float
    reported: bool = False      # BackOff events recorded for this window


def go_duration(seconds):
    """Format a duration as Go's time.Duration does after Truncate(time.Millisecond)."""
    # The 1 µs slack absorbs float noise of wall-clock differences (1.2339999 -> 1.234s).
    millis = int(seconds * 1000 + 1e-3)
    if millis <= 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    text = f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def cri_error_text(exc):
    """An error as kubelet prints a gRPC one: ``rpc error: code = NotFound desc = ...``."""
    code, details = getattr(exc, "code", None), getattr(exc, "details", None)
    if code is None or details is None:
        return str(exc)
    name = getattr(code, "name", str(code))
    camel = "".join(part.capitalize() for part in name.split("_"))
    return f"rpc error: code = {camel} desc = {details}"


class ImageManager:
    """Pull images for pod workers; thread-safe, shared by every worker of an agent."""

    def __init__(self, client, recorder, clock, backoff_base=10.0, backoff_max=300.0):
        self.client, self.recorder, self.clock = client, recorder, clock
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self._lock = threading.Lock()
        self._flights = {}          # image -> _Flight under way
        self._failures = {}         # "<pod uid>_<image>" -> _Failure

    # -- the public answer ----------------------------------------------------------
    def ensure(self, pod, container, pull_secrets=(), sandbox_config=None):
        """Make ``container``'s image present per its pull policy; return an ImageResult.

        ``pull_secrets``: the Secret objects of the pod's imagePullSecrets (see
        pullsecrets.pull_secrets_for). Blocks while the image is pulled.
        """
        image = container.get("image") or ""
        now = self.clock()
        try:
            spec_image = imageref.with_default_tag(image)
        except imageref.InvalidReference as exc:
            message = f'Failed to apply default image tag "{image}": {exc}'
            return self._fail(pod, "InspectFailed", message, INVALID_IMAGE_NAME,
                              now + self.backoff_base)
        policy = imageref.pull_policy(container)
        if policy != "Always":
            try:
                present = self.client.image_status(spec_image)
            except Exception as exc:  # noqa: BLE001 - any runtime failure is reported the same way
                message = f'Failed to inspect image "{image}": {cri_error_text(exc)}'
                return self._fail(pod, "InspectFailed", message, IMAGE_INSPECT_ERROR,
                                  now + self.backoff_base)
            if present is not None:
                self._event(pod, "Normal", "Pulled",
                            f'Container image "{image}" already present on machine')
                return ImageResult(ref=present.id)
            if policy == "Never":
                message = f'Container image "{image}" is not present with pull policy of Never'
                return self._fail(pod, ERR_IMAGE_NEVER_PULL, message, ERR_IMAGE_NEVER_PULL,
                                  now + self.backoff_base)
        key = f"{(pod.get('metadata') or {}).get('uid')}_{image}"
        waiting = self._in_backoff(key, now)
        if waiting is not None:
            return self._backoff_result(pod, image, waiting)
        return self._pull(pod, image, spec_image, key, pull_secrets, sandbox_config)

    def image_id_of(self, ref):
        """What status.imageID shows for an image ref: its repo digest if it has one."""
        try:
            image = self.client.image_status(ref)
        except Exception:  # noqa: BLE001 - the id is a report; fall back to the ref
            return ref
        return image_id_from(image) if image is not None else ref

    def forget_pod(self, uid):
        """Drop the backoff entries of a pod that is gone."""
        prefix = f"{uid}_"
        with self._lock:
            for key in [k for k in self._failures if k.startswith(prefix)]:
                del self._failures[key]

    # -- backoff ---------------------------------------------------------------------
    def _in_backoff(self, key, now):
        """The live failure entry if ``now`` is within its delay, else None."""
        with self._lock:
            failure = self._failures.get(key)
            if failure is None:
                return None
            if now - failure.failed_at > 2 * self.backoff_max:
                del self._failures[key]
                return None
            return failure if now - failure.failed_at < failure.delay else None

    def _record_failure(self, key, now):
        with self._lock:
            failure = self._failures.get(key)
            if failure is None or now - failure.failed_at > 2 * self.backoff_max:
                delay = self.backoff_base
            else:
                delay = min(failure.delay * 2, self.backoff_max)
            self._failures[key] = _Failure(delay, now)
            return delay

    def _backoff_result(self, pod, image, failure):
        message = f'Back-off pulling image "{image}"'
        with self._lock:
            report, failure.reported = not failure.reported, True
        if report:
            self._event(pod, "Normal", "BackOff", message)
            self._event(pod, "Warning", "Failed", f"Error: {IMAGE_PULL_BACKOFF}")
        return ImageResult(waiting_reason=IMAGE_PULL_BACKOFF, waiting_message=message,
                           retry_at=failure.failed_at + failure.delay)

    # -- pulling ---------------------------------------------------------------------
    def _pull(self, pod, image, spec_image, key, pull_secrets, sandbox_config):
        self._event(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        started = self.clock()
        try:
            logins = [c.auth_config(imageref.parse(spec_image))
                      for c in pullsecrets.credentials_for(spec_image, pull_secrets)]
        except pullsecrets.PullSecretError as exc:
            flight = _Flight(auth_key=(), error=str(exc))
        else:
            flight = self._join_or_pull(spec_image, logins, sandbox_config)
        now = self.clock()
        if flight.error is not None:
            self._event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {flight.error}')
            delay = self._record_failure(key, now)
            self._event(pod, "Warning", "Failed", f"Error: {ERR_IMAGE_PULL}")
            return ImageResult(waiting_reason=ERR_IMAGE_PULL, waiting_message=flight.error,
                               retry_at=now + delay)
        with self._lock:
            self._failures.pop(key, None)
        self._event(pod, "Normal", "Pulled",
                    f'Successfully pulled image "{image}" in {go_duration(flight.duration)} '
                    f"({go_duration(now - started)} including waiting). "
                    f"Image size: {flight.size} bytes.")
        return ImageResult(ref=flight.ref)

    def _join_or_pull(self, spec_image, logins, sandbox_config):
        """Share a pull of the same image with the same logins, or wait for others, then pull."""
        auth_key = tuple(sorted(tuple(sorted(login.items())) for login in logins))
        while True:
            with self._lock:
                flight = self._flights.get(spec_image)
                if flight is None:
                    mine = self._flights[spec_image] = _Flight(auth_key)
                    break
            flight.done.wait()
            if flight.auth_key == auth_key:
                return flight
        try:
            self._run_pull(mine, spec_image, logins, sandbox_config)
        finally:
            if mine.ref is None and mine.error is None:
                mine.error = "the pull was interrupted"     # waiters must not see success
            with self._lock:
                del self._flights[spec_image]
            mine.done.set()
        return mine

    def _run_pull(self, flight, spec_image, logins, sandbox_config):
        """Pull anonymously without logins, else with each login until one works."""
        started, errors = self.clock(), []
        for auth in logins or [None]:
            try:
                flight.ref = self.client.pull_image(spec_image, auth=auth,
                                                    sandbox_config=sandbox_config)
                break
            except Exception as exc:  # noqa: BLE001 - every pull failure is ErrImagePull
                errors.append(cri_error_text(exc))
        flight.duration = self.clock() - started
        if flight.ref is None:
            flight.error = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
            log.info("image=%s msg=pull failed error=%r", spec_image, flight.error)
            return
        try:
            image = self.client.image_status(flight.ref)
            flight.size = int(image.size) if image is not None else 0
        except Exception as exc:  # noqa: BLE001 - the size only decorates the event
            log.info("image=%s msg=no size after pull error=%r", spec_image, exc)

    # -- reporting -------------------------------------------------------------------
    def _fail(self, pod, event_reason, message, waiting_reason, retry_at):
        self._event(pod, "Warning", event_reason, message)
        self._event(pod, "Warning", "Failed", f"Error: {waiting_reason}")
        return ImageResult(waiting_reason=waiting_reason, waiting_message=message,
                           retry_at=retry_at)

    def _event(self, pod, kind, reason, message):
        if self.recorder is not None:
            self.recorder.event(pod, kind, reason, message)


def image_id_from(image):
    """status.imageID of a CRI Image: the first repo digest (pullable), else its id."""
    digests = list(getattr(image, "repo_digests", ()) or ())
    return digests[0] if digests else image.id
