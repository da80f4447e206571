"""TLS for registries, trusted as the Docker engine trusts them.

A registry the engine pulls from must not be "check failed" for watchkeeper. The engine trusts
the system's CA store and, per registry, the files in ``/etc/docker/certs.d/<host[:port]>/``:
every ``*.crt`` is an extra CA, every ``*.cert`` with the ``*.key`` of the same name is a client
certificate (a ``.cert`` without its ``.key``, or the reverse, is an error for that registry).
For a registry it treats as insecure it still presents those client certificates but skips
verification. :func:`registry_ssl_context` builds the same trust for one registry: the system
store, certifi's bundle (for slim images without a system store; certifi is a dependency of
httpx, pinned in requirements.txt), then the registry's folder.
The base folder is the ``REGISTRY_CERTS_DIR`` setting, so the container image can mount the
host's ``/etc/docker/certs.d`` read-only.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import certifi
import structlog

from watchkeeper.errors import RegistryError

log = structlog.get_logger()

DEFAULT_CERTS_DIR = Path("/etc/docker/certs.d")


def registry_ssl_context(registry: str, certs_dir: Path | None, *, verify: bool) -> ssl.SSLContext:
    """The TLS context for ``registry`` (host[:port], the name of its certs folder).

    ``verify=False`` is for registries the engine treats as insecure: no verification, but the
    folder's client certificate is still presented.

    Raises:
        RegistryError: the registry's certs folder holds an unreadable or unpaired file.
    """
    context = ssl.create_default_context() if verify else _unverified_context()
    if verify:
        # The system store first (create_default_context, honouring SSL_CERT_FILE/SSL_CERT_DIR),
        # then certifi's bundle: a slim image may have no system store at all.
        context.load_verify_locations(cafile=certifi.where())
    folder = certs_dir / registry if certs_dir is not None else None
    if folder is not None and folder.is_dir():
        _load_folder(context, registry, folder, verify=verify)
    return context


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _load_folder(context: ssl.SSLContext, registry: str, folder: Path, *, verify: bool) -> None:
    """Add the folder's CAs (when verifying) and its client certificate to ``context``.

    Raises:
        RegistryError: a file cannot be read or loaded, or a certificate or key has no pair.
    """
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError as exc:
        raise RegistryError(f"{registry}: cannot read {folder}: {exc.strerror}") from exc
    if verify:
        for path in files:
            if path.suffix == ".crt":
                _load(context.load_verify_locations, registry, path)
    pairs = _client_pairs(registry, files)
    if pairs:
        cert, key = pairs[0]
        _load(context.load_cert_chain, registry, cert, key)
        # Python's TLS offers one client certificate; the engine's Go code would pick among
        # several. One per registry is what docker's own documentation shows.
        if len(pairs) > 1:
            log.warning(
                "registry.client_certificates_extra",
                registry=registry,
                used=cert.name,
                ignored=[c.name for c, _ in pairs[1:]],
            )
    log.debug("registry.certs_loaded", registry=registry, folder=str(folder), pairs=len(pairs))


def _client_pairs(registry: str, files: list[Path]) -> list[tuple[Path, Path]]:
    """(``x.cert``, ``x.key``) pairs, as the engine reads them.

    Raises:
        RegistryError: a ``.cert`` without its ``.key`` or a ``.key`` without its ``.cert``.
    """
    names = {p.name for p in files}
    pairs = []
    for path in files:
        if path.suffix == ".cert":
            key = path.with_suffix(".key")
            if key.name not in names:
                raise RegistryError(f"{registry}: {path} has no key {key.name} beside it")
            pairs.append((path, key))
        elif path.suffix == ".key" and path.with_suffix(".cert").name not in names:
            raise RegistryError(f"{registry}: {path} has no client certificate beside it")
    return pairs


def _load(method: Callable[..., object], registry: str, *paths: Path) -> None:
    """Call an SSLContext loader with ``paths``, translating its errors.

    Raises:
        RegistryError: the file cannot be read or holds no usable certificate or key.
    """
    try:
        method(*(str(p) for p in paths))
    except (OSError, ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise RegistryError(f"{registry}: cannot load {paths[0]}: {reason}") from exc
