"""Sharded CRLs (RFC 5280 §5): bounded at any fleet size, regenerated when due.

Sharding math. A certificate's CRL shard is fixed at issuance: shard = serial % crl_shards
(serials are random, so shards fill evenly), and the certificate's CRL Distribution Point
names `/crl/<ca>/<shard>.crl`. Each shard CRL carries a critical Issuing Distribution Point
naming exactly that URL (onlyContainsUserCerts), so a relying party knows its scope. A shard
holds about revoked / crl_shards entries: 1.3B certificates with 1% revoked and 4096 shards
gives ~3,200 entries (~100 KB) per shard. A full CRL per CA (no IDP) is published too, for
small fleets; turn it off (`crl_full = false`) at scale.

Reading. The inventory's status index is write-sharded by serial % expiry_shards (S). The
serials of CRL shard k (of C) can only be in write shards w with w ≡ k (mod gcd(S, C)), so a
shard's regeneration Queries S / gcd(S, C) partitions per tenant and filters by serial % C —
choose C a multiple of S to read exactly one write shard per CRL shard. Never a Scan.

Due. A revocation bumps the shard's revision (`state.mark_dirty`); `publish_due` (run every
minute by certplane dev's background thread, by EventBridge Scheduler in AWS) regenerates
shards whose revision moved (many revocations coalesce into one CRL), shards within
`crl_refresh_before_hours` of nextUpdate, and shards holding an expired entry not yet shown
once after expiry. Such an entry is marked with that CRL's number (`crl_final_number`) and left
off every later CRL.
"""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certbridge import EngineRouter
from certbridge.interface import crl_signer
from certplane.config import Settings
from certplane.events import DetailType, EventPublisher, build_detail
from certplane.inventory import CertificateRecord, Inventory
from certplane.inventory import keys as inventory_keys
from certplane.metrics import CRL_PUBLISH_FAILURES, OLDEST_CRL_AGE, MetricsSink
from certplane.model import REVOCATION_REASONS, CertificateStatus
from certplane.status import state
from certplane.status.store import StatusStore
from certplane.status.urls import (
    StatusUrls,
    ca_certificate_key,
    crl_shard,
    full_key,
    shard_key,
)

logger = logging.getLogger(__name__)

ACTOR = "certplane-status"
# Caches (CloudFront, clients) may keep a CRL this long; a fresh revocation shows sooner.
CRL_MAX_AGE_SECONDS = 300
CA_CERTIFICATE_MAX_AGE_SECONDS = 86400
Shard = int | str  # a shard number, or state.FULL


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate as a CRL needs it."""

    pk: str
    serial: int
    revoked_at: datetime.datetime
    reason: str
    not_after: datetime.datetime | None
    final_number: int | None

    def listed(self, this_update: datetime.datetime) -> bool:
        """On this CRL: unexpired, or expired but not yet shown once after expiry."""
        expired = self.not_after is not None and self.not_after < this_update
        return not expired or self.final_number is None

    def shows_last_time(self, this_update: datetime.datetime) -> bool:
        return self.not_after is not None and self.not_after < this_update


@dataclass(frozen=True)
class PublishedCrl:
    ca_id: str
    shard: int | None
    number: int
    entries: int
    size_bytes: int
    url: str
    der: bytes


def crl_age_alarm_seconds(settings: Settings) -> int:
    """The CRL age past which publishing is late (the `OldestCrlAgeSeconds` alarm threshold).

    A healthy CRL is regenerated at age `crl_validity_hours - crl_refresh_before_hours`; the
    alarm fires halfway through that refresh margin, while every CRL is still valid.
    """
    status = settings.status
    return int((status.crl_validity_hours - status.crl_refresh_before_hours / 2) * 3600)


def gcd_write_shards(crl_shard_number: int, crl_shards: int, write_shards: int) -> list[int]:
    """The inventory write shards that can hold serials of one CRL shard (see module doc)."""
    common = math.gcd(crl_shards, write_shards)
    return [w for w in range(write_shards) if w % common == crl_shard_number % common]


class CrlPublisher:
    """Builds, signs (through the CA engine) and publishes each CA's CRLs."""

    def __init__(
        self,
        settings: Settings,
        inventory: Inventory,
        router: EngineRouter,
        events: EventPublisher,
        store: StatusStore,
        urls: StatusUrls | None,
        clock: Callable[[], datetime.datetime] = _now,
    ) -> None:
        self.settings = settings
        self.inventory = inventory
        self.router = router
        self.events = events
        self.store = store
        self.urls = urls
        self.clock = clock
        # thisUpdate of every CRL seen by the last `publish_due` (None: never published), and
        # the CAs it failed for: what `report` turns into metrics.
        self._this_updates: dict[tuple[str, Shard], datetime.datetime | None] = {}
        self.last_failures: list[str] = []

    # -- what there is --------------------------------------------------------------------

    def ca_ids(self) -> list[str]:
        """CAs whose engine signs CRLs (the others publish their own, or none)."""
        return [
            ca.id
            for ca in self.settings.cas
            if ca.id in self.router.engine_ids and crl_signer(self.router.engine(ca.id))
        ]

    def tenants_of(self, ca_id: str) -> list[str]:
        """Tenants with a profile routed to the CA: whose revocations its CRLs list."""
        return [
            tenant.id
            for tenant in self.settings.tenants
            if any(ca_id in profile.route for profile in self.settings.tenant_profiles(tenant.id))
        ]

    def shard_of(self, ca_id: str, serial: int) -> int:
        return crl_shard(serial, self.settings.crl_shards(ca_id))

    def mark_revoked(self, record: CertificateRecord) -> None:
        """Called on revocation: the certificate's shard (and the full CRL) become due."""
        state.mark_dirty(record.ca_id, self.shard_of(record.ca_id, int(record.serial, 16)))

    # -- publishing -----------------------------------------------------------------------

    def publish_due(self, force: bool = False) -> list[PublishedCrl]:
        """Regenerate every due CRL of every CRL-signing CA (the scheduled entry point)."""
        published: list[PublishedCrl] = []
        self._this_updates, self.last_failures = {}, []
        for ca_id in self.ca_ids():
            try:
                published.extend(self.publish_ca(ca_id, force=force))
            except Exception:  # one CA failing must not stop the others' CRLs
                logger.exception("publishing the CRLs of %s failed", ca_id)
                self.last_failures.append(ca_id)
        return published

    def oldest_crl_age_seconds(self) -> float:
        """Age of the oldest CRL the last `publish_due` saw (0 when there is none yet)."""
        now = self.clock()
        published = [when for when in self._this_updates.values() if when is not None]
        return max(((now - when).total_seconds() for when in published), default=0.0)

    def report(self, metrics: MetricsSink) -> None:
        """Record the last run: the oldest CRL's age, and how many CAs failed to publish."""
        metrics.add_metric(
            name=OLDEST_CRL_AGE, unit=MetricUnit.Seconds, value=self.oldest_crl_age_seconds()
        )
        metrics.add_metric(
            name=CRL_PUBLISH_FAILURES, unit=MetricUnit.Count, value=len(self.last_failures)
        )

    def publish_ca(self, ca_id: str, force: bool = False) -> list[PublishedCrl]:
        now = self.clock().replace(microsecond=0)
        shards = self.settings.crl_shards(ca_id)
        names: list[Shard] = list(range(shards))
        if self.settings.status.crl_full:
            names.append(state.FULL)
        states = state.load_states(ca_id, names)
        self._this_updates.update({(ca_id, n): item.this_update for n, item in states.items()})
        refresh = datetime.timedelta(hours=self.settings.status.crl_refresh_before_hours)
        due = {
            name
            for name, item in states.items()
            if force
            or int(item.revision or 0) > int(item.published_revision or 0)
            or item.next_update is None
            or item.next_update - now <= refresh
        }
        if not due:
            return []
        if self.settings.status.crl_full:
            # Everything is read for the full CRL anyway: shards holding an entry not yet
            # shown after expiry are published with it, so both show it exactly once.
            entries = self._load(ca_id, shards, range(shards))
            due |= {k for k, found in entries.items() if any(_unshown(e, now) for e in found)}
            due.add(state.FULL)
        else:
            entries = self._load(ca_id, shards, [k for k in due if isinstance(k, int)])
        # Revisions are read before the records, so revocations meanwhile stay due.
        covered = {name: int(states[name].revision or 0) for name in due}
        self._publish_ca_certificate(ca_id)
        published: list[PublishedCrl] = []
        final_marks: dict[str, int] = {}
        for name in sorted(due, key=lambda n: (isinstance(n, str), str(n))):
            if name == state.FULL:
                selected = [e for found in entries.values() for e in found]
            else:
                selected = entries.get(int(name), [])
            listed = [e for e in selected if e.listed(now)]
            crl = self._build(ca_id, name, listed, now)
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            der = crl.public_bytes(serialization.Encoding.DER)
            key = full_key(ca_id) if name == state.FULL else shard_key(ca_id, int(name))
            self.store.put(key, der, self._max_age(crl, now))
            state.record_published(
                states[name],
                covered[name],
                number,
                now,
                now + self._validity(),
                len(listed),
                len(der),
            )
            self._this_updates[(ca_id, name)] = now
            if name != state.FULL:
                for entry in listed:
                    if entry.shows_last_time(now) and entry.final_number is None:
                        final_marks[entry.pk] = number
            item = PublishedCrl(
                ca_id,
                None if name == state.FULL else int(name),
                number,
                len(listed),
                len(der),
                self.urls.url(key) if self.urls else key,
                der,
            )
            published.append(item)
            self._announce(item)
        self._mark_final(final_marks)
        return published

    def _validity(self) -> datetime.timedelta:
        return datetime.timedelta(hours=self.settings.status.crl_validity_hours)

    def _max_age(self, crl: x509.CertificateRevocationList, now: datetime.datetime) -> int:
        next_update = crl.next_update_utc or now
        return min(CRL_MAX_AGE_SECONDS, int((next_update - now).total_seconds()))

    def _build(
        self, ca_id: str, name: Shard, listed: list[RevokedEntry], now: datetime.datetime
    ) -> x509.CertificateRevocationList:
        signer = crl_signer(self.router.engine(ca_id))
        if signer is None:
            raise RuntimeError(f"CA {ca_id} cannot sign CRLs")
        number = state.next_crl_number(ca_id)
        entries = []
        for entry in listed:
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial)
                .revocation_date(entry.revoked_at)
            )
            # RFC 5280 §5.3.1: the reason code unspecified SHOULD be absent.
            if entry.reason != x509.ReasonFlags.unspecified.value:
                flag = REVOCATION_REASONS.get(entry.reason, x509.ReasonFlags.unspecified)
                revoked = revoked.add_extension(x509.CRLReason(flag), critical=False)
            entries.append(revoked.build())
        # One list for the builder: add_revoked_certificate copies the list on every call,
        # which made a 100k-entry shard take ~27 s instead of ~0.7 s (bench/status.py).
        builder = (
            x509.CertificateRevocationListBuilder(revoked_certificates=entries)
            .last_update(now)
            .next_update(now + self._validity())
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        if name != state.FULL and self.urls is not None:
            point = x509.UniformResourceIdentifier(self.urls.crl_shard(ca_id, int(name)))
            builder = builder.add_extension(
                x509.IssuingDistributionPoint(
                    full_name=[point],
                    relative_name=None,
                    only_contains_user_certs=True,
                    only_contains_ca_certs=False,
                    only_some_reasons=None,
                    indirect_crl=False,
                    only_contains_attribute_certs=False,
                ),
                critical=True,
            )
        return signer.sign_crl(builder)

    def _publish_ca_certificate(self, ca_id: str) -> None:
        """The issuing CA's certificate (DER) at the AIA caIssuers URL."""
        issuing = self.router.engine(ca_id).chain()[0]
        self.store.put(
            ca_certificate_key(ca_id),
            issuing.public_bytes(serialization.Encoding.DER),
            CA_CERTIFICATE_MAX_AGE_SECONDS,
        )

    def _announce(self, item: PublishedCrl) -> None:
        for tenant in self.tenants_of(item.ca_id):
            detail = build_detail(
                tenant,
                ACTOR,
                ca=item.ca_id,
                shard=item.shard,
                crlNumber=item.number,
                entries=item.entries,
                sizeBytes=item.size_bytes,
                url=item.url,
            )
            self.events.publish(DetailType.CRL_PUBLISHED, detail)

    # -- reading the inventory ------------------------------------------------------------

    def _load(
        self, ca_id: str, shards: int, wanted: Iterable[int]
    ) -> dict[int, list[RevokedEntry]]:
        """Revoked certificates of the wanted CRL shards, from the status index (Query only)."""
        wanted = set(wanted)
        found: dict[int, list[RevokedEntry]] = {k: [] for k in wanted}
        if not wanted:
            return found
        write_shards = sorted(
            {w for k in wanted for w in gcd_write_shards(k, shards, self.inventory.shards)}
        )
        for tenant in self.tenants_of(ca_id):
            record_keys = [
                inventory_keys.record_key(tenant, int(serial, 16))
                for serial in self.inventory.serials_by_status(
                    tenant, ca_id, CertificateStatus.REVOKED, write_shards
                )
                if crl_shard(int(serial, 16), shards) in wanted
            ]
            for record in CertificateRecord.batch_get(record_keys) if record_keys else ():
                if record.status != CertificateStatus.REVOKED.value or record.revoked_at is None:
                    continue
                serial = int(record.serial, 16)
                found[crl_shard(serial, shards)].append(
                    RevokedEntry(
                        pk=record.pk,
                        serial=serial,
                        revoked_at=record.revoked_at,
                        reason=record.revocation_reason or x509.ReasonFlags.unspecified.value,
                        not_after=record.not_after,
                        final_number=(
                            int(record.crl_final_number)
                            if record.crl_final_number is not None
                            else None
                        ),
                    )
                )
        for entries in found.values():
            entries.sort(key=lambda e: e.serial)
        return found

    def _mark_final(self, marks: dict[str, int]) -> None:
        for pk, number in marks.items():
            try:
                record = CertificateRecord.get(pk, consistent_read=True)
                record.update(actions=[CertificateRecord.crl_final_number.set(number)])
            except Exception:  # the entry is then shown once more: harmless
                logger.warning("could not mark %s as shown after expiry", pk)


def _unshown(entry: RevokedEntry, now: datetime.datetime) -> bool:
    return entry.shows_last_time(now) and entry.final_number is None
