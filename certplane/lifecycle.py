"""The lifecycle service: issue, renew, revoke and look up certificates for one tenant at a time.

Order of every issuance (DESIGN.md §2): policy → PENDING record → sign → ISSUED record → event.
Every failure after the policy check leaves a FAILED record; every failure puts exactly one
"Certificate Issuance Failed" event; no certificate is signed without a record.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from certbridge import (
    EngineError,
    EngineRouter,
    PermanentEngineError,
    SigningRequest,
    TransientEngineError,
)
from certbridge.interface import IssuedCertificate, crl_signer, revoke_at_ca
from certplane.config import Profile, Settings
from certplane.errors import CertplaneError, Conflict, RequestRejected, ServiceUnavailable
from certplane.events import DetailType, EventPublisher, build_detail, certificate_summary
from certplane.idempotency import RunOnce
from certplane.inventory import CertificateRecord, Inventory
from certplane.metrics import CERTIFICATES_ISSUED, MetricsSink, NoMetrics
from certplane.model import (
    REVOCATION_REASONS,
    CertificateStatus,
    certificate_id,
    iso_timestamp,
    new_serial_number,
    sha256_fingerprint,
)
from certplane.policy import (
    CertificatePlan,
    csr_public_key,
    describe_san,
    load_csr,
    parse_san,
    parse_subject,
    plan_certificate,
    requested_sans,
)
from certplane.status.state import mark_dirty
from certplane.status.urls import crl_shard, status_extensions, status_urls

if TYPE_CHECKING:
    from certplane.idempotency import StoreSource

logger = logging.getLogger(__name__)
MAX_DEVICE_ID_LENGTH = 128
REVOCABLE = {CertificateStatus.ISSUED.value, CertificateStatus.SUPERSEDED.value}


@dataclass(frozen=True)
class IssueRequest:
    """A request for a new certificate, built by a front door after authentication."""

    tenant: str
    profile: str
    csr: str
    requester: str
    validity_days: int | None = None
    device_id: str | None = None
    owner: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    # A front door that names the device itself (the Certifier API's nodeAddress, whose CSR has
    # an empty subject) replaces what the CSR asks for; policy still checks the result, and the
    # CSR still proves possession of the key. RFC 4514 text and `describe_san` strings keep the
    # request JSON-safe for the idempotency store.
    subject_override: str | None = None
    san_override: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RenewRequest:
    """Renew `reference` (certificate id or serial) for the same key, or for the CSR's key."""

    tenant: str
    reference: str
    requester: str
    csr: str | None = None
    validity_days: int | None = None
    idempotency_key: str | None = None


def effective_status(record: CertificateRecord, now: datetime.datetime | None = None) -> str:
    """ISSUED certificates past notAfter are EXPIRED even before a sweep rewrites them."""
    now = now or datetime.datetime.now(datetime.UTC)
    if (
        record.status == CertificateStatus.ISSUED.value
        and record.not_after
        and (record.not_after <= now)
    ):
        return CertificateStatus.EXPIRED.value
    return record.status


def _pem(certificates: tuple[x509.Certificate, ...]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def _default_device_id(subject: x509.Name, sans: tuple[x509.GeneralName, ...], serial: int) -> str:
    common_names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common_names:
        return str(common_names[0].value)
    if sans:
        return str(sans[0].value)
    return f"serial-{serial:x}"


class Lifecycle:
    """Issue, renew and revoke through policy, inventory, CertBridge and the event bus."""

    def __init__(
        self,
        settings: Settings,
        inventory: Inventory,
        router: EngineRouter,
        publisher: EventPublisher,
        idempotency_store: StoreSource | None = None,
        metrics: MetricsSink | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else NoMetrics()
        self.inventory = inventory
        self.router = router
        self.publisher = publisher
        self._engine_types = {ca.id: ca.engine for ca in settings.cas}
        self._status_urls = status_urls(settings)
        self._run_once = (
            None
            if idempotency_store is None
            else RunOnce(self._execute, idempotency_store, settings.idempotency_ttl_seconds)
        )

    def bind_lambda_context(self, context: Any) -> None:
        """Let an in-progress idempotency record expire with the invocation that wrote it."""
        if self._run_once is not None:
            self._run_once.bind_lambda_context(context)

    # -- public operations ----------------------------------------------------------------

    def issue(self, request: IssueRequest) -> CertificateRecord:
        return self._dispatch("issue", asdict(request))

    def renew(self, request: RenewRequest) -> CertificateRecord:
        return self._dispatch("renew", asdict(request))

    def revoke(self, tenant: str, reference: str, reason: str, requester: str) -> CertificateRecord:
        flag = REVOCATION_REASONS.get(reason)
        if flag is None:
            raise RequestRejected(
                "invalid_reason",
                f"unknown revocation reason {reason!r}; use one of {sorted(REVOCATION_REASONS)}",
            )
        record = self.inventory.find(tenant, reference)
        if record.status not in REVOCABLE:
            raise Conflict(
                "invalid_state", f"certificate {record.serial} is {record.status}, not revocable"
            )
        revoked_at = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        try:
            revoke_at_ca(
                self.router.engine(record.ca_id),
                x509.load_pem_x509_certificate((record.certificate_pem or "").encode()),
                flag,
                revoked_at,
            )
        except TransientEngineError as error:
            raise ServiceUnavailable("ca_unavailable", f"CA {record.ca_id}: {error}") from None
        except PermanentEngineError as error:
            raise Conflict(
                "ca_refused", f"CA {record.ca_id} refused the revocation: {error}"
            ) from None
        record = self.inventory.mark_revoked(record, flag.value, revoked_at)
        self._crl_due(record)
        self._publish(
            DetailType.REVOKED,
            tenant,
            requester,
            certificate=certificate_summary(record),
            revocation={
                "reason": flag.value,
                "revokedAt": iso_timestamp(revoked_at),
            },
        )
        return record

    def _crl_due(self, record: CertificateRecord) -> None:
        """The revoked certificate's CRL shard is due (debounced: the scheduler publishes)."""
        if crl_signer(self.router.engine(record.ca_id)) is None:
            return
        shard = crl_shard(int(record.serial, 16), self.settings.crl_shards(record.ca_id))
        try:
            mark_dirty(record.ca_id, shard)
        except Exception:  # the revocation stands; the CRL follows at its next refresh
            logger.exception("could not mark CRL shard %s/%s due", record.ca_id, shard)

    def _with_status(
        self, profile: Profile, engine_id: str, request: SigningRequest
    ) -> SigningRequest:
        """Add CDP and AIA naming the engine that signs: only CAs whose status we publish."""
        if crl_signer(self.router.engine(engine_id)) is None:
            return request
        extensions = status_extensions(
            profile,
            self._status_urls,
            engine_id,
            request.serial_number,
            self.settings.crl_shards(engine_id),
        )
        if not extensions:
            return request
        return dataclasses.replace(request, extensions=request.extensions + extensions)

    def get(self, tenant: str, reference: str) -> CertificateRecord:
        return self.inventory.find(tenant, reference)

    def profiles(self, tenant: str) -> list[Profile]:
        return self.settings.tenant_profiles(tenant)

    # -- idempotency ----------------------------------------------------------------------

    def _dispatch(self, operation: str, request: dict[str, Any]) -> CertificateRecord:
        payload = {"operation": operation, "reference": None, "profile": None, **request}
        if not payload.get("idempotency_key") or self._run_once is None:
            result = self._execute(payload)
        else:
            result = self._run_once(payload)
        record = self.inventory.get(result["tenant"], int(result["serial"], 16))
        if record is None:  # pragma: no cover - the record was written before the result
            raise CertplaneError("inventory_inconsistent", "the issued record is missing")
        return record

    def _execute(self, request: dict[str, Any]) -> dict[str, Any]:
        """Run one issue or renew; returns a JSON-safe reference to the resulting record."""
        if request["operation"] == "issue":
            record = self._issue(IssueRequest(**_fields(IssueRequest, request)))
        else:
            record = self._renew(RenewRequest(**_fields(RenewRequest, request)))
        return {"tenant": record.tenant, "serial": record.serial}

    # -- issuance -------------------------------------------------------------------------

    def _profile(self, tenant: str, name: str) -> Profile:
        profile = self.settings.tenant_profile(tenant, name)
        if profile is None:
            raise RequestRejected(
                "unknown_profile", f"profile {name!r} does not exist for tenant {tenant}"
            )
        return profile

    def _ca_not_after(self, profile: Profile) -> datetime.datetime:
        """The earliest notAfter of the eligible CAs, so failover never outlives its issuer."""
        try:
            eligible = self.router.eligible(profile.route, profile.signature_algorithm)
            if not eligible:
                raise ServiceUnavailable(
                    "ca_unavailable", f"no CA of profile {profile.name}'s route is available"
                )
            return min(
                self.router.engine(engine_id).capabilities().ca_not_after for engine_id in eligible
            )
        except EngineError as error:
            raise ServiceUnavailable("ca_unavailable", str(error)) from None

    def _issue(self, request: IssueRequest) -> CertificateRecord:
        failure_context = {
            "profile": request.profile,
            "operation": "issue",
            "deviceId": request.device_id,
        }
        with self._failure_events(request.tenant, request.requester, failure_context):
            profile = self._profile(request.tenant, request.profile)
            csr = load_csr(request.csr)
            subject = (
                csr.subject
                if request.subject_override is None
                else parse_subject(request.subject_override)
            )
            names = (
                requested_sans(csr)
                if request.san_override is None
                else [parse_san(name) for name in request.san_override]
            )
            plan = plan_certificate(
                profile,
                subject=subject,
                requested_sans=names,
                public_key=csr_public_key(csr),
                ca_not_after=self._ca_not_after(profile),
                requested_days=request.validity_days,
            )
            serial = new_serial_number(profile.serial_bytes)
            device_id = request.device_id or _default_device_id(plan.subject, plan.sans, serial)
            if len(device_id) > MAX_DEVICE_ID_LENGTH:
                raise RequestRejected("invalid_device_id", "the device id is too long")
            record = self._record_intent(
                request.tenant,
                request.requester,
                profile,
                plan,
                serial=serial,
                device_id=device_id,
                owner=request.owner,
                tags=request.tags,
            )
        issued_record = self._sign_and_record(
            record,
            profile,
            plan,
            failure_context,
            csr_der=csr.public_bytes(serialization.Encoding.DER),
        )
        self._publish(
            DetailType.ISSUED,
            request.tenant,
            request.requester,
            certificate=certificate_summary(issued_record),
        )
        self.metrics.add_metric(name=CERTIFICATES_ISSUED, unit=MetricUnit.Count, value=1)
        return issued_record

    def _renew(self, request: RenewRequest) -> CertificateRecord:
        previous = self.inventory.find(request.tenant, request.reference)
        failure_context = {
            "profile": previous.profile,
            "operation": "renew",
            "deviceId": previous.device_id,
            "renewing": previous.serial,
        }
        with self._failure_events(request.tenant, request.requester, failure_context):
            if effective_status(previous) != CertificateStatus.ISSUED.value:
                raise Conflict(
                    "invalid_state",
                    f"certificate {previous.serial} is {effective_status(previous)}; "
                    "only a live ISSUED certificate can be renewed",
                )
            profile = self._profile(request.tenant, previous.profile)
            old = x509.load_pem_x509_certificate((previous.certificate_pem or "").encode())
            csr_der: bytes | None = None  # a same-key renewal has no CSR to pass through
            if request.csr:
                csr = load_csr(request.csr)
                subject, names, key = csr.subject, requested_sans(csr), csr_public_key(csr)
                csr_der = csr.public_bytes(serialization.Encoding.DER)
            else:
                subject, names, key = old.subject, requested_sans(old), old.public_key()
            plan = plan_certificate(
                profile,
                subject=subject,
                requested_sans=names,
                public_key=key,
                ca_not_after=self._ca_not_after(profile),
                requested_days=request.validity_days,
            )
            record = self._record_intent(
                request.tenant,
                request.requester,
                profile,
                plan,
                serial=new_serial_number(profile.serial_bytes),
                device_id=previous.device_id,
                owner=previous.owner,
                tags=previous.tag_dict,
                renewed_from=previous.pk,
            )
        renewed = self._sign_and_record(record, profile, plan, failure_context, previous, csr_der)
        self._publish(
            DetailType.RENEWED,
            request.tenant,
            request.requester,
            certificate=certificate_summary(renewed),
            previousCertificate=certificate_summary(previous),
            sameKey=request.csr is None,
        )
        self.metrics.add_metric(name=CERTIFICATES_ISSUED, unit=MetricUnit.Count, value=1)
        return renewed

    def _record_intent(
        self,
        tenant: str,
        requester: str,
        profile: Profile,
        plan: CertificatePlan,
        *,
        serial: int,
        device_id: str,
        owner: str | None,
        tags: dict[str, str],
        renewed_from: str | None = None,
    ) -> CertificateRecord:
        """The PENDING record written before anything is signed (DESIGN.md §2, step 3)."""
        return self.inventory.create_pending(
            tenant=tenant,
            serial=serial,
            profile=profile.name,
            ca_id=profile.route[0],
            route=list(profile.route),
            device_id=device_id,
            requester=requester,
            key_algorithm=plan.key_algorithm,
            subject=plan.subject.rfc4514_string(),
            sans=[describe_san(name) for name in plan.sans],
            owner=owner,
            tags=tags,
            renewed_from=renewed_from,
        )

    def _sign_and_record(
        self,
        record: CertificateRecord,
        profile: Profile,
        plan: CertificatePlan,
        failure_context: dict[str, Any],
        previous: CertificateRecord | None = None,
        csr_der: bytes | None = None,
    ) -> CertificateRecord:
        """Sign through the route and move PENDING → ISSUED; on failure, PENDING → FAILED."""
        signing_request = SigningRequest(
            serial_number=int(record.serial, 16),
            public_key=plan.public_key,
            subject=plan.subject,
            not_before=plan.not_before,
            not_after=plan.not_after,
            extensions=plan.extensions,
            csr_der=csr_der,
        )
        stage = "signing"
        try:
            engine_id, issued = self.router.issue(
                profile.route,
                signing_request,
                profile.signature_algorithm,
                on_unavailable=lambda ca, error: self._publish(
                    DetailType.CA_UNAVAILABLE,
                    record.tenant,
                    record.requester,
                    ca=ca,
                    engine=self._engine_types.get(ca, "unknown"),
                    error=str(error)[:1000],
                ),
                prepare=lambda engine_id, request: self._with_status(profile, engine_id, request),
            )
            issued_serial = issued.certificate.serial_number
            if issued_serial != signing_request.serial_number and not (
                self.router.engine(engine_id).capabilities().assigns_serial_numbers
            ):
                raise PermanentEngineError(
                    f"CA engine {engine_id} issued serial {issued_serial:x} instead of "
                    f"the requested {record.serial}"
                )
            stage = "recording"
            return self.inventory.record_issued(
                record,
                issued_serial=issued_serial,
                previous=previous,
                **self._issued_fields(engine_id, issued),
            )
        except Exception as error:
            code = _failure_code(error)
            message = error.message if isinstance(error, CertplaneError) else str(error)
            logger.warning("issuance of %s failed at %s: %s", record.pk, stage, message)
            failed = self.inventory.mark_failed(record, code, message)
            self._publish(
                DetailType.ISSUANCE_FAILED,
                record.tenant,
                record.requester,
                failure={"code": code, "message": message, "stage": stage},
                request=failure_context,
                certificate=certificate_summary(failed),
            )
            if isinstance(error, CertplaneError):
                raise
            if isinstance(error, PermanentEngineError):
                raise RequestRejected(code, f"the CA refused the request: {error}") from None
            if isinstance(error, EngineError):
                raise ServiceUnavailable(code, f"the CA could not sign: {error}") from None
            raise

    @staticmethod
    def _issued_fields(engine_id: str, issued: IssuedCertificate) -> dict[str, Any]:
        certificate = issued.certificate
        return {
            "ca_id": engine_id,
            "issuer": certificate.issuer.rfc4514_string(),
            "subject": certificate.subject.rfc4514_string(),
            "sans": [describe_san(name) for name in requested_sans(certificate)],
            "not_before": certificate.not_valid_before_utc,
            "not_after": certificate.not_valid_after_utc,
            "certificate_id": certificate_id(certificate),
            "sha256_fingerprint": sha256_fingerprint(certificate),
            "certificate_pem": _pem((certificate,)),
            "chain_pem": _pem(issued.chain),
        }

    # -- events ---------------------------------------------------------------------------

    @contextmanager
    def _failure_events(self, tenant: str, actor: str, context: dict[str, Any]) -> Iterator[None]:
        """A refusal before any record exists still becomes exactly one failure event."""
        try:
            yield
        except CertplaneError as error:
            stage = "policy" if isinstance(error, RequestRejected) else "request"
            self._publish(
                DetailType.ISSUANCE_FAILED,
                tenant,
                actor,
                failure={"code": error.code, "message": error.message, "stage": stage},
                request=context,
            )
            raise

    def _publish(self, detail_type: DetailType, tenant: str, actor: str, **body: Any) -> None:
        self.publisher.publish(detail_type, build_detail(tenant, actor, **body))


def _failure_code(error: Exception) -> str:
    if isinstance(error, CertplaneError):
        return error.code
    if isinstance(error, TransientEngineError):
        return "ca_unavailable"
    if isinstance(error, PermanentEngineError):
        return "ca_refused"
    return "signing_failed"


def _fields(kind: type, payload: dict[str, Any]) -> dict[str, Any]:
    names = kind.__dataclass_fields__
    return {name: value for name, value in payload.items() if name in names}
