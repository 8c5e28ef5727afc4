"""AWS Private CA, emulated by moto: a subordinate CA activated under a test root.

moto's ACM PCA really signs, but only the plumbing is real: its CA key is always RSA-2048 and
signs sha512WithRSA, leaves live 365 days whatever Validity says, *_APIPassthrough templates
and ApiPassthrough are ignored (the leaf gets the CSR's subject and SAN, nothing else),
CreateCertificateAuthority's UsageMode is dropped (DescribeCertificateAuthority always says
SHORT_LIVED_CERTIFICATE) and nothing publishes CRLs or OCSP. So this factory configures the
CA as what moto does (RSA_2048 / SHA512WITHRSA), sets the usage mode on moto's model, turns
the engine's content check off, and declares the gaps the contract suite may excuse.
Request shapes and the content check are tested against stubs in test_pca_engine.py.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto.acmpca.models import acmpca_backends

from certbridge.certificates import CA_BACKDATE, ca_certificate_builder
from certbridge.engines.pca import GENERAL_PURPOSE, PrivateCAEngine

NAME = "pca-moto"
REGION = "us-east-1"
# "validity": the leaf's notAfter is moto's 365 days, not the request's.
# "pkix_profile": the leaf has only a SAN (no key usage, EKU, AKI), so no PKIX lint passes.
EMULATOR_GAPS = frozenset({"validity", "pkix_profile"})
CA_SUBJECT = {"Organization": "certplane", "CommonName": "certplane PCA (moto)"}


def ca_builder(
    subject: x509.Name,
    public_key: Any,
    issuer: x509.Name,
    issuer_public_key: Any,
    lifetime: datetime.timedelta,
    path_length: int | None,
) -> x509.CertificateBuilder:
    """An unsigned CA certificate shaped like certplane's own (pkilint-clean)."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    return ca_certificate_builder(
        subject,
        public_key,
        issuer,
        issuer_public_key,
        now - CA_BACKDATE,
        now + lifetime,
        path_length,
    )


def create_moto_ca(
    client: Any,
    usage_mode: str = GENERAL_PURPOSE,
    key_algorithm: str = "RSA_2048",
    signing_algorithm: str = "SHA512WITHRSA",
) -> str:
    """Create, sign (under a fresh P-256 test root) and activate a subordinate CA; its ARN.

    Activation is what AWS does too: GetCertificateAuthorityCsr, sign it outside, then
    ImportCertificateAuthorityCertificate with the parent chain.
    """
    arn = client.create_certificate_authority(
        CertificateAuthorityConfiguration={
            "KeyAlgorithm": key_algorithm,
            "SigningAlgorithm": signing_algorithm,
            "Subject": CA_SUBJECT,
        },
        CertificateAuthorityType="SUBORDINATE",
        UsageMode=usage_mode,
    )["CertificateAuthorityArn"]
    csr = x509.load_pem_x509_csr(
        client.get_certificate_authority_csr(CertificateAuthorityArn=arn)["Csr"].encode()
    )
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certplane"),
            x509.NameAttribute(NameOID.COMMON_NAME, "certplane PCA test root"),
        ]
    )
    root = ca_builder(
        root_name,
        root_key.public_key(),
        root_name,
        root_key.public_key(),
        datetime.timedelta(days=3650),
        None,
    ).sign(root_key, hashes.SHA256())
    issuing = ca_builder(
        csr.subject,
        csr.public_key(),
        root_name,
        root_key.public_key(),
        datetime.timedelta(days=1825),
        0,
    ).sign(root_key, hashes.SHA256())
    client.import_certificate_authority_certificate(
        CertificateAuthorityArn=arn,
        Certificate=issuing.public_bytes(serialization.Encoding.PEM),
        CertificateChain=root.public_bytes(serialization.Encoding.PEM),
    )
    account = arn.split(":")[4]
    # moto drops CreateCertificateAuthority's UsageMode; set what AWS would report.
    acmpca_backends[account][REGION].certificate_authorities[arn].usage_mode = usage_mode
    return arn


def make_engine(tmp_path: Path) -> PrivateCAEngine:
    arn = create_moto_ca(boto3.client("acm-pca", region_name=REGION))
    return PrivateCAEngine(
        "contract-pca",
        ca_arn=arn,
        mode=GENERAL_PURPOSE,
        verify_content=False,  # moto ignores ApiPassthrough and Validity (see above)
        poll_interval_seconds=0,
    )
