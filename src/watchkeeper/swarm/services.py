"""The Swarm service adapter: list, inspect, update with the spec's version, wait on UpdateStatus.

It talks to the manager through the docker-py client of the engine it belongs to, and translates
docker-py and requests failures into watchkeeper's errors at one place (:func:`_translated`), as
``containers/engine.py`` does for containers. The update body is the service's own spec with
only the image changed, sent raw: docker-py's ``update_service`` rebuilds the spec from its
arguments and reads registry credentials from the Docker config, where ours come from the
:class:`~watchkeeper.registry.auth.CredentialStore`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import docker.auth
import docker.errors
import requests.exceptions

from watchkeeper.containers.engine import Engine, NotFoundError
from watchkeeper.errors import EngineError

_TRANSLATED = (docker.errors.DockerException, requests.exceptions.RequestException)
# UpdateStatus states after which Swarm does nothing more on its own.
_FINAL_STATES = frozenset({"completed", "paused", "rollback_completed", "rollback_paused"})
_POLL_S = 0.5
# Task states that mean its container failed or could not be started (image, pull, exit).
_FAILED_TASKS = frozenset({"failed", "rejected"})


class ServiceConflictError(EngineError):
    """The service changed since it was read (HTTP 409/500 "update out of sequence")."""


@contextmanager
def _translated(action: str) -> Iterator[None]:
    """Re-raise docker-py/requests failures of ``action`` as EngineError (404: NotFoundError)."""
    try:
        yield
    except docker.errors.NotFound as exc:
        raise NotFoundError(f"{action}: {_explain(exc)}") from exc
    except docker.errors.APIError as exc:
        if "out of sequence" in _explain(exc):
            raise ServiceConflictError(f"{action}: {_explain(exc)}") from exc
        raise EngineError(f"{action}: {_explain(exc)}") from exc
    except _TRANSLATED as exc:
        raise EngineError(f"{action}: {_explain(exc)}") from exc


def _explain(exc: BaseException) -> str:
    """The engine's own message when it sent one, else the exception's text."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return str(explanation)
    return str(exc) or type(exc).__name__


@dataclass(frozen=True)
class UpdateResult:
    """How Swarm ended one service update: its last ``UpdateStatus`` and the spec's image.

    ``state`` is Swarm's (``completed``, ``rollback_completed``, ``paused``,
    ``rollback_paused``), or ``timeout`` when watchkeeper stopped waiting (SERVICE_UPDATE_TIMEOUT).
    ``rolled_back``: a ``rollback_*`` state was seen at any time during the wait; ``message``
    is then Swarm's reason for the rollback.
    """

    state: str
    message: str | None
    image: str
    rolled_back: bool


def is_swarm_manager(info: dict[str, Any]) -> bool:
    """True when ``docker info`` says this engine is a Swarm manager (it can list services)."""
    swarm = info.get("Swarm") or {}
    return bool(swarm.get("ControlAvailable"))


def service_image(service: dict[str, Any]) -> str:
    """The image reference of a service's spec (``Spec.TaskTemplate.ContainerSpec.Image``)."""
    spec = service.get("Spec") or {}
    container_spec = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    return str(container_spec.get("Image") or "")


def service_name(service: dict[str, Any]) -> str:
    """The service's name (``Spec.Name``)."""
    return str((service.get("Spec") or {}).get("Name") or service.get("ID") or "")


def service_labels(service: dict[str, Any]) -> dict[str, str]:
    """The service's own labels (``Spec.Labels``), not its tasks' container labels."""
    return dict((service.get("Spec") or {}).get("Labels") or {})


def replicas(service: dict[str, Any]) -> int | str | None:
    """The desired replicas of a replicated service, ``"global"`` for a global one."""
    mode = (service.get("Spec") or {}).get("Mode") or {}
    if "Replicated" in mode:
        return int((mode["Replicated"] or {}).get("Replicas") or 0)
    if "Global" in mode:
        return "global"
    return None


def spec_with_image(service: dict[str, Any], image: str) -> dict[str, Any]:
    """A copy of the service's spec with only the image changed (the update's whole body)."""
    spec: dict[str, Any] = copy.deepcopy(service["Spec"])
    spec.setdefault("TaskTemplate", {}).setdefault("ContainerSpec", {})["Image"] = image
    return spec


class SwarmServices:
    """The services of one Swarm manager, through its engine's docker-py client."""

    def __init__(self, engine: Engine) -> None:
        self._api = engine.api_client
        self.engine = engine

    def list_services(self) -> list[dict[str, Any]]:
        """Every service with its spec, version and UpdateStatus. Raises EngineError."""
        with _translated("list services"):
            return [dict(s) for s in self._api.services()]

    def inspect_service(self, service_id: str) -> dict[str, Any]:
        """One service. Raises NotFoundError, EngineError."""
        with _translated(f"inspect service {service_id}"):
            return dict(self._api.inspect_service(service_id))

    def update_image(
        self, service: dict[str, Any], image: str, auth_config: dict[str, Any] | None
    ) -> None:
        """Update ``service`` (as inspected) to ``image``, every other field of its spec kept.

        The inspected version is sent, so a service changed meanwhile is refused
        (ServiceConflictError) rather than overwritten; ``auth_config`` goes as
        ``X-Registry-Auth`` so every node can pull a private image. Raises EngineError.
        """
        service_id = str(service["ID"])
        version = int(service["Version"]["Index"])
        headers = {}
        if auth_config is not None:
            headers["X-Registry-Auth"] = docker.auth.encode_header(auth_config)
        with _translated(f"update service {service_name(service)}"):
            response = self._api._post_json(
                self._api._url("/services/{0}/update", service_id),
                data=spec_with_image(service, image),
                params={"version": version},
                headers=headers,
            )
            self._api._raise_for_status(response)

    def last_task_failure(self, service_id: str) -> str | None:
        """What the service's newest failed task said (``task X: task: non-zero exit (1)``).

        Raises EngineError.
        """
        with _translated(f"tasks of service {service_id}"):
            tasks = self._api.tasks(filters={"service": service_id})
        failed = [t for t in tasks if (t.get("Status") or {}).get("State") in _FAILED_TASKS]
        if not failed:
            return None
        newest = max(failed, key=lambda t: str(t["Status"].get("Timestamp") or ""))
        status = newest["Status"]
        return f"task {str(newest.get('ID'))[:12]}: {status.get('Err') or status.get('Message')}"

    def wait_for_update(
        self,
        service_id: str,
        *,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> UpdateResult:
        """Poll the service's ``UpdateStatus`` until Swarm ends the update or ``timeout_s`` passes.

        A status missing right after the update means Swarm has not started it yet. A shutdown
        does not cut the wait short: Swarm goes on with the update anyway, and its outcome is
        the row's. Raises EngineError when the service cannot be read.
        """
        deadline = clock() + timeout_s
        rolled_back = False
        why: str | None = None
        while True:
            service = self.inspect_service(service_id)
            status = service.get("UpdateStatus") or {}
            state = str(status.get("State") or "")
            if state.startswith("rollback"):
                rolled_back = True
                # rollback_started says why ("... due to failure of task X"); the end of the
                # rollback only "rollback completed".
                if state == "rollback_started" and why is None:
                    why = status.get("Message") or None
            message = why or status.get("Message") or None
            if state in _FINAL_STATES:
                if rolled_back and why is None:  # a quick rollback, its start not seen
                    message = "; ".join(filter(None, [message, self.last_task_failure(service_id)]))
                return UpdateResult(state, message, service_image(service), rolled_back)
            if clock() >= deadline:
                return UpdateResult("timeout", message, service_image(service), rolled_back)
            sleep(_POLL_S)


def labelled(service: dict[str, Any]) -> dict[str, Any]:
    """The service in the shape ``labels.py`` reads (``Name``, ``Config.Labels``/``Image``):
    its own labels and its image without the digest, so a service is selected, filtered by
    ``?image=`` and given per-label policies exactly as a container."""
    image = service_image(service).split("@", 1)[0]
    return {
        "Name": service_name(service),
        "Config": {"Labels": service_labels(service), "Image": image},
    }
