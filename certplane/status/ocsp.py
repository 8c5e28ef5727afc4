"""The OCSP responder (RFC 6960, with the RFC 5019 lightweight profile's caching).

GET /ocsp/<base64 of the DER request> (standard or URL-safe alphabet, URL-encoded or not)
and POST /ocsp (application/ocsp-request). SHA-1 and SHA-256 CertIDs are matched against
each CA's issuerNameHash / issuerKeyHash; the status comes from the inventory's
by-issuer-serial index. Responses are signed by the CA's delegated responder certificate.

Bad input never becomes a 5xx: malformed, truncated or oversized requests answer
malformedRequest, an issuer we do not serve answers unauthorized, and anything unexpected
answers internalError — all with HTTP 200, as OCSP clients expect.

Pre-signed responses (requests without a nonce) are reused until half-way to their
nextUpdate. The cache key holds the record's revocation state, so a revocation — seen by any
instance through the inventory — never serves a stale "good".
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certbridge import EngineRouter
from certbridge.interface import crl_signer
from certplane.config import Settings
from certplane.inventory import CertificateRecord, Inventory
from certplane.model import REVOCATION_REASONS, CertificateStatus
from certplane.status.ocsp_signer import OcspSigners

logger = logging.getLogger(__name__)

OCSP_PATH = "/ocsp"
MAX_REQUEST_BYTES = 4096  # a single-certificate request is ~100 bytes; more is abuse
CONTENT_TYPE = "application/ocsp-response"
CACHE_ENTRIES = 10_000
GOOD_STATUSES = {
    CertificateStatus.ISSUED.value,
    CertificateStatus.SUPERSEDED.value,
    CertificateStatus.EXPIRED.value,
}
HASHES: dict[str, Callable[[bytes], bytes]] = {
    "sha1": lambda data: hashlib.sha1(data, usedforsecurity=False).digest(),
    "sha256": lambda data: hashlib.sha256(data).digest(),
}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class OcspHttpResponse:
    """What goes back over HTTP: always 200 with an OCSP response body."""

    body: bytes
    headers: dict[str, str]
    status: int = 200


@dataclass(frozen=True)
class _Cached:
    der: bytes
    this_update: datetime.datetime
    next_update: datetime.datetime


def _unsuccessful(status: ocsp.OCSPResponseStatus) -> OcspHttpResponse:
    der = ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(
        serialization.Encoding.DER
    )
    return OcspHttpResponse(der, {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-cache"})


def decode_get_path(path: str) -> bytes | None:
    """The DER request in a GET path (/ocsp/<base64>), or None when it is not base64."""
    encoded = unquote(path[len(OCSP_PATH) :].lstrip("/")).strip()
    if not encoded:
        return None
    encoded += "=" * (-len(encoded) % 4)
    try:
        data = encoded.encode("ascii")
    except UnicodeEncodeError:
        return None
    for alphabet in (None, b"-_"):
        try:
            return base64.b64decode(data, altchars=alphabet, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


class OcspResponder:
    """Answers OCSP requests for every CRL-signing CA from the inventory."""

    def __init__(
        self,
        settings: Settings,
        inventory: Inventory,
        router: EngineRouter,
        signers: OcspSigners,
        clock: Callable[[], datetime.datetime] = _now,
    ) -> None:
        self.settings = settings
        self.inventory = inventory
        self.router = router
        self.signers = signers
        self.clock = clock
        self._cache: OrderedDict[tuple[object, ...], _Cached] = OrderedDict()
        self._lock = threading.Lock()
        self._issuers: dict[tuple[str, bytes, bytes], str] | None = None

    # -- HTTP -----------------------------------------------------------------------------

    def handle_http(self, method: str, path: str, body: bytes) -> OcspHttpResponse:
        """One HTTP request to the responder; never raises."""
        try:
            if method == "GET":
                der = decode_get_path(path)
            elif method == "POST":
                der = body
            else:
                der = None
            if der is None:
                return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
            return self.respond(der)
        except Exception:
            logger.exception("OCSP request failed")
            return _unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)

    # -- OCSP -----------------------------------------------------------------------------

    def respond(self, der: bytes) -> OcspHttpResponse:
        if not der or len(der) > MAX_REQUEST_BYTES:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        try:
            request = ocsp.load_der_ocsp_request(der)
            algorithm = request.hash_algorithm
            name_hash, key_hash = request.issuer_name_hash, request.issuer_key_hash
            serial = request.serial_number
            nonce = self._nonce(request)
        except Exception:  # ValueError, UnsupportedAlgorithm, several requests, bad extensions
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if algorithm.name not in HASHES:
            return _unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        ca_id = self.issuers().get((algorithm.name, name_hash, key_hash))
        if ca_id is None:
            return _unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        record = self.inventory.get_by_issuer_serial(ca_id, serial)
        now = self.clock().replace(microsecond=0)
        cache_key = (ca_id, serial, algorithm.name, *self._state(record))
        if nonce is None:
            with self._lock:
                cached = self._cache.get(cache_key)
            if cached and now < cached.this_update + (cached.next_update - cached.this_update) / 2:
                return self._success(cached.der, cached.next_update, now)
        built = self._sign(ca_id, algorithm, name_hash, key_hash, serial, record, nonce, now)
        if nonce is None:
            with self._lock:
                self._cache[cache_key] = built
                self._cache.move_to_end(cache_key)
                while len(self._cache) > CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        return self._success(built.der, built.next_update, now)

    def invalidate(self, ca_id: str, serial: int) -> None:
        """Drop pre-signed responses of one certificate (this process, on revocation)."""
        with self._lock:
            for key in [k for k in self._cache if k[0] == ca_id and k[1] == serial]:
                del self._cache[key]

    @staticmethod
    def _nonce(request: ocsp.OCSPRequest) -> bytes | None:
        try:
            return request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            return None

    @staticmethod
    def _state(record: CertificateRecord | None) -> tuple[object, ...]:
        if record is None:
            return ("unknown",)
        return (record.status, record.revoked_at, record.revocation_reason)

    def issuers(self) -> dict[tuple[str, bytes, bytes], str]:
        """(hash, issuerNameHash, issuerKeyHash) → CA id, for SHA-1 and SHA-256 CertIDs."""
        if self._issuers is None:
            table: dict[tuple[str, bytes, bytes], str] = {}
            for ca in self.settings.cas:
                if ca.id not in self.router.engine_ids:
                    continue
                engine = self.router.engine(ca.id)
                if crl_signer(engine) is None:
                    continue
                issuing = engine.chain()[0]
                name = issuing.subject.public_bytes()
                key = issuing.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                # issuerKeyHash is over the BIT STRING value of the key, not the whole SPKI.
                key_bits = _subject_public_key_bits(key)
                for algorithm, digest in HASHES.items():
                    table[(algorithm, digest(name), digest(key_bits))] = ca.id
            self._issuers = table
        return self._issuers

    def _sign(
        self,
        ca_id: str,
        algorithm: hashes.HashAlgorithm,
        name_hash: bytes,
        key_hash: bytes,
        serial: int,
        record: CertificateRecord | None,
        nonce: bytes | None,
        now: datetime.datetime,
    ) -> _Cached:
        signer = self.signers.for_ca(ca_id)
        next_update = now + datetime.timedelta(hours=self.settings.status.ocsp_validity_hours)
        next_update = min(next_update, signer.certificate.not_valid_after_utc)
        revocation_time = revocation_reason = None
        if record is not None and record.status == CertificateStatus.REVOKED.value:
            status = ocsp.OCSPCertStatus.REVOKED
            revocation_time = record.revoked_at
            reason = record.revocation_reason or x509.ReasonFlags.unspecified.value
            if reason != x509.ReasonFlags.unspecified.value:
                revocation_reason = REVOCATION_REASONS.get(reason)
        elif record is not None and record.status in GOOD_STATUSES:
            status = ocsp.OCSPCertStatus.GOOD
        else:
            status = ocsp.OCSPCertStatus.UNKNOWN
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=name_hash,
                issuer_key_hash=key_hash,
                serial_number=serial,
                algorithm=algorithm,
                cert_status=status,
                this_update=now,
                next_update=next_update,
                revocation_time=revocation_time,
                revocation_reason=revocation_reason,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.certificate)
            .certificates([signer.certificate])
        )
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        response = builder.sign(signer.key, signer.digest)
        return _Cached(response.public_bytes(serialization.Encoding.DER), now, next_update)

    @staticmethod
    def _success(
        der: bytes, next_update: datetime.datetime, now: datetime.datetime
    ) -> OcspHttpResponse:
        max_age = max(0, int((next_update - now).total_seconds()))
        return OcspHttpResponse(
            der,
            {
                "Content-Type": CONTENT_TYPE,
                "Cache-Control": f"public, max-age={max_age}, no-transform, must-revalidate",
            },
        )


def _subject_public_key_bits(spki_der: bytes) -> bytes:
    """The subjectPublicKey BIT STRING contents (without the unused-bits octet) of an SPKI."""

    def read(data: bytes, offset: int) -> tuple[int, int, int]:
        tag = data[offset]
        length = data[offset + 1]
        offset += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(data[offset : offset + count], "big")
            offset += count
        return tag, offset, length

    _, body, _ = read(spki_der, 0)  # SEQUENCE
    _, algorithm_body, algorithm_length = read(spki_der, body)  # AlgorithmIdentifier
    tag, bits, bits_length = read(spki_der, algorithm_body + algorithm_length)
    if tag != 0x03:
        raise ValueError("not a SubjectPublicKeyInfo")
    return spki_der[bits + 1 : bits + bits_length]
