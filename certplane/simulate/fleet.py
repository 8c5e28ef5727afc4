"""The simulated fleet: which devices exist, which door each uses, and what happens to it.

Plans are deterministic (no random choice), so a run of N devices always renews and revokes
the same ones: within each protocol, a fraction f selects device j when ⌊(j+1)·f⌋ > ⌊j·f⌋,
which spreads the selected devices evenly over the run. Revocations are chosen from the other
end of the list, so with small fleets renewals and revocations fall on different devices.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec


class Protocol(StrEnum):
    EST = "est"
    CERTIFIER = "certifier"


class Operation(StrEnum):
    ENROLL = "enroll"
    RENEW = "renew"
    REVOKE = "revoke"


PROTOCOL_CHOICES = ("est", "certifier", "mixed")


def evenly_selected(index: int, fraction: float) -> bool:
    """Whether item `index` is among an evenly spread `fraction` of the items."""
    return math.floor((index + 1) * fraction) > math.floor(index * fraction)


@dataclass(frozen=True)
class DevicePlan:
    index: int
    name: str
    protocol: Protocol
    renew: bool
    revoke: bool


@dataclass
class Device:
    """One device while it runs: its key and the certificate it holds now."""

    plan: DevicePlan
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    certificate: x509.Certificate | None = None


def run_prefix() -> str:
    """A short random name part, so repeated runs against one server name new devices."""
    return f"sim-{secrets.token_hex(3)}"


def plan_fleet(
    devices: int,
    protocol: str,
    renew_fraction: float,
    revoke_fraction: float,
    prefix: str,
) -> Iterator[DevicePlan]:
    """Device plans in start order; `mixed` alternates EST and the Certifier API."""
    if protocol not in PROTOCOL_CHOICES:
        raise ValueError(f"protocol must be one of {PROTOCOL_CHOICES}")
    if not (0 <= renew_fraction <= 1 and 0 <= revoke_fraction <= 1):
        raise ValueError("fractions are between 0 and 1")
    protocols = [Protocol.EST, Protocol.CERTIFIER] if protocol == "mixed" else [Protocol(protocol)]
    per_protocol = {p: math.ceil((devices - i) / len(protocols)) for i, p in enumerate(protocols)}
    for index in range(devices):
        chosen = protocols[index % len(protocols)]
        local = index // len(protocols)  # the device's position among its protocol's devices
        yield DevicePlan(
            index=index,
            name=f"{prefix}-{index:06d}",
            protocol=chosen,
            renew=evenly_selected(local, renew_fraction),
            revoke=evenly_selected(per_protocol[chosen] - 1 - local, revoke_fraction),
        )
