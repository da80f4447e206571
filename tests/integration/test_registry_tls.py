"""watchkeeper trusts registries as the Docker engine does: certs.d, client certificates, insecure.

Registries run with TLS on 127.0.0.1 with certificates made in the test. The engine treats
every loopback registry as insecure, so ``watchkeeper check`` (with the engine's own policy)
proves the insecure path: HTTPS without verification first, client certificates from the certs
folder, plain HTTP last. A private CA only matters for a registry the engine verifies; no
loopback registry is one for the engine, so those tests give the client a policy with no
insecure registries. The engine cannot present our client certificate, so a client-certificate
registry shares its storage with a plain one the engine pushes to.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.certs import CertificateAuthority
from tests.conftest import (
    CliResult,
    ImageFactory,
    Registry,
    remove_images_of,
    run_watchkeeper,
    start_registry,
)
from tests.integration.conftest import SLEEP, Starter
from tests.support.engine_objects import RegistryTls
from watchkeeper.errors import RegistryError
from watchkeeper.registry.auth import CredentialStore
from watchkeeper.registry.digest import InsecurePolicy, RegistryClient
from watchkeeper.registry.reference import parse_reference

pytestmark = pytest.mark.docker


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    """A private CA no trust store knows."""
    return CertificateAuthority.create(tmp_path / "pki", "registry test CA")


@pytest.fixture
def started(docker_client: docker.DockerClient) -> Iterator[list[Registry]]:
    """Registries a test starts; stopped, and their images removed, afterwards."""
    registries: list[Registry] = []
    yield registries
    for reg in registries:
        reg.stop()
        remove_images_of(docker_client, reg.host)


@pytest.fixture
def anonymous(tmp_path: Path) -> CredentialStore:
    """No credentials at all."""
    return CredentialStore.load(str(tmp_path / "no-docker-config"))


def _tls_registry(
    tmp_path: Path,
    ca: CertificateAuthority,
    started: list[Registry],
    *,
    client_cas: tuple[Path, ...] = (),
    storage: Path | None = None,
) -> Registry:
    """A registry on 127.0.0.1 serving a certificate of ``ca``."""
    issued = ca.issue_server(f"server-{len(started)}")
    tls = RegistryTls(issued.certificate, issued.key, client_cas)
    reg = start_registry(tmp_path / f"tls-{len(started)}", tls=tls, storage=storage)
    started.append(reg)
    return reg


def _certs_folder(base: Path, host: str) -> Path:
    """``base/<host:port>``, as the engine's ``/etc/docker/certs.d`` is laid out."""
    folder = base / host
    folder.mkdir(parents=True)
    return folder


def _check(name: str, certs_dir: Path | None = None) -> tuple[CliResult, dict[str, Any]]:
    """Run ``watchkeeper check --json NAME``; return the result and the container's row."""
    env = {} if certs_dir is None else {"WATCHKEEPER_REGISTRY_CERTS_DIR": str(certs_dir)}
    result = run_watchkeeper("check", "--json", name, env=env)
    lists = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert lists, (result.stdout[-2000:], result.stderr[-2000:])
    (row,) = json.loads(lists[-1])
    return result, row


def test_check_client_certificate_registry_uses_certs_folder(
    tmp_path: Path,
    ca: CertificateAuthority,
    started: list[Registry],
    images: ImageFactory,
    docker_client: docker.DockerClient,
    start: Starter,
) -> None:
    """A registry demanding a client certificate answers with the certs folder's, not without."""
    plain = start_registry(tmp_path / "plain")
    started.append(plain)
    pushed = images.build_and_push(f"{plain.host}/app:1", SLEEP)
    secured = _tls_registry(
        tmp_path, ca, started, client_cas=(ca.path,), storage=plain.root / "data"
    )
    docker_client.images.get(f"{plain.host}/app:1").tag(f"{secured.host}/app", "1")
    container = start(f"{secured.host}/app:1")

    result, row = _check(container.name)
    assert (result.returncode, row["verdict"]) == (1, "error"), row

    certs = tmp_path / "certs.d"
    folder = _certs_folder(certs, secured.host)
    client = ca.issue_client("client")
    shutil.copy(ca.path, folder / "ca.crt")
    shutil.copy(client.certificate, folder / "client.cert")
    shutil.copy(client.key, folder / "client.key")
    result, row = _check(container.name, certs)
    assert result.returncode == 0, (row, result.stderr[-2000:])
    assert (row["verdict"], row["remote_digest"]) == ("fresh", pushed)


def test_check_tls_registry_engine_treats_insecure_reached_over_https(
    tmp_path: Path,
    ca: CertificateAuthority,
    started: list[Registry],
    images: ImageFactory,
    start: Starter,
) -> None:
    """A loopback (insecure) registry serving TLS with an unknown CA is asked over HTTPS."""
    secured = _tls_registry(tmp_path, ca, started)
    pushed = images.build_and_push(f"{secured.host}/app:1", SLEEP)
    container = start(f"{secured.host}/app:1")
    result, row = _check(container.name)
    assert result.returncode == 0, (row, result.stderr[-2000:])
    assert (row["verdict"], row["remote_digest"]) == ("fresh", pushed)


def test_fetch_remote_digest_private_ca_in_certs_folder_verified(
    tmp_path: Path,
    ca: CertificateAuthority,
    started: list[Registry],
    images: ImageFactory,
    anonymous: CredentialStore,
) -> None:
    """For a registry the engine verifies, the certs folder's ``*.crt`` is trusted; nothing else."""
    secured = _tls_registry(tmp_path, ca, started)
    pushed = images.build_and_push(f"{secured.host}/app:1", SLEEP)
    ref = parse_reference(f"{secured.host}/app:1")
    verified = InsecurePolicy(networks=())
    certs = tmp_path / "certs.d"
    folder = _certs_folder(certs, secured.host)

    with (
        RegistryClient(anonymous, insecure=verified, certs_dir=certs) as client,
        pytest.raises(RegistryError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.fetch_remote_digest(ref)

    shutil.copy(ca.path, folder / "private-ca.crt")
    with RegistryClient(anonymous, insecure=verified, certs_dir=certs) as client:
        assert client.fetch_remote_digest(ref) == pushed


def test_fetch_remote_digest_verified_registry_client_key_without_cert_fails(
    tmp_path: Path,
    ca: CertificateAuthority,
    started: list[Registry],
    anonymous: CredentialStore,
) -> None:
    """A ``*.key`` with no ``*.cert`` beside it is that registry's error, as for the engine."""
    secured = _tls_registry(tmp_path, ca, started)
    certs = tmp_path / "certs.d"
    folder = _certs_folder(certs, secured.host)
    shutil.copy(ca.path, folder / "ca.crt")
    shutil.copy(ca.issue_client("client").key, folder / "client.key")
    with (
        RegistryClient(anonymous, insecure=InsecurePolicy(networks=()), certs_dir=certs) as client,
        pytest.raises(RegistryError, match=r"client\.key.*no client certificate"),
    ):
        client.fetch_remote_digest(parse_reference(f"{secured.host}/app:1"))
