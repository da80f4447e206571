"""Unit tests of the registry TLS contexts: the engine's certs.d layout, no sockets.

Certificates are made in the test (``tests/certs.py``); a context's trusted CAs are read back
with ``get_ca_certs``, which lists those loaded from files.
"""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import certifi
import pytest
import structlog

from tests.certs import CertificateAuthority
from watchkeeper.errors import RegistryError
from watchkeeper.registry.tls import registry_ssl_context

HOST = "registry.example.com:5000"


def _subjects(context: ssl.SSLContext) -> set[str]:
    """The common names of every CA the context loaded from files."""
    names = set()
    for cert in context.get_ca_certs():
        for rdn in cert["subject"]:
            names.update(value for key, value in rdn if key == "commonName")
    return names


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    """A private CA."""
    return CertificateAuthority.create(tmp_path / "pki", "tls unit CA")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """``<certs>/<HOST>/``, empty."""
    path = tmp_path / "certs.d" / HOST
    path.mkdir(parents=True)
    return path


def test_registry_ssl_context_verified_trusts_certifi_and_folder_crt(
    ca: CertificateAuthority, folder: Path
) -> None:
    """A verified context trusts certifi's CAs and every ``*.crt`` of the registry's folder."""
    shutil.copy(ca.path, folder / "private.crt")
    context = registry_ssl_context(HOST, folder.parent, verify=True)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert "tls unit CA" in _subjects(context)
    certifi_count = certifi.contents().count("BEGIN CERTIFICATE")
    assert len(context.get_ca_certs()) > certifi_count


def test_registry_ssl_context_system_store_file_trusted_besides_certifi(
    ca: CertificateAuthority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The system store (here through SSL_CERT_FILE) and certifi are both trusted."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.path))
    context = registry_ssl_context(HOST, tmp_path / "absent", verify=True)
    assert "tls unit CA" in _subjects(context)
    assert len(context.get_ca_certs()) > 1


def test_registry_ssl_context_other_registry_folder_not_trusted(
    ca: CertificateAuthority, folder: Path
) -> None:
    """A CA in one registry's folder is not trusted for another registry."""
    shutil.copy(ca.path, folder / "ca.crt")
    context = registry_ssl_context("other.example.com", folder.parent, verify=True)
    assert "tls unit CA" not in _subjects(context)


def test_registry_ssl_context_client_pair_loaded_even_unverified(
    ca: CertificateAuthority, folder: Path
) -> None:
    """An insecure registry gets no verification but still the folder's client certificate."""
    client = ca.issue_client("client")
    shutil.copy(client.certificate, folder / "client.cert")
    shutil.copy(client.key, folder / "client.key")
    shutil.copy(ca.path, folder / "ca.crt")
    context = registry_ssl_context(HOST, folder.parent, verify=False)
    assert context.verify_mode is ssl.CERT_NONE
    assert not context.check_hostname
    assert "tls unit CA" not in _subjects(context)


@pytest.mark.parametrize(("present", "missing"), [("client.cert", "key"), ("client.key", "cert")])
def test_registry_ssl_context_unpaired_client_file_raises(
    ca: CertificateAuthority, folder: Path, present: str, missing: str
) -> None:
    """A ``.cert`` without its ``.key`` (or the reverse) is that registry's error."""
    client = ca.issue_client("client")
    source = client.certificate if present.endswith(".cert") else client.key
    shutil.copy(source, folder / present)
    with pytest.raises(RegistryError, match=rf"{HOST}: .*{present}.* no .*{missing}"):
        registry_ssl_context(HOST, folder.parent, verify=True)


def test_registry_ssl_context_garbage_crt_raises_naming_file(folder: Path) -> None:
    """A ``*.crt`` that holds no certificate is a RegistryError naming the file."""
    (folder / "broken.crt").write_text("not a certificate\n")
    with pytest.raises(RegistryError, match=r"broken\.crt"):
        registry_ssl_context(HOST, folder.parent, verify=True)


def test_registry_ssl_context_two_client_pairs_first_used_warned(
    ca: CertificateAuthority, folder: Path
) -> None:
    """Two client pairs: the first by name is presented, the other named in a warning."""
    for stem in ("a", "b"):
        issued = ca.issue_client(stem)
        shutil.copy(issued.certificate, folder / f"{stem}.cert")
        shutil.copy(issued.key, folder / f"{stem}.key")
    with structlog.testing.capture_logs() as logs:
        registry_ssl_context(HOST, folder.parent, verify=True)
    (warning,) = [e for e in logs if e["event"] == "registry.client_certificates_extra"]
    assert (warning["used"], warning["ignored"]) == ("a.cert", ["b.cert"])


def test_registry_ssl_context_no_certs_dir_is_system_and_certifi(tmp_path: Path) -> None:
    """Without a certs folder (or without the registry's) the context is the default trust."""
    for certs_dir in (None, tmp_path / "absent"):
        context = registry_ssl_context(HOST, certs_dir, verify=True)
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.get_ca_certs()
