"""A libCertifier-shaped device on the xPKI Certifier API: enroll with an X509 token signed
by its factory seed, renew and revoke with tokens signed by its own certificate's key."""

from __future__ import annotations

import json
import warnings

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from certplane.simulate.checks import certificate_id
from certplane.simulate.fleet import Device
from certplane.simulate.http import Http, RequestFailed
from certplane.simulate.target import Seed
from certplane.simulate.wire import (
    certificate_request,
    headers,
    libcertifier_csr,
    pretty_json,
    revoke_request,
    x509_token,
)

PREFIX = "/v1/certifier"
CHAIN_LENGTH = 3
# libCertifier needs the leaf first, so the chain's SET OF is deliberately not in DER order;
# cryptography reads it as BER and warns about exactly that on every reply.
warnings.filterwarnings(
    "ignore", message="PKCS#7 certificates could not be parsed as DER", category=UserWarning
)


def _chain(body: bytes) -> x509.Certificate:
    """The leaf of a reply, after the checks libCertifier makes: 3 certificates, leaf first,
    and `certificateId` naming the leaf."""
    try:
        reply = json.loads(body)
        chain = pkcs7.load_pem_pkcs7_certificates(reply["certificateChain"].encode())
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RequestFailed("certificate: the reply has no readable certificateChain") from None
    if len(chain) != CHAIN_LENGTH:
        raise RequestFailed(f"certificate: the chain has {len(chain)} certificates, not 3")
    if reply.get("certificateId") != certificate_id(chain[0]):
        raise RequestFailed("certificate: certificateId does not name the leaf")
    return chain[0]


class CertifierClient:
    def __init__(self, http: Http, seed: Seed, profile: str | None = None) -> None:
        self.http = http
        self.seed = seed
        self.profile = profile

    def _post(self, path: str, document: dict, bearer: str) -> tuple[bytes, float]:
        reply = self.http.request(
            "POST",
            f"{PREFIX}{path}",
            data=pretty_json(document).encode(),
            headers=headers(bearer),
        )
        return reply.body, reply.seconds

    def _device_token(self, device: Device) -> str:
        assert device.certificate is not None
        return x509_token(device.certificate, device.key)

    def enroll(self, device: Device) -> tuple[x509.Certificate, float]:
        fields = {"nodeAddress": device.plan.name}
        if self.profile:
            fields["profileName"] = self.profile
        document = certificate_request(libcertifier_csr(device.key), **fields)
        body, seconds = self._post(
            "/certificate", document, x509_token(self.seed.certificate, self.seed.key)
        )
        return _chain(body), seconds

    def renew(self, device: Device) -> tuple[x509.Certificate, float]:
        """Same key: the server re-certifies the public key of the current certificate."""
        assert device.certificate is not None
        document = {"certificateId": certificate_id(device.certificate)}
        body, seconds = self._post("/renew", document, self._device_token(device))
        return _chain(body), seconds

    def revoke(self, device: Device) -> float:
        assert device.certificate is not None
        document = revoke_request(certificate_id(device.certificate))
        body, seconds = self._post("/revoke", document, self._device_token(device))
        try:
            status = json.loads(body).get("status")
        except (ValueError, AttributeError):
            status = None
        if status != "REVOKED":
            raise RequestFailed(f"revoke: the reply says {status!r}, not REVOKED")
        return seconds
