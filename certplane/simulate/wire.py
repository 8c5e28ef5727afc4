"""libCertifier v2.2.1 on the wire: the fleet simulator's Certifier client, and the tests'.

It reproduces what the C client sends: headers (Accept, Content-Type with charset, Bearer,
a 16-character x-xpki-tracking-id, x-xpki-source), parson's pretty JSON with `/` escaped as
`\\/`, a DER CSR with an EMPTY subject and an extensionRequest carrying extendedKeyUsage, and
the X509 token: ECDSA-SHA256 over certificate DER ‖ timestamp ‖ nonce ‖ "X509".
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

ALLOWABLE_CHARACTERS = string.ascii_letters + string.digits
SOURCE = "libcertifier-opensource"


def random_value(length: int = 16) -> str:
    """util_generate_random_value: the client's nonces and tracking ids."""
    return "".join(secrets.choice(ALLOWABLE_CHARACTERS) for _ in range(length))


def pretty_json(document: dict[str, Any]) -> str:
    """json_serialize_to_string_pretty: 4-space indent, and parson escapes every `/`."""
    return json.dumps(document, indent=4).replace("/", "\\/")


def now_ms() -> int:
    return int(time.time() * 1000)


def libcertifier_csr(key: Any) -> bytes:
    """security_generate_csr: no subject, EKU from `libcertifier.ext.key.usage`, SHA-256."""
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH])
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(eku, critical=True)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def x509_token(
    certificate: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    *,
    timestamp_ms: int | None = None,
    nonce: str | None = None,
) -> str:
    """security_generate_x509_crt, then base64 as do_create_x509_crt does."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    timestamp = str(now_ms() if timestamp_ms is None else timestamp_ms)
    nonce = nonce or random_value()
    signature = key.sign(
        der + timestamp.encode() + nonce.encode() + b"X509", ec.ECDSA(hashes.SHA256())
    )
    token = {
        "tokenType": "X509",
        "certificate": b64(der),
        "timestamp": timestamp,
        "nonce": nonce,
        "signature": b64(signature),
    }
    return b64(pretty_json(token).encode())


def sat_token(token: str, *, timestamp_ms: int | None = None, nonce: str | None = None) -> str:
    """certifier_create_crt for a SAT: the timestamp is a JSON number here."""
    document = {
        "tokenType": "SAT",
        "token": token,
        "nonce": nonce or random_value(),
        "timestamp": now_ms() if timestamp_ms is None else timestamp_ms,
    }
    return b64(pretty_json(document).encode())


def headers(bearer: str | None, tracking_id: str | None = None) -> dict[str, str]:
    """The five headers certifierclient_request_x509_certificate sends."""
    sent = {
        "Accept": "application/json",
        "Content-Type": "application/json; charset=utf-8",
        "x-xpki-tracking-id": tracking_id or random_value(),
        "x-xpki-source": SOURCE,
    }
    if bearer is not None:
        sent["Authorization"] = f"Bearer {bearer}"
    return sent


def certificate_request(csr_der: bytes, **fields: Any) -> dict[str, Any]:
    """certifier_create_csr_post_data: csr, nodeAddress, profileName, productId, extras."""
    document: dict[str, Any] = {"csr": b64(csr_der)}
    document["nodeAddress"] = fields.pop("nodeAddress", "1Hm3Xz9")
    document["profileName"] = fields.pop("profileName", "XFN_Matter_OP_Class_3_ICA")
    document["productId"] = fields.pop("productId", "1101")
    document.update(fields)
    return document


def revoke_request(certificate_id: str) -> dict[str, str]:
    return {"revokeReason": "UNSPECIFIED", "certificateId": certificate_id}
