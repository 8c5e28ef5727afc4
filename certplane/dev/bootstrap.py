"""Bootstrap material for trying the enrollment doors against `certplane dev`.

A bootstrap CA (standing in for a factory CA), one seed certificate it signed (a device's
factory identity, also as PKCS#12 with password `changeit`), EST enrollment credentials and a
SAT token. Files are made once per home; their trust and hashes are (re)registered at start.
"""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certplane.auth import CredentialKind, CredentialStore
from certplane.dev.home import write_secret

P12_PASSWORD = b"changeit"
EST_USER = "est-dev"
SEED_DEVICE = "seed-0001"


@dataclass(frozen=True)
class BootstrapFiles:
    folder: Path

    @property
    def ca_pem(self) -> Path:
        return self.folder / "bootstrap-ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "bootstrap-ca.key"

    @property
    def seed_pem(self) -> Path:
        return self.folder / "seed.pem"

    @property
    def seed_key(self) -> Path:
        return self.folder / "seed.key"

    @property
    def seed_p12(self) -> Path:
        return self.folder / "seed.p12"

    @property
    def est_credentials(self) -> Path:
        return self.folder / "est-credentials"

    @property
    def sat_token(self) -> Path:
        return self.folder / "sat-token"


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certplane dev factory"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _create(files: BootstrapFiles) -> None:
    files.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - datetime.timedelta(hours=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("certplane dev Bootstrap CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=20 * 365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    seed_key = ec.generate_private_key(ec.SECP256R1())
    seed = (
        x509.CertificateBuilder()
        .subject_name(_name(SEED_DEVICE))
        .issuer_name(ca_name)
        .public_key(seed_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=10 * 365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(seed_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    # PBES1/3DES + SHA-1 MAC: what OpenSSL 1.1 and mbedTLS builds of libCertifier can read.
    p12_encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(50000)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(P12_PASSWORD)
    )
    p12 = pkcs12.serialize_key_and_certificates(
        SEED_DEVICE.encode(), seed_key, seed, [ca], p12_encryption
    )
    write_secret(files.ca_key, _key_pem(ca_key))
    files.ca_pem.write_text(ca.public_bytes(serialization.Encoding.PEM).decode())
    write_secret(files.seed_key, _key_pem(seed_key))
    files.seed_pem.write_text(seed.public_bytes(serialization.Encoding.PEM).decode())
    files.seed_p12.write_bytes(p12)
    files.seed_p12.chmod(0o600)
    write_secret(files.est_credentials, f"{EST_USER}:{secrets.token_urlsafe(18)}\n")
    write_secret(files.sat_token, secrets.token_urlsafe(32) + "\n")


def prepare_bootstrap(folder: Path, tenant: str, credentials: CredentialStore) -> BootstrapFiles:
    """Create the files on first start; register trust and credential hashes every start."""
    files = BootstrapFiles(folder)
    if not files.sat_token.exists():
        _create(files)
    credentials.trust_bootstrap_ca(
        tenant, x509.load_pem_x509_certificate(files.ca_pem.read_bytes())
    )
    user, _, password = files.est_credentials.read_text().strip().partition(":")
    credentials.set_password(tenant, user, password)
    credentials.register_token(
        files.sat_token.read_text().strip(), tenant, "sat-dev", ("enroll",), CredentialKind.SAT
    )
    return files
