"""An EST (RFC 7030) device: simpleenroll with HTTP Basic or its factory seed as TLS client
certificate, simplereenroll with its current certificate as TLS client certificate."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from certplane.simulate.fleet import Device
from certplane.simulate.http import Http, RequestFailed
from certplane.simulate.target import Seed

PREFIX = "/.well-known/est"
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")


def _csr(device: Device) -> bytes:
    """A DER PKCS#10 request naming the device in its CN (what EST profiles expect)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device.plan.name)])
    request = (
        x509.CertificateSigningRequestBuilder().subject_name(name).sign(device.key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.DER)


def certs_only(body: bytes) -> list[x509.Certificate]:
    """A base64 certs-only PKCS#7 body (line breaks and stray bytes ignored, RFC 8951)."""
    try:
        return pkcs7.load_der_pkcs7_certificates(base64.b64decode(_NOT_BASE64.sub(b"", body)))
    except ValueError:
        raise RequestFailed("certificate: the reply is not a certs-only PKCS#7") from None


def _base(label: str | None) -> str:
    return f"{PREFIX}/{label}" if label else PREFIX


def est_cacerts(http: Http, label: str | None = None) -> list[x509.Certificate]:
    """GET cacerts (no credentials needed, RFC 7030 §4.1.1)."""
    return certs_only(http.request("GET", f"{_base(label)}/cacerts").body)


class EstClient:
    def __init__(
        self,
        http: Http,
        *,
        label: str | None = None,
        basic: tuple[str, str] | None = None,
        seed: Seed | None = None,
    ) -> None:
        if basic is None and seed is None:
            raise ValueError("EST enrollment needs Basic credentials or a seed certificate")
        self.http = http
        self.base = _base(label)
        self.basic = basic
        self.seed = seed

    def _post(
        self, operation: str, device: Device, cert: tuple[Path, Path] | None
    ) -> tuple[x509.Certificate, float]:
        reply = self.http.request(
            "POST",
            f"{self.base}/{operation}",
            data=base64.encodebytes(_csr(device)),
            headers={"Content-Type": "application/pkcs10"},
            auth=self.basic if cert is None else None,
            cert=cert,
        )
        certificates = certs_only(reply.body)
        if len(certificates) != 1:
            raise RequestFailed("certificate: expected exactly one certificate in the reply")
        return certificates[0], reply.seconds

    def enroll(self, device: Device) -> tuple[x509.Certificate, float]:
        seed = None if self.basic else self.seed
        cert = (seed.certificate_file, seed.key_file) if seed else None
        return self._post("simpleenroll", device, cert)

    def reenroll(self, device: Device, cert: tuple[Path, Path]) -> tuple[x509.Certificate, float]:
        """Same subject, same key; authenticated by the current certificate in TLS."""
        return self._post("simplereenroll", device, cert)
