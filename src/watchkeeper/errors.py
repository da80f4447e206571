"""The watchkeeper error tree.

Adapters (Docker engine, registry, notification channels) translate third-party exceptions into
these classes with ``raise ... from exc`` so that the use cases never see ``docker.errors`` or
``httpx`` types, and so that ``cli`` can map each branch to one exit code. The tree, with the
module of each class defined outside this one (they stay next to the code that raises them,
which is the only code that needs their extra fields)::

    WatchkeeperError
    ├── ConfigError                 bad settings -> exit 2
    ├── EngineUnreachableError      Docker engine down -> exit 3
    ├── EngineError                 one engine call failed -> an outcome of one container
    │   ├── PullError               a pull failed (stream error or wrong image)
    │   ├── NotFoundError           (containers.engine) a 404: the container, image or network
    │   │                           is gone (removing or stopping a gone one counts as done)
    │   ├── ServiceConflictError    (swarm.services) a Swarm service changed since it was read
    │   │                           (its version moved) -> read again, updated once more
    │   └── NotReadyError           (containers.ready) a started container failed its gate
    │                               (``verdict``: exited, restarted, unhealthy, timeout)
    │                               -> rollback, ``rolled_back``
    ├── RegistryError               a registry could not be asked -> verdict "error"
    │   └── RegistryAuthError       credentials refused or missing -> ``failed``
    ├── NotificationError           a channel failed, ``permanent`` (never ends a run)
    │   └── TransientNotificationError  (notify.base) a retry may help -> backoff
    ├── LockBusyError               (locks) another watchkeeper kept an engine busy for
    │                               LOCK_TIMEOUT -> ``run --once`` exit 1, ``run.skipped``,
    │                               API 503; nothing was touched
    ├── QueueClosedError            (scheduler) the daemon is stopping -> API 503
    └── QueueFullError              (scheduler) too many API runs wait -> API 429

Outside the tree on purpose: ``state.StateFileUnreadableError`` is an ``OSError`` that never
leaves ``state.py`` (the store logs ``state.unreadable`` and keeps its memory in the process);
``versions.candidates.TagRegexError`` is a ``ValueError`` of the pure tag policy, which imports
nothing of watchkeeper's: it names the label or setting whose regex does not compile, and its
caller decides what that becomes.
"""

from __future__ import annotations


class WatchkeeperError(Exception):
    """Base of every error watchkeeper raises on purpose."""


class ConfigError(WatchkeeperError):
    """A setting has a bad value; ``setting`` names the variable the user set."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message


class EngineUnreachableError(WatchkeeperError):
    """A Docker engine did not answer (at start: exit 3 when none does)."""


class EngineError(WatchkeeperError):
    """A Docker engine call failed for one container or image."""


class PullError(EngineError):
    """A pull reported an error in its progress stream or produced the wrong image."""


class RegistryError(WatchkeeperError):
    """A registry could not be asked for a digest (network, HTTP error, bad answer)."""


class RegistryAuthError(RegistryError):
    """The registry refused our credentials, or we had none for a private repository."""


class NotificationError(WatchkeeperError):
    """A notification channel failed; ``permanent`` means a retry cannot help."""

    def __init__(self, channel: str, message: str, *, permanent: bool = False) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel
        self.permanent = permanent
