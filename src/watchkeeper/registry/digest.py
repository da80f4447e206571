"""Ask registries which digest is behind a tag: one ``HEAD`` per image, never a pull.

The engine's own ``/distribution`` endpoint GETs the manifest and the config blob, and Docker
Hub counts a manifest GET as a pull; a HEAD is free (README, opening list). So
:class:`RegistryClient` speaks the registry API itself: ``GET /v2/`` once per host to learn the
auth challenge, a bearer token per repository when asked for one (cached until it expires), then
``HEAD /v2/<name>/manifests/<tag>`` accepting manifest lists and OCI indexes, so the digest is the
one a pull by tag records in ``RepoDigests``.

TLS follows the engine (README, "What an update does"): a registry is verified against the
system store, certifi and its ``certs.d`` folder (``registry.tls``), with the folder's client
certificate. :class:`InsecurePolicy` mirrors the insecure registries of every engine watched;
those are tried like the engine tries them: HTTPS without verification first, plain HTTP when
that cannot connect. All ``httpx`` errors become :class:`~watchkeeper.errors.RegistryError`
here, and credentials or tokens are never logged.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias
from urllib.parse import urljoin, urlsplit

import httpx
import structlog

from watchkeeper.errors import RegistryAuthError, RegistryError
from watchkeeper.registry.auth import (
    Challenge,
    Credentials,
    CredentialStore,
    TokenCache,
    basic_authorization,
    parse_token_response,
    parse_www_authenticate,
)
from watchkeeper.registry.reference import Reference, normalise_registry
from watchkeeper.registry.tags import RegistryTags
from watchkeeper.registry.tls import DEFAULT_CERTS_DIR, registry_ssl_context

log = structlog.get_logger()

MANIFEST_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)
_LOOPBACK_NAMES = frozenset({"localhost"})

IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
# Every engine adds 127.0.0.0/8 to its insecure registries by itself; ::1 is loopback too.
LOOPBACK_NETWORKS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


@dataclass(frozen=True)
class InsecurePolicy:
    """Which registries the engine does not verify: HTTPS unverified first, then plain HTTP.

    The defaults are an engine's own (loopback only); ``networks=()`` describes an engine that
    verifies every registry, loopback ones included.
    """

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = LOOPBACK_NETWORKS

    @classmethod
    def from_engines_info(cls, infos: Iterable[Mapping[str, Any]]) -> InsecurePolicy:
        """The union over every engine watched: a registry any of them does not verify.

        Each ``docker info`` names them in ``IndexConfigs`` (not Secure) and
        ``InsecureRegistryCIDRs``.

        Each engine pulls with its own settings; the check is one for all of them, and a
        registry that one engine reaches as insecure must not be "check failed" for it.
        """
        hosts: set[str] = set()
        networks = list(LOOPBACK_NETWORKS)
        for info in infos:
            engine_hosts, engine_networks = _insecure_in(info)
            hosts |= engine_hosts
            networks += [net for net in engine_networks if net not in networks]
        return cls(hosts=frozenset(hosts), networks=tuple(networks))

    def is_insecure(self, registry: str) -> bool:
        """True when the engine does not verify ``registry`` (host[:port])."""
        registry = normalise_registry(registry)
        if registry in self.hosts:
            return True
        hostname = urlsplit(f"//{registry}").hostname or registry
        if hostname in _LOOPBACK_NAMES:
            hostname = "127.0.0.1"  # what the engine resolves it to
        try:
            address = ipaddress.ip_address(hostname)
        except ValueError:
            return False  # a name: the engine would resolve it; we only match IP literals
        return any(address in net for net in self.networks)

    def schemes(self, registry: str) -> tuple[str, ...]:
        """The schemes to try, in order: ``https`` then ``http`` when insecure, else ``https``."""
        return ("https", "http") if self.is_insecure(registry) else ("https",)


def _insecure_in(info: Mapping[str, Any]) -> tuple[set[str], list[IPNetwork]]:
    """(hosts, networks) one ``docker info`` names as insecure; bad CIDRs are logged, skipped."""
    config = info.get("RegistryConfig") or {}
    hosts = {
        normalise_registry(str(index.get("Name") or name))
        for name, index in (config.get("IndexConfigs") or {}).items()
        if isinstance(index, dict) and index.get("Secure") is False
    }
    networks = []
    for cidr in config.get("InsecureRegistryCIDRs") or []:
        try:
            networks.append(ipaddress.ip_network(str(cidr), strict=False))
        except ValueError:
            log.warning("registry.insecure_cidr_invalid", cidr=str(cidr))
    return hosts, networks


class RegistryClient:
    """Fetches remote digests with one shared ``httpx.Client``; safe to use from many threads."""

    def __init__(
        self,
        credentials: CredentialStore,
        *,
        insecure: InsecurePolicy,
        concurrency: int = 8,
        timeout: float = 10.0,
        certs_dir: Path | None = DEFAULT_CERTS_DIR,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._credentials = credentials
        self._insecure = insecure
        self._concurrency = concurrency
        self._timeout = httpx.Timeout(timeout)
        self._certs_dir = certs_dir
        # One connection pool per registry: each has its own TLS trust (certs.d, insecure).
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._challenges: dict[str, Challenge | None] = {}
        self._bases: dict[str, str] = {}
        self._registries_seen: set[str] = set()
        self._unscoped_warned = False
        self._creds: dict[str, Credentials | None] = {}
        self._tokens = TokenCache()
        # Tag lists (once per repository per run) and image dates (once per digest).
        self.tags = RegistryTags(self)
        self._requests: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        # Inside shared_run: each image's answer, so engines asking in parallel share one HEAD.
        self._run_answers: dict[tuple[str, str, str], str | RegistryError] | None = None

    # -- public surface -------------------------------------------------------------------

    @property
    def requests_by_registry(self) -> dict[str, int]:
        """HTTP requests sent per registry host (a copy)."""
        with self._lock:
            return dict(self._requests)

    @property
    def errors_by_registry(self) -> dict[str, int]:
        """Failed digest fetches per registry host (a copy)."""
        with self._lock:
            return dict(self._errors)

    def fetch_remote_digest(self, ref: Reference) -> str:
        """The digest the registry serves for ``ref``'s tag (its digest when it has no tag).

        Raises:
            RegistryAuthError: the registry refused our credentials, or wants some we lack.
            RegistryError: not found, unreachable, timed out, an HTTP error, or no digest.
        """
        started = time.monotonic()
        self._note_registries([ref.registry])
        try:
            digest = self._head_manifest(ref)
        except RegistryError as exc:
            with self._lock:
                self._errors[ref.registry] += 1
            log.warning("registry.digest_failed", image=ref.name, error=str(exc))
            raise
        log.debug(
            "registry.digest_fetched",
            image=ref.name,
            remote_digest=digest,
            duration_s=round(time.monotonic() - started, 3),
        )
        return digest

    def fetch_digests(self, refs: Iterable[Reference]) -> dict[Reference, str | RegistryError]:
        """Digest or error for every ref; one HEAD per distinct image, ``concurrency`` at once.

        Never raises for one image's failure: its value is the RegistryError.
        """
        groups: dict[tuple[str, str, str], list[Reference]] = {}
        for ref in refs:
            groups.setdefault(_manifest_target(ref), []).append(ref)
        results: dict[Reference, str | RegistryError] = {}
        if not groups:
            return results
        self._note_registries(registry for registry, _, _ in groups)
        for target, outcome in self._answered(groups).items():
            results.update(dict.fromkeys(groups.pop(target), outcome))
        if len(groups) == 1:
            (group,) = groups.values()
            results.update(dict.fromkeys(group, self._fetch_outcome(group[0])))
        elif groups:
            workers = min(self._concurrency, len(groups))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="registry") as pool:
                futures = [(pool.submit(self._fetch_outcome, g[0]), g) for g in groups.values()]
                for future, group in futures:
                    results.update(dict.fromkeys(group, future.result()))
        return results

    def _answered(
        self, targets: Iterable[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], str | RegistryError]:
        """The answers this run already has (inside :meth:`shared_run`) for ``targets``.

        An engine whose images another engine asked for first takes them here, without a
        thread per image: at 10 engines a run started a pool of ``concurrency`` threads per
        engine, most of them only to wait for another engine's HEAD.
        """
        with self._lock:
            answers = self._run_answers
            if answers is None:
                return {}
            return {target: answers[target] for target in targets if target in answers}

    @contextmanager
    def shared_run(self) -> Iterator[None]:
        """Inside the block every distinct image is asked for once, whichever engine asks.

        A run wraps its engines in it: an image used on five hosts costs one HEAD per run,
        and every engine judges it by the same answer (an error too). Runs never overlap.
        """
        with self._lock:
            self._run_answers = {}
        try:
            yield
        finally:
            with self._lock:
                self._run_answers = None

    def close(self) -> None:
        """Close every registry's connection pool."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the HEAD and its auth ------------------------------------------------------------

    def _fetch_outcome(self, ref: Reference) -> str | RegistryError:
        """The digest or the error, once per image inside :meth:`shared_run`."""
        with self._lock:
            answers = self._run_answers
        if answers is None:
            return self._ask(ref)
        target = _manifest_target(ref)
        with self._lock_for(("run", target)):  # a second engine waits for the first's HEAD
            with self._lock:
                known = answers.get(target)
            if known is None:
                known = self._ask(ref)
                with self._lock:
                    answers[target] = known
            return known

    def _ask(self, ref: Reference) -> str | RegistryError:
        """The digest, or the error (unexpected exceptions wrapped) instead of raising."""
        try:
            return self.fetch_remote_digest(ref)
        except RegistryError as exc:
            return exc
        except Exception as exc:  # one image's bug must not end the whole check
            error = RegistryError(f"{ref.name}: unexpected error: {type(exc).__name__}")
            error.__cause__ = exc
            log.warning("registry.digest_failed", image=ref.name, error=str(error), exc_info=True)
            return error

    def _head_manifest(self, ref: Reference) -> str:
        """Send the one HEAD for ``ref`` (authenticating first) and read its digest.

        Raises:
            RegistryAuthError, RegistryError: as :meth:`fetch_remote_digest`.
        """
        path = f"/v2/{ref.repository}/manifests/{_manifest_target(ref)[2]}"
        return _digest_from(ref, self.request(ref, "HEAD", path))

    def request(
        self, ref: Reference, method: str, path: str, accept: str = MANIFEST_ACCEPT
    ) -> httpx.Response:
        """One authenticated request about ``ref``'s repository, with its pull token.

        ``path`` is ``/v2/...`` or a URL relative to the registry (a ``Link`` header's). The
        token and the challenge are the HEAD's, cached the same way. Any status but 401 and
        5xx is returned for the caller to read.

        Raises:
            RegistryAuthError: the registry refused our credentials, or wants some we lack.
            RegistryError: unreachable, timed out, or a 5xx answer.
        """
        challenge = self._challenge_for(ref)
        url = urljoin(self._base_url(ref) + "/", path)
        headers = {"Accept": accept}
        authorization = self._authorization(ref, challenge)
        response = self._send(ref, method, url, self._with(headers, authorization))
        if response.status_code == 401 and authorization is None:
            # /v2/ was open but this repository is not: learn its challenge and retry once.
            challenge = self._remember_challenge(ref, response)
            authorization = self._authorization(ref, challenge)
            if authorization is not None:
                response = self._send(ref, method, url, self._with(headers, authorization))
        if response.status_code == 401:
            raise self._auth_failed(ref, self._lookup(ref.registry) is not None, 401)
        return response

    def _challenge_for(self, ref: Reference) -> Challenge | None:
        """The host's auth challenge from ``GET /v2/``, asked once per host and cached.

        Raises:
            RegistryError: the host cannot be reached or answers neither 200 nor 401.
        """
        host = ref.registry
        with self._lock_for(("challenge", host)):
            with self._lock:
                if host in self._challenges:
                    return self._challenges[host]
            response = self._probe(ref)
            if response.status_code == 401:
                return self._remember_challenge(ref, response)
            with self._lock:
                self._challenges[host] = None
            return None

    def _probe(self, ref: Reference) -> httpx.Response:
        """``GET /v2/`` over each scheme the engine would try; remember the one that answers.

        An insecure registry is tried over HTTPS without verification first and over plain
        HTTP only when no TLS connection could be made, as the engine does; that failed
        handshake is no HTTP request and is not counted.

        Raises:
            RegistryError: no scheme connects, or the answer is neither 200 nor 401.
        """
        *first, last = self._insecure.schemes(ref.registry)
        tls_error: str | None = None
        for scheme in first:
            try:
                response = self._send(ref, "GET", f"{scheme}://{ref.api_host}/v2/", {}, raw=True)
            except httpx.TransportError as exc:
                tls_error = f"{type(exc).__name__}: {exc}"
                log.debug("registry.scheme_fallback", registry=ref.registry, error=tls_error)
                continue
            return self._probed(ref, scheme, response)
        try:
            response = self._send(ref, "GET", f"{last}://{ref.api_host}/v2/", {})
            return self._probed(ref, last, response)
        except RegistryError as exc:
            if tls_error is None:
                raise
            raise RegistryError(f"{exc} (and over HTTPS: {tls_error})") from exc

    def _probed(self, ref: Reference, scheme: str, response: httpx.Response) -> httpx.Response:
        """Remember ``scheme`` for the host when ``response`` is 200 or 401; else raise.

        Raises:
            RegistryError: the registry answered something else.
        """
        if response.status_code != 401 and not response.is_success:
            raise RegistryError(
                f"{ref.name}: {ref.registry} answered HTTP {response.status_code} to GET /v2/"
            )
        with self._lock:
            self._bases[ref.registry] = f"{scheme}://{ref.api_host}"
        return response

    def _remember_challenge(self, ref: Reference, response: httpx.Response) -> Challenge:
        """Parse a 401's ``WWW-Authenticate`` (Bearer preferred) and cache it for the host.

        Raises:
            RegistryAuthError: no Basic or Bearer challenge in the answer.
        """
        challenges = parse_www_authenticate(response.headers.get("WWW-Authenticate", ""))
        usable = [c for c in challenges if c.scheme in ("bearer", "basic")]
        if not usable:
            raise RegistryAuthError(f"{ref.name}: {ref.registry} sent no usable auth challenge")
        challenge = min(usable, key=lambda c: c.scheme != "bearer")
        with self._lock:
            self._challenges[ref.registry] = challenge
        return challenge

    def _authorization(self, ref: Reference, challenge: Challenge | None) -> str | None:
        """The ``Authorization`` value for ``ref``, or None to go anonymous.

        Raises:
            RegistryAuthError, RegistryError: from the credential lookup or the token request.
        """
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self._lookup(ref.registry)
            return None if creds is None else basic_authorization(creds)
        return f"Bearer {self._token(ref, challenge)}"

    def _token(self, ref: Reference, challenge: Challenge) -> str:
        """A pull token for ``ref``'s repository, from the cache or the challenge's realm.

        Raises:
            RegistryAuthError, RegistryError: as :meth:`_request_token`.
        """
        key = (ref.registry, _pull_scope(ref))
        with self._lock_for(("token", *key)):
            token = self._tokens.get(key)
            if token is None:
                token, expires_in = self._request_token(ref, challenge)
                self._tokens.put(key, token, expires_in)
            return token

    def _request_token(self, ref: Reference, challenge: Challenge) -> tuple[str, float | None]:
        """GET the Bearer realm with ``service`` and ``scope``; return (token, expires_in).

        Raises:
            RegistryAuthError: the realm refused our credentials, or would get them in clear.
            RegistryError: the realm is missing, unreachable or answers no token.
        """
        realm = challenge.realm or ""
        creds = self._lookup(ref.registry)
        self._check_realm(ref, realm, with_credentials=creds is not None)
        params = {"scope": _pull_scope(ref)}
        if challenge.service:
            params["service"] = challenge.service
        headers = {} if creds is None else {"Authorization": basic_authorization(creds)}
        response = self._send(ref, "GET", realm, headers, params=params)
        if response.status_code in (401, 403):
            raise self._auth_failed(ref, creds is not None, response.status_code)
        if not response.is_success:
            raise RegistryError(f"{ref.name}: token endpoint answered HTTP {response.status_code}")
        try:
            return parse_token_response(response.content)
        except ValueError as exc:
            raise RegistryError(f"{ref.name}: token endpoint answered {exc}") from exc

    def _check_realm(self, ref: Reference, realm: str, *, with_credentials: bool) -> None:
        """Refuse a realm that is no HTTP URL, or plain HTTP for a registry reached over TLS.

        Raises:
            RegistryError: the challenge has no usable realm.
            RegistryAuthError: credentials would travel in clear to the realm.
        """
        scheme = urlsplit(realm).scheme.lower()
        if scheme not in ("http", "https"):
            raise RegistryError(f"{ref.name}: {ref.registry} sent a Bearer challenge without realm")
        # Credentials go in clear only where the registry itself is reached in clear.
        if with_credentials and scheme == "http" and not self._insecure.is_insecure(ref.registry):
            raise RegistryAuthError(
                f"{ref.name}: refusing to send credentials for {ref.registry} to a plain-HTTP realm"
            )

    # -- plumbing -------------------------------------------------------------------------

    def _send(
        self,
        ref: Reference,
        method: str,
        url: str,
        headers: Mapping[str, str],
        params: Mapping[str, str] | None = None,
        *,
        raw: bool = False,
    ) -> httpx.Response:
        """Send one request through ``ref``'s registry's pool, counting it for that registry.

        Raises:
            httpx.TransportError: with ``raw``, when no connection could be made (not counted).
            RegistryError: any transport error or timeout, any 5xx answer, a bad certs folder.
        """
        try:
            response = self._http_for(ref).request(method, url, headers=headers, params=params)
        except httpx.HTTPError as exc:
            if raw and isinstance(exc, httpx.TransportError):
                raise
            self._count(ref.registry, 1)
            raise RegistryError(
                f"{ref.name}: {method} to {urlsplit(url).netloc} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        self._count(ref.registry, 1 + len(response.history))
        if response.status_code >= 500:
            raise RegistryError(
                f"{ref.name}: {urlsplit(url).netloc} answered HTTP {response.status_code}"
            )
        return response

    def _count(self, registry: str, requests: int) -> None:
        with self._lock:
            self._requests[registry] += requests

    def _lock_for(self, key: Hashable) -> threading.Lock:
        """One lock per key, so a host is probed and a token fetched only once at a time."""
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _lookup(self, registry: str) -> Credentials | None:
        """Credentials for ``registry``, looked up once per client (helpers are slow).

        Raises:
            RegistryAuthError: a credential helper failed.
        """
        with self._lock_for(("creds", registry)):
            with self._lock:
                if registry in self._creds:
                    return self._creds[registry]
            creds = self._credentials.lookup(registry)
            with self._lock:
                self._creds[registry] = creds
            return creds

    def _auth_failed(self, ref: Reference, had_credentials: bool, status: int) -> RegistryAuthError:
        """Log a refusal and return its error; drop cached credentials and token for a retry."""
        self._tokens.discard((ref.registry, _pull_scope(ref)))
        with self._lock:
            self._creds.pop(ref.registry, None)
        log.warning(
            "registry.auth_failed",
            image=ref.name,
            registry=ref.registry,
            had_credentials=had_credentials,
            status=status,
        )
        if had_credentials:
            return RegistryAuthError(f"{ref.name}: {ref.registry} refused the credentials")
        return RegistryAuthError(
            f"{ref.name}: {ref.registry} requires credentials and none are configured"
        )

    def _base_url(self, ref: Reference) -> str:
        """Where ``ref``'s registry answered its probe (HTTPS until it was probed)."""
        with self._lock:
            return self._bases.get(ref.registry) or f"https://{ref.api_host}"

    def _http_for(self, ref: Reference) -> httpx.Client:
        """The connection pool of ``ref``'s registry, made on first use with its TLS trust.

        Raises:
            RegistryError: the registry's certs folder cannot be used.
        """
        registry = ref.registry
        with self._lock_for(("client", registry)):
            with self._lock:
                client = self._clients.get(registry)
            if client is None:
                verify = not self._insecure.is_insecure(registry)
                client = httpx.Client(
                    verify=registry_ssl_context(registry, self._certs_dir, verify=verify),
                    timeout=self._timeout,
                    follow_redirects=True,
                    limits=httpx.Limits(max_connections=self._concurrency + 2),
                )
                with self._lock:
                    self._clients[registry] = client
            return client

    def _note_registries(self, registries: Iterable[str]) -> None:
        """Warn once when REPO_USER/REPO_PASS, set for every registry, meet a second one."""
        if not self._credentials.unscoped:
            return
        with self._lock:
            self._registries_seen.update(registries)
            if self._unscoped_warned or len(self._registries_seen) < 2:
                return
            self._unscoped_warned = True
            seen = sorted(self._registries_seen)
        log.warning(
            "config.credentials_unscoped",
            setting="REPO_HOST",
            registries=seen,
            hint="REPO_USER/REPO_PASS are sent to every registry: set REPO_HOST to theirs",
        )

    @staticmethod
    def _with(headers: Mapping[str, str], authorization: str | None) -> dict[str, str]:
        if authorization is None:
            return dict(headers)
        return {**headers, "Authorization": authorization}


def _manifest_target(ref: Reference) -> tuple[str, str, str]:
    """(registry, repository, tag or digest): what one HEAD asks about; the dedup key."""
    target = ref.tag if ref.tag is not None else ref.digest
    assert target is not None  # parse_reference always sets a tag or a digest
    return ref.registry, ref.repository, target


def _pull_scope(ref: Reference) -> str:
    return f"repository:{ref.repository}:pull"


def _digest_from(ref: Reference, response: httpx.Response) -> str:
    """The ``Docker-Content-Digest`` of a successful HEAD.

    Raises:
        RegistryError: 404 (not found), any other non-2xx status, or no digest header.
    """
    if response.status_code == 404:
        raise RegistryError(f"{ref.name}: manifest not found on {ref.registry}")
    if response.status_code == 429:
        retry = response.headers.get("Retry-After", "unknown")
        raise RegistryError(f"{ref.name}: rate limited by {ref.registry} (retry after {retry})")
    if not response.is_success:
        raise RegistryError(f"{ref.name}: {ref.registry} answered HTTP {response.status_code}")
    digest = str(response.headers.get("Docker-Content-Digest", "")).strip()
    algorithm, sep, encoded = digest.partition(":")
    if not (sep and algorithm and encoded):
        raise RegistryError(f"{ref.name}: {ref.registry} sent no Docker-Content-Digest header")
    return digest
