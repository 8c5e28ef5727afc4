"""The shape of every CA certificate certplane creates, whatever holds the CA's keys.

The local, KMS and PKCS#11 engines build their roots and issuing CAs here, so a hierarchy
looks the same (names, key usage, key identifiers) on a laptop, in KMS or in an HSM.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from cryptography.x509.oid import NameOID

ROOT_VALIDITY = datetime.timedelta(days=20 * 365)
ISSUING_VALIDITY = datetime.timedelta(days=10 * 365)
CA_BACKDATE = datetime.timedelta(hours=1)  # leaves are backdated too; issuers must cover them


def ca_name(common_name: str, organization: str) -> x509.Name:
    """`O=<organization>, CN=<common name>`: the CA subject every certplane-made CA uses."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def ca_certificate_builder(
    subject: x509.Name,
    public_key: CertificateIssuerPublicKeyTypes,
    issuer: x509.Name,
    issuer_public_key: CertificateIssuerPublicKeyTypes,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    path_length: int | None,
) -> x509.CertificateBuilder:
    """An unsigned root or issuing CA certificate; shared with engines whose keys sign elsewhere
    (KMS), so every certplane CA hierarchy has the same shape whatever holds its keys."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key),
            critical=False,
        )
    )
