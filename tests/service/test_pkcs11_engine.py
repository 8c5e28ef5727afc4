"""The PKCS#11 engine against a real SoftHSM2 token.

Signatures are checked with the public key read off the token by OpenSC's pkcs11-tool and
with `openssl verify -x509_strict`; the CA key is shown to be unreadable; PIN, key and
session failures are classified; concurrent issuance and the lifecycle path work.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from certbridge import EngineRouter, PermanentEngineError, SigningRequest, TransientEngineError
from certbridge.engines.pkcs11 import Pkcs11CAEngine, provision_pkcs11_ca
from certbridge.engines.pkcs11_token import Pkcs11Module, TokenKey, token_signature
from certbridge.remote_signing import sign_remotely
from certplane.config import Settings
from certplane.lifecycle import IssueRequest
from certplane.policy import plan_certificate
from certplane.runtime import create_engine
from tests.engine_factories import pkcs11_softhsm
from tests.engine_factories.pkcs11_softhsm import SoftHsm

LINT_PKIX_CERT = Path(sys.executable).with_name("lint_pkix_cert")
SIGNATURES = {
    "P-256": "ecdsa-with-SHA256",
    "P-384": "ecdsa-with-SHA384",
    "RSA-2048": "sha256WithRSAEncryption",
}


@pytest.fixture
def hsm() -> SoftHsm:
    return pkcs11_softhsm.softhsm()


def make_engine(
    hsm: SoftHsm, ca: Any, directory: Path, engine_id: str = "hsm", **options: Any
) -> Pkcs11CAEngine:
    settings: dict[str, Any] = {
        "token_label": hsm.token,
        "key_label": ca.issuing_key_label,
        "chain_file": str(ca.chain_file),
        "module": hsm.module,
    }
    if not {"pin_env", "pin_file", "pin_secret", "pin"} & set(options):
        settings["pin_file"] = str(pkcs11_softhsm.pin_file(directory))
    settings.update(options)
    return Pkcs11CAEngine(engine_id, **settings)


def device_request(
    issuer: Pkcs11CAEngine | x509.Certificate,
    common_name: str = "hsm-device",
    serial: int = 0x7AB1E_0001,
) -> SigningRequest:
    """A `device` profile request that fits inside the issuing CA (an engine or its cert)."""
    if isinstance(issuer, x509.Certificate):
        ca_not_after = issuer.not_valid_after_utc
    else:
        ca_not_after = issuer.capabilities().ca_not_after
    profile = Settings.load().tenant_profile("default", "device")
    assert profile is not None
    plan = plan_certificate(
        profile,
        subject=x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)]),
        requested_sans=[],
        public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        ca_not_after=ca_not_after,
        requested_days=30,
    )
    return SigningRequest(
        serial_number=serial,
        public_key=plan.public_key,
        subject=plan.subject,
        not_before=plan.not_before,
        not_after=plan.not_after,
        extensions=plan.extensions,
    )


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def openssl_verify(leaf: x509.Certificate, chain: tuple[x509.Certificate, ...], tmp: Path) -> None:
    (tmp / "leaf.pem").write_bytes(pem(leaf))
    (tmp / "untrusted.pem").write_bytes(pem(*chain[:-1]))
    (tmp / "root.pem").write_bytes(pem(chain[-1]))
    verify = subprocess.run(
        [
            *("openssl", "verify", "-x509_strict", "-CAfile", str(tmp / "root.pem")),
            *("-untrusted", str(tmp / "untrusted.pem"), str(tmp / "leaf.pem")),
        ],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def pkcs11_tool(hsm: SoftHsm, *arguments: str) -> subprocess.CompletedProcess[bytes]:
    tool = shutil.which("pkcs11-tool")
    if tool is None:
        pytest.skip("pkcs11-tool is not installed (Debian package opensc)")
    return subprocess.run(
        [tool, "--module", hsm.module, "--token-label", hsm.token, *arguments],
        capture_output=True,
        env=hsm.env(),
    )


def read_public_key(hsm: SoftHsm, label: str) -> Any:
    """The public key object stored next to the CA key, read with python-pkcs11."""
    module = Pkcs11Module.load(hsm.module)
    with module.lock, module.token(hsm.token).open() as session:
        public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
        if public.key_type == KeyType.EC:
            return serialization.load_der_public_key(encode_ec_public_key(public))
        return rsa.RSAPublicNumbers(
            int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(public[Attribute.MODULUS], "big"),
        ).public_key()


def verify_with(public_key: Any, certificate: x509.Certificate) -> None:
    algorithm = certificate.signature_hash_algorithm
    assert algorithm is not None
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(
            certificate.signature,
            certificate.tbs_certificate_bytes,
            padding.PKCS1v15(),
            algorithm,
        )
    else:
        public_key.verify(
            certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(algorithm)
        )


# -- signing -----------------------------------------------------------------------------


@pytest.mark.parametrize("key_algorithm", sorted(SIGNATURES))
def test_certificates_verify_with_the_public_key_read_off_the_token(
    hsm: SoftHsm, tmp_path: Path, key_algorithm: str
) -> None:
    ca = pkcs11_softhsm.provision(tmp_path, key_algorithm)
    engine = make_engine(hsm, ca, tmp_path)
    request = device_request(engine)
    _, issued = EngineRouter({"hsm": engine}).issue(["hsm"], request)
    certificate = issued.certificate
    assert certificate.signature_algorithm_oid._name == SIGNATURES[key_algorithm]
    assert engine.capabilities().signing_algorithm == SIGNATURES[key_algorithm]
    assert issued.chain == ca.chain == engine.chain()

    token_public_key = read_public_key(hsm, ca.issuing_key_label)
    assert token_public_key == ca.chain[0].public_key()
    if key_algorithm != "P-384":  # OpenSC 0.23's pkcs11-tool cannot export P-384 keys
        exported = tmp_path / "issuing-public.der"
        read = pkcs11_tool(
            hsm,
            "--read-object",
            "--type",
            "pubkey",
            "--label",
            ca.issuing_key_label,
            "--output-file",
            str(exported),
        )
        assert read.returncode == 0, read.stderr.decode()
        assert serialization.load_der_public_key(exported.read_bytes()) == token_public_key
    verify_with(token_public_key, certificate)
    openssl_verify(certificate, issued.chain, tmp_path)

    # The CA certificates the helper signed on the token are clean too.
    for number, ca_certificate in enumerate(ca.chain):
        path = tmp_path / f"ca-{number}.pem"
        path.write_bytes(pem(ca_certificate))
        lint = subprocess.run(
            [str(LINT_PKIX_CERT), "lint", "-s", "WARNING", "-f", "JSON", str(path)],
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0 and json.loads(lint.stdout)["results"] == [], lint.stdout


def subject_key(algorithm: str) -> Any:
    if algorithm == "P-256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "P-384":
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return getattr(mldsa, f"MLDSA{algorithm.removeprefix('ML-DSA-')}PrivateKey").generate()


def test_every_subject_key_algorithm_it_claims_is_certified(hsm: SoftHsm, tmp_path: Path) -> None:
    engine = make_engine(hsm, pkcs11_softhsm.provision(tmp_path), tmp_path)
    claimed = engine.capabilities().subject_key_algorithms
    for serial, algorithm in enumerate(claimed, start=0x900):
        key = subject_key(algorithm).public_key()
        request = dataclasses.replace(
            device_request(engine, f"key-{algorithm}", serial=serial), public_key=key
        )
        certificate = engine.issue(request).certificate
        assert certificate.public_key() == key, algorithm
        certificate.verify_directly_issued_by(engine.chain()[0])


def test_the_ca_keys_are_sensitive_and_never_extractable(hsm: SoftHsm, tmp_path: Path) -> None:
    ca = pkcs11_softhsm.provision(tmp_path)
    module = Pkcs11Module.load(hsm.module)
    with module.lock:
        token = module.token(hsm.token)
        module.login(token, hsm.pin)
        with token.open() as session:
            for label, key_id in (
                (ca.issuing_key_label, ca.issuing_key_id),
                (ca.root_key_label, ca.root_key_id),
            ):
                key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
                assert key[Attribute.SENSITIVE] is True
                assert key[Attribute.EXTRACTABLE] is False
                assert key[Attribute.ALWAYS_SENSITIVE] is True
                assert key[Attribute.NEVER_EXTRACTABLE] is True
                assert key[Attribute.PRIVATE] is True and key[Attribute.TOKEN] is True
                assert key[Attribute.SIGN] is True and key[Attribute.DECRYPT] is False
                assert key[Attribute.ID] == key_id
                with pytest.raises(p11.AttributeSensitive):
                    key[Attribute.VALUE]
    # CKA_ID is the certificate's subject key identifier, so operators can find the key.
    ski = ca.chain[0].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski.digest == ca.issuing_key_id

    # An independent client (OpenSC) sees the same flags on the token.
    listing = pkcs11_tool(hsm, "--login", "--pin", hsm.pin, "--list-objects", "--type", "privkey")
    assert listing.returncode == 0, listing.stderr.decode()
    block = (
        listing.stdout.decode()
        .split(f"label:      {ca.issuing_key_label}")[1]
        .split("Private Key Object")[0]
    )
    assert "sensitive" in block and "never extractable" in block, block


def test_provisioning_refuses_a_label_already_on_the_token(hsm: SoftHsm, tmp_path: Path) -> None:
    ca = pkcs11_softhsm.provision(tmp_path)
    with pytest.raises(PermanentEngineError, match="already has"):
        provision_pkcs11_ca(
            token_label=hsm.token,
            pin=hsm.pin,
            chain_file=tmp_path / "other.pem",
            issuing_key_label=ca.issuing_key_label,
            root_key_label="a-new-root",
            module=hsm.module,
        )


# -- configuration and failures ----------------------------------------------------------


def test_a_wrong_pin_is_a_permanent_error_that_says_so(hsm: SoftHsm, tmp_path: Path) -> None:
    ca = pkcs11_softhsm.provision(tmp_path)
    wrong = pkcs11_softhsm.pin_file(tmp_path, "00000000", name="wrong.pin")
    # The spare token has never been logged in: the token itself refuses the PIN.
    with pytest.raises(PermanentEngineError, match=r"refused the PIN from file .*PinIncorrect"):
        make_engine(hsm, ca, tmp_path, token_label=hsm.spare_token, pin_file=str(wrong))
    # The CA token is already logged in by this process: the mismatch is caught before use.
    make_engine(hsm, ca, tmp_path)
    with pytest.raises(PermanentEngineError, match="PIN differs"):
        make_engine(hsm, ca, tmp_path, pin_file=str(wrong))


def test_pin_sources(
    hsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws: Any
) -> None:
    ca = pkcs11_softhsm.provision(tmp_path)
    with pytest.raises(PermanentEngineError, match="never put the PIN in configuration"):
        make_engine(hsm, ca, tmp_path, pin=hsm.pin)
    with pytest.raises(PermanentEngineError, match="exactly one PIN source"):
        make_engine(hsm, ca, tmp_path, pin_env="HSM_PIN", pin_file=str(tmp_path / "x"))
    with pytest.raises(PermanentEngineError, match="HSM_PIN is empty"):
        make_engine(hsm, ca, tmp_path, pin_env="HSM_PIN")
    monkeypatch.setenv("HSM_PIN", hsm.pin)
    assert make_engine(hsm, ca, tmp_path, pin_env="HSM_PIN").issue(device_request(ca.chain[0]))

    secrets = aws.session.client("secretsmanager")
    arn = secrets.create_secret(Name="certplane/hsm-pin", SecretString=hsm.pin)["ARN"]
    assert make_engine(hsm, ca, tmp_path, pin_secret=arn).issue(device_request(ca.chain[0]))
    with pytest.raises(PermanentEngineError, match="cannot read the PIN secret"):
        make_engine(hsm, ca, tmp_path, pin_secret="certplane/missing")


def test_a_missing_or_foreign_key_is_a_permanent_error(hsm: SoftHsm, tmp_path: Path) -> None:
    ca = pkcs11_softhsm.provision(tmp_path)
    with pytest.raises(PermanentEngineError, match="no private key label 'no-such-key'"):
        make_engine(hsm, ca, tmp_path, key_label="no-such-key")
    with pytest.raises(PermanentEngineError, match="is not the key of the issuing CA"):
        make_engine(hsm, ca, tmp_path, key_label=ca.root_key_label)
    with pytest.raises(PermanentEngineError, match="no token labelled 'nope'"):
        make_engine(hsm, ca, tmp_path, token_label="nope")
    with pytest.raises(PermanentEngineError, match="does not exist"):
        make_engine(hsm, ca, tmp_path, module=str(tmp_path / "libnothing.so"))
    # The key can also be named by its CKA_ID (the issuing certificate's SKI).
    by_id = make_engine(hsm, ca, tmp_path, key_label=None, key_id=ca.issuing_key_id.hex())
    by_id.issue(device_request(by_id)).certificate.verify_directly_issued_by(ca.chain[0])


def test_a_key_that_could_leave_the_token_is_refused(hsm: SoftHsm, tmp_path: Path) -> None:
    """An extractable CA key (imported, or generated carelessly) is refused unless allowed."""
    label = f"extractable-{tmp_path.name}"
    module = Pkcs11Module.load(hsm.module)
    with module.lock:
        token = module.token(hsm.token)
        module.login(token, hsm.pin)
        with token.open(rw=True) as session:
            parameters = session.create_domain_parameters(
                KeyType.EC,
                {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                local=True,
            )
            public, private = parameters.generate_keypair(
                store=True,
                label=label,
                private_template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True},
            )
            public_key = serialization.load_der_public_key(encode_ec_public_key(public))
            name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Careless CA")])
            now = datetime.datetime.now(datetime.UTC)
            builder = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            )
            ca = sign_remotely(
                builder, public_key, lambda tbs: token_signature(private, "P-256", tbs)
            )
    chain_file = tmp_path / "careless.pem"
    chain_file.write_bytes(pem(ca))
    careless = SimpleNamespace(issuing_key_label=label, chain_file=chain_file)
    with pytest.raises(PermanentEngineError, match="is extractable or not sensitive"):
        make_engine(hsm, careless, tmp_path)
    allowed = make_engine(hsm, careless, tmp_path, require_non_extractable=False)
    allowed.issue(device_request(allowed)).certificate.verify_directly_issued_by(ca)


def test_a_lost_session_or_login_is_reopened(hsm: SoftHsm, tmp_path: Path) -> None:
    ca = pkcs11_softhsm.provision(tmp_path)
    engine = make_engine(hsm, ca, tmp_path)
    token_key: TokenKey = engine._key
    # CKR_SESSION_HANDLE_INVALID: the session is closed behind the engine's back.
    with token_key.lock:
        token_key._session.close()
    engine.issue(device_request(engine, serial=0x51))
    # CKR_USER_NOT_LOGGED_IN: the token forgot the login (an HSM restart does that).
    with token_key.lock:
        Pkcs11Module.load(hsm.module).forget_login(hsm.token)
    engine.issue(device_request(engine, serial=0x52))


def test_a_device_that_stays_down_is_a_transient_error(
    hsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = pkcs11_softhsm.provision(tmp_path)
    engine = make_engine(hsm, ca, tmp_path)
    opened: list[bool] = []

    def device_error(self: TokenKey, *, fresh_login: bool) -> None:
        opened.append(fresh_login)
        raise p11.DeviceError()

    with engine._key.lock:
        engine._key.close()
    monkeypatch.setattr(TokenKey, "_open", device_error)
    with pytest.raises(TransientEngineError, match="DeviceError"):
        engine.issue(device_request(engine))
    assert opened == [False, True]  # retried once, with a fresh login
    # ...and a token that is down when the process starts does not stop it.
    down = make_engine(hsm, ca, tmp_path)
    assert down.chain() == ca.chain
    monkeypatch.undo()
    assert down.issue(device_request(down)).certificate.issuer == ca.chain[0].subject
    # ...but the key check it could not run at start runs when the token is back.
    monkeypatch.setattr(TokenKey, "_open", device_error)
    wrong_key = make_engine(hsm, ca, tmp_path, key_label=ca.root_key_label)
    monkeypatch.undo()
    with pytest.raises(PermanentEngineError, match="is not the key of the issuing CA"):
        wrong_key.issue(device_request(wrong_key))


def test_concurrent_issuance_from_threads(hsm: SoftHsm, tmp_path: Path) -> None:
    first = make_engine(hsm, pkcs11_softhsm.provision(tmp_path / "a"), tmp_path / "a", "hsm-a")
    second = make_engine(hsm, pkcs11_softhsm.provision(tmp_path / "b"), tmp_path / "b", "hsm-b")
    requests = [
        (engine, device_request(engine, f"thread-{n}", serial=0x1000 + n))
        for n, engine in enumerate([first, second] * 40)
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        issued = list(pool.map(lambda pair: pair[0].issue(pair[1]), requests))
    serials = {result.certificate.serial_number for result in issued}
    assert len(serials) == len(requests)
    for (engine, request), result in zip(requests, issued, strict=True):
        assert result.certificate.subject == request.subject
        result.certificate.verify_directly_issued_by(engine.chain()[0])


# -- through the lifecycle ---------------------------------------------------------------

HSM_CONFIG = """
[[tenants]]
id = "default"
profiles = ["hsm-device"]

[[cas]]
id = "hsm"
engine = "pkcs11"
name = "HSM issuing CA"

[cas.options]
module = "{module}"
token_label = "{token}"
key_label = "{key_label}"
chain_file = "{chain_file}"
pin_env = "CERTPLANE_TEST_HSM_PIN"

[[profiles]]
name = "hsm-device"
key_algorithms = ["P-256", "P-384"]
max_validity_days = 365
default_validity_days = 90
route = ["hsm"]
"""


@pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")
def test_a_profile_routed_to_the_hsm_issues_through_the_lifecycle(
    hsm: SoftHsm,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_lifecycle: Any,
    csrs: Any,
    events: Any,
) -> None:
    ca = pkcs11_softhsm.provision(tmp_path)
    settings = Settings.from_toml(
        HSM_CONFIG.format(
            module=hsm.module,
            token=hsm.token,
            key_label=ca.issuing_key_label,
            chain_file=ca.chain_file,
        )
    )
    monkeypatch.setenv("CERTPLANE_TEST_HSM_PIN", hsm.pin)
    engine = create_engine(settings.cas[0], tmp_path / "ca")
    assert isinstance(engine, Pkcs11CAEngine)
    lifecycle = make_lifecycle(settings, {"hsm": engine})

    record = lifecycle.issue(
        IssueRequest(
            tenant="default",
            profile="hsm-device",
            csr=csrs.pem("P-256", "hsm-lifecycle-0001"),
            requester="alice",
        )
    )
    assert record.status == "ISSUED" and record.ca_id == "hsm"
    certificate = x509.load_pem_x509_certificate(record.certificate_pem.encode())
    chain = tuple(x509.load_pem_x509_certificates(record.chain_pem.encode()))
    assert chain == ca.chain
    assert record.issuer == ca.chain[0].subject.rfc4514_string()
    openssl_verify(certificate, chain, tmp_path)
    published = events()
    assert [detail_type for detail_type, _ in published] == ["Certificate Issued"]
    assert published[0][1]["certificate"]["certificateId"] == record.certificate_id

    revoked = lifecycle.revoke("default", record.certificate_id, "keyCompromise", "alice")
    assert revoked.status == "REVOKED"
