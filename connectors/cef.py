"""CEF over syslog on TCP with TLS (RFC 5425): one frame per event, a batch per connection.

Each event is an RFC 5424 syslog message whose MSG is an ArcSight CEF:0 record:
`<PRI>1 TIMESTAMP HOSTNAME certplane - MSGID - CEF:0|Vendor|Product|Version|SignatureID|Name|
Severity|ext`, framed with RFC 5425 octet counting (`MSG-LEN SP SYSLOG-MSG`, MSG-LEN the decimal
byte count, no leading zeros). Header fields escape `\\` and `|` (newlines become spaces);
extension values escape `\\` and `=` and turn CR/LF into `\\r`/`\\n`.
Signature id: `certificate.issued` etc.; severity 0-10: issued/renewed/CRL 3, expiring 5,
revoked 6 (keyCompromise 9), expired and issuance failed 7, CA unavailable 8.
Extension: rt (epoch ms), externalId (event id: receivers dedupe on it), cat (detail type), msg,
outcome, reason, cs1 serialNumber, cs2 fingerprintSha256, cs3 tenant, cs4 subject, cs5 profile,
cs6 certificateId (each with its csNLabel), flexDate1 notAfter (epoch ms), dvchost (device id).

`url` is `tls://host:port` (6514 by default). The server certificate is verified against the
system trust store, or `ca_file`; a client certificate for mutual TLS is `cert_file` /
`key_file`. TLS syslog has no application acknowledgement: a batch counts as delivered once
written and the connection shut down (close_notify); connection and TLS failures retry, and a bad
certificate or hostname is permanent (it will not fix itself).
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from certplane.events import DetailType
from connectors.base import CertplaneEvent, PermanentDelivery, RetryableDelivery, event_type_slug
from connectors.slack import summary

DEFAULT_PORT = 6514
FACILITY = 10  # security/authorization (authpriv)
SEVERITY = {
    DetailType.ISSUED: 3,
    DetailType.RENEWED: 3,
    DetailType.CRL_PUBLISHED: 3,
    DetailType.EXPIRING: 5,
    DetailType.REVOKED: 6,
    DetailType.EXPIRED: 7,
    DetailType.ISSUANCE_FAILED: 7,
    DetailType.CA_UNAVAILABLE: 8,
}


def escape_header(value: str) -> str:
    """CEF header field: backslash and pipe escaped; no line breaks allowed."""
    value = value.replace("\\", "\\\\").replace("|", "\\|")
    return value.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def escape_extension(value: str) -> str:
    """CEF extension value: backslash and equals escaped, CR/LF as \\r / \\n."""
    value = value.replace("\\", "\\\\").replace("=", "\\=")
    return value.replace("\r", "\\r").replace("\n", "\\n")


def _ms(iso: str) -> int:
    return int(datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def cef_severity(event: CertplaneEvent) -> int:
    if (event.detail.get("revocation") or {}).get("reason") == "keyCompromise":
        return 9
    return SEVERITY.get(event.detail_type, 5)


def extension(event: CertplaneEvent) -> list[tuple[str, str]]:
    detail = event.detail
    certificate: Mapping[str, Any] = event.certificate or {}
    pairs = [
        ("rt", str(_ms(event.occurred_at))),
        ("externalId", event.event_id),
        ("cat", event.detail_type.value),
        ("msg", summary(event)),
    ]
    failed = event.detail_type in (DetailType.ISSUANCE_FAILED, DetailType.CA_UNAVAILABLE)
    pairs.append(("outcome", "failure" if failed else "success"))
    if "revocation" in detail:
        pairs.append(("reason", str(detail["revocation"]["reason"])))
    elif "failure" in detail:
        pairs.append(("reason", f"{detail['failure']['code']}: {detail['failure']['message']}"))
    elif "error" in detail:
        pairs.append(("reason", str(detail["error"])))
    slots = [
        ("serialNumber", certificate.get("serial")),
        ("fingerprintSha256", (certificate.get("fingerprints") or {}).get("sha256")),
        ("tenant", event.tenant),
        ("subject", certificate.get("subject")),
        ("profile", certificate.get("profile") or (detail.get("request") or {}).get("profile")),
        ("certificateId", certificate.get("certificateId")),
    ]
    for number, (label, value) in enumerate(slots, start=1):
        if value:
            pairs += [(f"cs{number}Label", label), (f"cs{number}", str(value))]
    if certificate.get("notAfter"):
        pairs += [("flexDate1Label", "notAfter"), ("flexDate1", str(_ms(certificate["notAfter"])))]
    device = certificate.get("deviceId") or (detail.get("request") or {}).get("deviceId")
    if device:
        pairs.append(("dvchost", str(device)))
    return pairs


def cef_record(event: CertplaneEvent, *, vendor: str, product: str, version: str) -> str:
    header = [
        "CEF:0",
        escape_header(vendor),
        escape_header(product),
        escape_header(version),
        escape_header(event_type_slug(event.detail_type)),
        escape_header(event.detail_type.value),
        str(cef_severity(event)),
    ]
    ext = " ".join(f"{key}={escape_extension(value)}" for key, value in extension(event))
    return "|".join(header) + "|" + ext


def syslog_message(event: CertplaneEvent, cef: str, hostname: str) -> bytes:
    """RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG."""
    severity = cef_severity(event)
    syslog_severity = 2 if severity >= 9 else 3 if severity >= 7 else 4 if severity >= 4 else 6
    pri = FACILITY * 8 + syslog_severity
    msgid = event_type_slug(event.detail_type)[:32]
    return f"<{pri}>1 {event.occurred_at} {hostname} certplane - {msgid} - {cef}".encode()


def frame(message: bytes) -> bytes:
    """RFC 5425 octet counting: MSG-LEN SP SYSLOG-MSG."""
    return str(len(message)).encode() + b" " + message


class CefSyslogConnector:
    """Sends CEF records to a syslog receiver over TLS; a batch shares one connection."""

    type_name = "cef"

    def __init__(
        self,
        url: str | None,
        secret: str | None = None,
        *,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        server_name: str | None = None,
        hostname: str | None = None,
        vendor: str = "certplane",
        product: str = "certplane",
        product_version: str = "1",
        timeout: float = 10.0,
    ) -> None:
        parsed = urlparse(url or "")
        if parsed.scheme not in ("tls", "syslog+tls") or not parsed.hostname:
            raise ValueError("a cef connector needs a tls://host[:port] url (RFC 5425)")
        self._host = parsed.hostname
        self._port = parsed.port or DEFAULT_PORT
        self._server_name = server_name or self._host
        self._context = ssl.create_default_context(cafile=ca_file)
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert_file:
            self._context.load_cert_chain(cert_file, key_file)
        self._hostname = (hostname or socket.gethostname() or "-").split()[0][:255]
        self._shape = {"vendor": vendor, "product": product, "version": product_version}
        self._timeout = timeout

    def deliver(self, event: CertplaneEvent) -> None:
        self.deliver_many([event])

    def deliver_many(self, events: Sequence[CertplaneEvent]) -> None:
        payload = b"".join(
            frame(syslog_message(e, cef_record(e, **self._shape), self._hostname)) for e in events
        )
        try:
            with (
                socket.create_connection((self._host, self._port), timeout=self._timeout) as raw,
                self._context.wrap_socket(raw, server_hostname=self._server_name) as tls,
            ):
                tls.sendall(payload)
                _close_notify(tls)
        except ssl.SSLCertVerificationError as error:
            raise PermanentDelivery(
                f"cef: TLS verification failed ({error.verify_message})"
            ) from error
        except (OSError, ssl.SSLError) as error:
            raise RetryableDelivery(f"cef: cannot deliver ({type(error).__name__})") from error


def _close_notify(tls: ssl.SSLSocket) -> None:
    """Say goodbye (close_notify) and read the receiver's last records (TLS 1.3 session
    tickets): closing with unread bytes would reset the connection and could cost the
    receiver data it has not read yet. A receiver that just hangs up is fine too."""
    with contextlib.suppress(OSError, ssl.SSLError):
        tls.unwrap()
