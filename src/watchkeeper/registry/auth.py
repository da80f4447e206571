"""Registry credentials and the pieces of the registry auth handshake that need no network.

Credentials come from where ``docker login`` put them (README, "What an update does"): the
Docker ``config.json`` (``auths``, ``credHelpers``, ``credsStore``) in ``$DOCKER_CONFIG`` or
``~/.docker``, or from Watchtower's ``REPO_USER``/``REPO_PASS``: for the registries ``REPO_HOST``
names, or (Watchtower's way, warned about once a second registry shows up) for every registry.
Credential helpers are run here rather than through ``docker.auth`` because docker-py runs them
without a timeout, and a stuck helper must not stall a run. This module also parses
``WWW-Authenticate`` challenges and caches bearer tokens; ``digest`` does the HTTP. Nothing
here ever logs or formats a password or token.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from watchkeeper.errors import ConfigError, RegistryAuthError
from watchkeeper.registry.reference import DOCKER_HUB, normalise_registry

log = structlog.get_logger()

HELPER_TIMEOUT_S = 10.0
# The key ``docker login`` uses for Docker Hub, and so the server URL helpers know it by.
HUB_SERVER_URL = "https://index.docker.io/v1/"
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NOT_FOUND = "credentials not found"


@dataclass(frozen=True)
class Credentials:
    """A username and password (or token) for one registry; its repr hides the password."""

    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='***')"


def to_docker_auth_config(creds: Credentials) -> dict[str, str]:
    """The ``auth_config`` docker-py's pull takes for these credentials."""
    return {"username": creds.username, "password": creds.password}


def basic_authorization(creds: Credentials) -> str:
    """The ``Authorization`` header value for HTTP Basic with ``creds``."""
    raw = f"{creds.username}:{creds.password}".encode()
    return f"Basic {base64.b64encode(raw).decode('ascii')}"


def normalise_server(key: str) -> str:
    """Map a ``config.json`` key (URL or host, with or without path) to host[:port]."""
    key = key.strip()
    if "://" not in key:
        key = f"//{key}"
    return normalise_registry(urlsplit(key).netloc)


@dataclass(frozen=True)
class CredentialStore:
    """Credentials per registry host, as ``docker login`` left them; see :meth:`load`."""

    auths: Mapping[str, Credentials] = field(default_factory=dict)
    server_urls: Mapping[str, str] = field(default_factory=dict)
    cred_helpers: Mapping[str, str] = field(default_factory=dict)
    creds_store: str | None = None
    everywhere: Credentials | None = None
    # The registries ``everywhere`` is for (REPO_HOST); None means every registry.
    everywhere_hosts: frozenset[str] | None = None
    helper_timeout: float = HELPER_TIMEOUT_S

    @classmethod
    def load(
        cls,
        config_dir: str | None = None,
        repo_user: str | None = None,
        repo_pass: str | None = None,
        *,
        repo_hosts: Iterable[str] = (),
        helper_timeout: float = HELPER_TIMEOUT_S,
    ) -> CredentialStore:
        """Read ``config.json`` from ``config_dir``, else ``$DOCKER_CONFIG``, else ``~/.docker``.

        A missing file means no stored credentials. ``repo_user``/``repo_pass``, when both are
        set, apply to the ``repo_hosts`` registries (every registry when there are none) and
        win over the file there.

        Raises:
            ConfigError: the file exists but cannot be read or is not a JSON object.
        """
        folder = config_dir or os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
        data = _read_config(Path(folder) / "config.json")
        everywhere = None
        if repo_user and repo_pass:
            everywhere = Credentials(repo_user, repo_pass)
        elif repo_user or repo_pass:
            log.warning("registry.repo_credentials_incomplete", setting="REPO_USER/REPO_PASS")
        auths, server_urls = _parse_auths(data.get("auths"))
        helpers = data.get("credHelpers")
        store = data.get("credsStore")
        if not isinstance(helpers, dict):
            helpers = {}
        return cls(
            auths=auths,
            server_urls=server_urls,
            cred_helpers={normalise_server(k): str(v) for k, v in helpers.items() if v},
            creds_store=store if isinstance(store, str) and store else None,
            everywhere=everywhere,
            everywhere_hosts=frozenset(normalise_server(h) for h in repo_hosts) or None,
            helper_timeout=helper_timeout,
        )

    @property
    def unscoped(self) -> bool:
        """True when REPO_USER/REPO_PASS are set for every registry (no REPO_HOST)."""
        return self.everywhere is not None and self.everywhere_hosts is None

    def lookup(self, registry: str) -> Credentials | None:
        """Credentials for ``registry`` (host[:port]), or None for anonymous access.

        Order as in the docker CLI: ``REPO_USER``/``REPO_PASS`` (when they are for this host),
        then the host's ``credHelpers`` entry, then ``credsStore``, then ``auths``. A helper
        answering "credentials not found" means anonymous.

        Raises:
            RegistryAuthError: a credential helper is missing, failed, timed out or answered
                something that is not credentials.
        """
        host = normalise_registry(registry)
        if self.everywhere is not None and (
            self.everywhere_hosts is None or host in self.everywhere_hosts
        ):
            return self.everywhere
        helper = self.cred_helpers.get(host) or self.creds_store
        if helper is not None:
            return self._run_helper(helper, host)
        return self.auths.get(host)

    def _run_helper(self, helper: str, host: str) -> Credentials | None:
        """Run ``docker-credential-<helper> get`` for ``host``.

        Raises:
            RegistryAuthError: the helper cannot be run, fails, times out or answers garbage.
        """
        if _HELPER_NAME.fullmatch(helper) is None:
            raise RegistryAuthError(f"{host}: invalid credential helper name {helper!r}")
        server = self.server_urls.get(host) or (HUB_SERVER_URL if host == DOCKER_HUB else host)
        program = f"docker-credential-{helper}"
        proc = _call_helper(program, host, server, self.helper_timeout)
        if proc.returncode != 0:
            # Helpers print "credentials not found in native keychain" on stdout for an
            # unknown server; that is anonymous access, not an error.
            if _NOT_FOUND in (proc.stdout + proc.stderr).lower():
                return None
            log.warning(
                "registry.credential_helper_failed",
                registry=host,
                helper=program,
                exit_code=proc.returncode,
            )
            raise RegistryAuthError(f"{host}: credential helper {program} exited {proc.returncode}")
        return _parse_helper_output(host, program, proc.stdout)


def _call_helper(
    program: str, host: str, server: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``program get`` with ``server`` on stdin, killed after ``timeout`` seconds.

    Raises:
        RegistryAuthError: the program cannot be started or does not finish in time.
    """
    try:
        return subprocess.run(
            [program, "get"],
            input=server,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        error = type(exc).__name__
        log.warning("registry.credential_helper_failed", registry=host, helper=program, error=error)
        raise RegistryAuthError(f"{host}: credential helper {program} failed: {error}") from exc


def _read_config(path: Path) -> dict[str, Any]:
    """The parsed ``config.json``, or ``{}`` when there is none.

    Raises:
        ConfigError: the file cannot be read or is not a JSON object.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError("DOCKER_CONFIG", f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError("DOCKER_CONFIG", f"{path} is not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ConfigError("DOCKER_CONFIG", f"{path} does not hold a JSON object")
    return data


def _parse_auths(auths: object) -> tuple[dict[str, Credentials], dict[str, str]]:
    """Credentials per host from ``auths``, and each host's original key (for helpers)."""
    creds: dict[str, Credentials] = {}
    server_urls: dict[str, str] = {}
    if not isinstance(auths, dict):
        return creds, server_urls
    for key, entry in auths.items():
        host = normalise_server(str(key))
        # When two keys name the same host, the plain host[:port] key wins.
        exact = str(key).strip().lower() == host
        if host not in server_urls or exact:
            server_urls[host] = str(key)
        parsed = _parse_auth_entry(host, entry)
        if parsed is not None and (host not in creds or exact):
            creds[host] = parsed
    return creds, server_urls


def _parse_auth_entry(host: str, entry: object) -> Credentials | None:
    """Credentials from one ``auths`` entry (``auth`` base64, or ``username``/``password``)."""
    if not isinstance(entry, dict):
        return None
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        return _decode_auth_field(host, encoded)
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and username and isinstance(password, str):
        return Credentials(username, password)
    return None


def _decode_auth_field(host: str, encoded: str) -> Credentials | None:
    """Credentials from base64 ``user:password``; None (and a warning) when malformed."""
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    username, sep, password = decoded.partition(":")
    if sep and username:
        return Credentials(username, password)
    log.warning("registry.config_auth_invalid", registry=host)
    return None


def _parse_helper_output(host: str, program: str, stdout: str) -> Credentials | None:
    """Credentials from a helper's ``{"Username": ..., "Secret": ...}`` answer.

    Raises:
        RegistryAuthError: the answer is not such a JSON object.
    """
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise RegistryAuthError(f"{host}: credential helper {program} answered no JSON") from exc
    if not isinstance(data, dict):
        raise RegistryAuthError(f"{host}: credential helper {program} answered no JSON object")
    username, secret = data.get("Username"), data.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise RegistryAuthError(f"{host}: credential helper {program} answered no credentials")
    if not username and not secret:
        return None
    return Credentials(username, secret)


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: its scheme (lower-case) and parameters."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        """The ``realm`` parameter (for Bearer, the token endpoint URL)."""
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        """The ``service`` parameter the token endpoint expects back."""
        return self.params.get("service")


_TCHAR = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_CHALLENGE_ITEM = re.compile(
    rf"""\s*(?:(?P<key>{_TCHAR})\s*=\s*(?P<value>"(?:[^"\\]|\\.)*"|[^,\s"]+)
        |(?P<scheme>{_TCHAR}))\s*(?:,|(?=\s)|$)""",
    re.VERBOSE,
)


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Every challenge in a ``WWW-Authenticate`` value, in order; unparsable rest is ignored."""
    challenges: list[Challenge] = []
    scheme: str | None = None
    params: dict[str, str] = {}
    position = 0
    while position < len(header):
        match = _CHALLENGE_ITEM.match(header, position)
        if match is None or match.end() == position:
            break
        position = match.end()
        if match.group("scheme"):
            if scheme is not None:
                challenges.append(Challenge(scheme, params))
            scheme, params = match.group("scheme").lower(), {}
        elif scheme is not None:
            params[match.group("key").lower()] = _unquote(match.group("value"))
    if scheme is not None:
        challenges.append(Challenge(scheme, params))
    return challenges


def _unquote(value: str) -> str:
    """Strip the quotes and backslash escapes of a quoted-string."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


class TokenCache:
    """Bearer tokens per key until shortly before they expire; safe to share between threads."""

    DEFAULT_EXPIRES_IN = 60.0
    MARGIN_S = 10.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[Hashable, tuple[str, float]] = {}

    def get(self, key: Hashable) -> str | None:
        """The cached token for ``key``, or None when absent or about to expire."""
        with self._lock:
            entry = self._tokens.get(key)
            if entry is None:
                return None
            if self._clock() >= entry[1]:
                del self._tokens[key]
                return None
            return entry[0]

    def put(self, key: Hashable, token: str, expires_in: float | None) -> None:
        """Cache ``token``; it is dropped ``MARGIN_S`` (at most half its life) before expiry."""
        life = expires_in if expires_in is not None and expires_in > 0 else self.DEFAULT_EXPIRES_IN
        margin = min(self.MARGIN_S, life / 2)
        with self._lock:
            self._tokens[key] = (token, self._clock() + life - margin)

    def discard(self, key: Hashable) -> None:
        """Forget the token for ``key`` (the registry refused it)."""
        with self._lock:
            self._tokens.pop(key, None)


def parse_token_response(body: bytes) -> tuple[str, float | None]:
    """(token, expires_in) from a token endpoint's JSON (``token`` or ``access_token``).

    Raises:
        ValueError: the body is not JSON or holds no token; the message never quotes it.
    """
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError("no JSON") from exc
    if not isinstance(data, dict):
        raise ValueError("no JSON object")
    token = data.get("token") or data.get("access_token")
    if not isinstance(token, str) or not token:
        raise ValueError("no token")
    expires_in = data.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        return token, None
    return token, float(expires_in)
