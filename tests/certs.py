"""Certificates made in the test: a private CA, a server certificate for 127.0.0.1, a client one.

Registries with TLS (and with client certificates) are started by the tests themselves, so the
certificates are made here with ``cryptography`` rather than checked in: nothing expires, nothing
is trusted outside the test that made it. EC P-256 keys keep the generation fast.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_LIFETIME = datetime.timedelta(days=2)


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, both as PEM files."""

    certificate: Path
    key: Path


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that issues server and client certificates into ``folder``."""

    folder: Path
    name: str
    _key: ec.EllipticCurvePrivateKey
    _cert: x509.Certificate

    @classmethod
    def create(cls, folder: Path, name: str = "watchkeeper test CA") -> CertificateAuthority:
        """Make a new CA and write its certificate to ``folder/<slug>-ca.pem``."""
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (
            _builder(subject, subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .sign(key, hashes.SHA256())
        )
        ca = cls(folder, name, key, cert)
        ca.path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return ca

    @property
    def path(self) -> Path:
        """The CA certificate (PEM)."""
        return self.folder / f"{_slug(self.name)}-ca.pem"

    def issue_server(self, stem: str, ip: str = "127.0.0.1") -> Issued:
        """A server certificate valid for the IP address ``ip``."""
        names = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))])
        return self._issue(stem, ip, names, ExtendedKeyUsageOID.SERVER_AUTH)

    def issue_client(self, stem: str, common_name: str = "watchkeeper") -> Issued:
        """A client certificate (TLS client authentication)."""
        return self._issue(stem, common_name, None, ExtendedKeyUsageOID.CLIENT_AUTH)

    def _issue(
        self,
        stem: str,
        common_name: str,
        names: x509.SubjectAlternativeName | None,
        purpose: x509.ObjectIdentifier,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = (
            _builder(subject, self._cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        )
        if names is not None:
            builder = builder.add_extension(names, critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        issued = Issued(self.folder / f"{stem}.pem", self.folder / f"{stem}-key.pem")
        issued.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return issued


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _LIFETIME)
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _slug(name: str) -> str:
    return "-".join(name.lower().split())
