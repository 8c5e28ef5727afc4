"""Profile policy: keys, proof of possession, subject and SAN rules, validity, extensions."""

from __future__ import annotations

import base64
import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certplane.config import Profile, Settings
from certplane.errors import RequestRejected
from certplane.policy import (
    CertificatePlan,
    csr_public_key,
    load_csr,
    plan_certificate,
    requested_sans,
)

NOW = datetime.datetime(2026, 12, 4, 12, 0, 0, tzinfo=datetime.UTC)
CA_NOT_AFTER = NOW + datetime.timedelta(days=3650)


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    return Settings.load().profiles_by_name


def plan(
    profile: Profile,
    csr_text: str | bytes,
    *,
    days: int | None = None,
    ca_not_after: datetime.datetime = CA_NOT_AFTER,
) -> CertificatePlan:
    csr = load_csr(csr_text)
    return plan_certificate(
        profile,
        subject=csr.subject,
        requested_sans=requested_sans(csr),
        public_key=csr_public_key(csr),
        ca_not_after=ca_not_after,
        requested_days=days,
        now=NOW,
    )


def rejected(code: str, call, *args, **kwargs) -> RequestRejected:
    with pytest.raises(RequestRejected) as caught:
        call(*args, **kwargs)
    assert caught.value.code == code, caught.value.message
    return caught.value


def extension(plan_: CertificatePlan, kind: type) -> x509.Extension:
    matches = [ext for ext in plan_.extensions if isinstance(ext.value, kind)]
    assert len(matches) == 1, f"expected one {kind.__name__}"
    return matches[0]


# -- keys --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name"),
    [("P-256", "P-256"), ("P-384", "P-384"), ("Ed25519", "Ed25519"), ("RSA-2048", "RSA-2048")],
)
@pytest.mark.parametrize("profile_name", ["device", "server"])
def test_allowed_keys_pass(profiles, csrs, kind, name, profile_name):
    common_name = "device-0001" if profile_name == "device" else "api.example.com"
    result = plan(profiles[profile_name], csrs.pem(kind, common_name))
    assert result.key_algorithm == name
    assert result.public_key == csrs.key(kind).public_key()


@pytest.mark.parametrize("kind", ["RSA-1024", "P-192"])
def test_weak_keys_are_refused(profiles, csrs, kind):
    error = rejected("unsupported_key", plan, profiles["device"], csrs.pem(kind))
    assert profiles["device"].name in error.message


def test_profile_without_rsa_refuses_rsa(profiles, csrs):
    profile = profiles["device"].model_copy(update={"key_algorithms": ["P-256"]})
    rejected("unsupported_key", plan, profile, csrs.pem("RSA-2048"))
    rejected("unsupported_key", plan, profile, csrs.pem("Ed25519"))
    assert plan(profile, csrs.pem("P-256")).key_algorithm == "P-256"


# -- proof of possession and parsing -----------------------------------------------------


def test_pem_and_der_both_load(csrs):
    csr = csrs.csr("P-256", "device-0001")
    assert load_csr(csr.public_bytes(serialization.Encoding.PEM).decode()) == csr
    assert load_csr(csr.public_bytes(serialization.Encoding.DER)) == csr


def test_base64_der_loads_with_line_breaks(csrs):
    """EST and the Certifier API send base64 DER, not PEM."""
    csr = csrs.csr("P-256", "device-0001")
    encoded = base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))
    assert b"\n" in encoded
    assert load_csr(encoded) == csr
    assert load_csr(encoded.decode().replace("\n", "\r\n")) == csr


@pytest.mark.parametrize("kind", ["P-256", "Ed25519", "RSA-2048"])
def test_tampered_signature_is_refused(csrs, kind):
    der = bytearray(csrs.csr(kind).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte belongs to the signature BIT STRING
    rejected("invalid_csr_signature", load_csr, bytes(der))


def test_tampered_subject_is_refused(csrs):
    der = csrs.csr("P-256", "device-0001").public_bytes(serialization.Encoding.DER)
    assert der.count(b"device-0001") == 1
    forged = der.replace(b"device-0001", b"device-0002")
    assert x509.load_der_x509_csr(forged).subject.rfc4514_string() == "CN=device-0002"
    rejected("invalid_csr_signature", load_csr, forged)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not a csr",
        b"\x30\x82\x01\x00garbage",
        b"\x00" * 64,
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        "-----BEGIN CERTIFICATE REQUEST-----\nnot base64!\n-----END CERTIFICATE REQUEST-----",
        "A" * 20000,
    ],
)
def test_garbage_is_malformed(garbage):
    rejected("malformed_csr", load_csr, garbage)


def test_a_certificate_is_not_a_csr(local_engine):
    pem = local_engine.chain()[0].public_bytes(serialization.Encoding.PEM)
    rejected("malformed_csr", load_csr, pem)


# -- subject -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        [(NameOID.COUNTRY_NAME, "US")],
        [(NameOID.EMAIL_ADDRESS, "a@example.com")],
        [(NameOID.LOCALITY_NAME, "Philadelphia")],
    ],
)
def test_subject_attribute_not_allowed(profiles, csrs, extra):
    rejected(
        "subject_not_allowed", plan, profiles["device"], csrs.pem("P-256", extra_subject=extra)
    )


def test_allowed_subject_attributes_pass(profiles, csrs):
    extra = [(NameOID.ORGANIZATION_NAME, "Acme"), (NameOID.SERIAL_NUMBER, "SN-1")]
    result = plan(profiles["device"], csrs.pem("P-256", extra_subject=extra))
    assert result.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Acme"


def test_common_name_rules(profiles, csrs):
    device = profiles["device"]
    rejected("subject_not_allowed", plan, device, csrs.pem("P-256", common_name=None))
    rejected("subject_not_allowed", plan, device, csrs.pem("P-256", common_name="bad name!"))
    two_cns = [(NameOID.COMMON_NAME, "device-0002")]
    rejected("subject_not_allowed", plan, device, csrs.pem("P-256", extra_subject=two_cns))
    server = profiles["server"]
    rejected("subject_not_allowed", plan, server, csrs.pem("P-256", common_name="Not_A_Host"))


# -- subject alternative names -----------------------------------------------------------


@pytest.mark.parametrize(
    ("profile_name", "names"),
    [
        ("device", [x509.DNSName("evil.com")]),
        ("device", [x509.UniformResourceIdentifier("https://device.test/x")]),
        ("device", [x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]),
        ("device", [x509.RFC822Name("dev@example.com")]),
        ("device", [x509.DNSName(f"d{i}.device") for i in range(5)]),  # max_names is 4
        ("server", [x509.DNSName("api.example.com"), x509.DNSName("www.google.com")]),
        ("server", [x509.IPAddress(ipaddress.ip_address("8.8.8.8"))]),
        ("server", [x509.DNSName("API.EXAMPLE.COM")]),
    ],
)
def test_san_outside_rules_is_refused(profiles, csrs, profile_name, names):
    common_name = "device-0001" if profile_name == "device" else None
    error = rejected(
        "san_not_allowed",
        plan,
        profiles[profile_name],
        csrs.pem("P-256", common_name=common_name, sans=names),
    )
    assert profile_name in error.message


def test_allowed_sans_pass_in_order_without_duplicates(profiles, csrs):
    names = [
        x509.DNSName("gw-1.devices"),
        x509.UniformResourceIdentifier("urn:dev:gw-1"),
        x509.DNSName("gw-1.devices"),
    ]
    result = plan(profiles["device"], csrs.pem("P-256", sans=names))
    assert result.sans == (
        x509.DNSName("gw-1.devices"),
        x509.UniformResourceIdentifier("urn:dev:gw-1"),
    )


def test_server_profile_requires_a_name(profiles, csrs):
    rejected("san_not_allowed", plan, profiles["server"], csrs.pem("P-256", common_name=None))


def test_server_profile_copies_common_name_into_san(profiles, csrs):
    ip = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    result = plan(profiles["server"], csrs.pem("P-256", "www.example.com", sans=[ip]))
    assert result.sans == (x509.DNSName("www.example.com"), ip)
    san = extension(result, x509.SubjectAlternativeName)
    assert list(san.value) == [x509.DNSName("www.example.com"), ip]
    # already present: not duplicated
    again = plan(
        profiles["server"],
        csrs.pem("P-256", "www.example.com", sans=[x509.DNSName("www.example.com")]),
    )
    assert again.sans == (x509.DNSName("www.example.com"),)


def test_device_profile_does_not_copy_common_name(profiles, csrs):
    result = plan(profiles["device"], csrs.pem("P-256", "gw-1.devices"))
    assert result.sans == ()
    assert not [e for e in result.extensions if isinstance(e.value, x509.SubjectAlternativeName)]


def test_san_is_critical_only_when_subject_is_empty(profiles, csrs):
    names = [x509.DNSName("api.example.com")]
    with_subject = plan(profiles["server"], csrs.pem("P-256", "api.example.com", sans=names))
    assert extension(with_subject, x509.SubjectAlternativeName).critical is False
    empty = plan(profiles["server"], csrs.pem("P-256", common_name=None, sans=names))
    assert len(empty.subject) == 0
    assert extension(empty, x509.SubjectAlternativeName).critical is True


# -- validity ----------------------------------------------------------------------------


def test_default_validity_and_backdating(profiles, csrs):
    device = profiles["device"]
    result = plan(device, csrs.pem("P-256"))
    assert result.not_after == NOW + datetime.timedelta(days=device.default_validity_days)
    assert result.not_before == NOW - datetime.timedelta(seconds=device.backdate_seconds)
    assert device.backdate_seconds > 0


def test_validity_is_clamped_to_profile_max(profiles, csrs):
    for name in ("device", "server"):
        profile = profiles[name]
        common_name = "device-0001" if name == "device" else "api.example.com"
        result = plan(profile, csrs.pem("P-256", common_name), days=5000)
        assert result.not_after == NOW + datetime.timedelta(days=profile.max_validity_days)
    shorter = plan(profiles["device"], csrs.pem("P-256"), days=7)
    assert shorter.not_after == NOW + datetime.timedelta(days=7)


def test_validity_is_clamped_to_ca_not_after(profiles, csrs):
    ca_not_after = NOW + datetime.timedelta(days=10, hours=3)
    result = plan(profiles["device"], csrs.pem("P-256"), days=365, ca_not_after=ca_not_after)
    assert result.not_after == ca_not_after


def test_expired_ca_and_negative_validity_are_refused(profiles, csrs):
    device = profiles["device"]
    rejected(
        "validity_not_allowed",
        plan,
        device,
        csrs.pem("P-256"),
        ca_not_after=NOW - datetime.timedelta(days=1),
    )
    rejected("validity_not_allowed", plan, device, csrs.pem("P-256"), days=-3)


# -- extensions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile_name", "common_name", "eku"),
    [
        ("device", "device-0001", ExtendedKeyUsageOID.CLIENT_AUTH),
        ("server", "api.example.com", ExtendedKeyUsageOID.SERVER_AUTH),
    ],
)
def test_extensions_come_from_the_profile(profiles, csrs, profile_name, common_name, eku):
    result = plan(profiles[profile_name], csrs.pem("P-256", common_name))
    assert list(extension(result, x509.ExtendedKeyUsage).value) == [eku]
    basic = extension(result, x509.BasicConstraints)
    assert basic.critical and basic.value.ca is False
    usage = extension(result, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not usage.value.key_cert_sign and not usage.value.crl_sign
    assert not usage.value.key_encipherment  # EC keys only sign
    ski = extension(result, x509.SubjectKeyIdentifier)
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(csrs.key("P-256").public_key())


def test_rsa_server_keys_may_encipher(profiles, csrs):
    server = plan(profiles["server"], csrs.pem("RSA-2048", "api.example.com"))
    assert extension(server, x509.KeyUsage).value.key_encipherment
    device = plan(profiles["device"], csrs.pem("RSA-2048"))
    assert not extension(device, x509.KeyUsage).value.key_encipherment


def test_custom_profile_ekus(profiles, csrs):
    profile = profiles["device"].model_copy(
        update={"extended_key_usages": ["clientAuth", "serverAuth"]}
    )
    result = plan(profile, csrs.pem("P-256"))
    assert list(extension(result, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ExtendedKeyUsageOID.SERVER_AUTH,
    ]


def test_an_ip_address_common_name_is_copied_as_an_ip_san(profiles, csrs):
    ip = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    result = plan(profiles["server"], csrs.pem("P-256", "127.0.0.1"))
    assert result.sans == (ip,)
    again = plan(profiles["server"], csrs.pem("P-256", "127.0.0.1", sans=[ip]))
    assert again.sans == (ip,)
    rejected("san_not_allowed", plan, profiles["server"], csrs.pem("P-256", "8.8.8.8"))
