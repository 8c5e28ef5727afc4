"""Create a root and an issuing CA whose keys are generated on a PKCS#11 token.

For tests, labs and first deployments. Both keys are generated ON the token, sensitive and
non-extractable, and both CA certificates are signed there; only the chain PEM is written.
In production the root usually comes from a key ceremony on an offline HSM, and the issuing
CA's certificate from that root signing a CSR: then skip this and point the engine at the
issuing key and the chain the ceremony produced. Keeping a root key on the same online token
as the issuing key, as this helper does, is not what a production PKI should do.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from certbridge.certificates import (
    CA_BACKDATE,
    ISSUING_VALIDITY,
    ROOT_VALIDITY,
    ca_certificate_builder,
    ca_name,
)
from certbridge.engines.pkcs11_token import DEFAULT_MODULE, Pkcs11Module, token_signature
from certbridge.interface import PermanentEngineError
from certbridge.remote_signing import key_kind, sign_remotely

CURVES = {"P-256": "secp256r1", "P-384": "secp384r1"}
RSA_SIZES = {"RSA-2048": 2048, "RSA-3072": 3072, "RSA-4096": 4096}
# What the token must never let go of: the key stays sensitive and cannot be wrapped out.
PRIVATE_KEY_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
}


@dataclass(frozen=True)
class ProvisionedCA:
    """What an engine configuration needs: the chain file and the issuing key's label/id."""

    chain: tuple[x509.Certificate, ...]
    chain_file: Path
    issuing_key_label: str
    issuing_key_id: bytes
    root_key_label: str
    root_key_id: bytes


def provision_pkcs11_ca(
    *,
    token_label: str,
    pin: str,
    chain_file: str | Path,
    name: str = "certplane",
    organization: str = "certplane",
    key_algorithm: str = "P-256",
    issuing_key_label: str = "certplane-issuing",
    root_key_label: str = "certplane-root",
    module: str = DEFAULT_MODULE,
) -> ProvisionedCA:
    """Generate the two CA keys on the token, sign both CA certificates there, write the chain.

    Labels must be new on the token (an engine finds its key by label, so a duplicate would
    make that ambiguous). Each key's CKA_ID is set to its certificate's subject key
    identifier, so `key_id` in configuration can be read off the certificate.
    """
    if key_algorithm not in CURVES and key_algorithm not in RSA_SIZES:
        raise ValueError(f"key_algorithm must be one of {[*CURVES, *RSA_SIZES]}")
    loaded = Pkcs11Module.load(module)
    with loaded.lock:
        token = loaded.token(token_label)
        loaded.login(token, pin)
        with token.open(rw=True) as session:
            for label in (root_key_label, issuing_key_label):
                if list(session.get_objects({Attribute.LABEL: label})):
                    raise PermanentEngineError(f"token {token_label!r} already has {label!r}")
            root_private, root_public = _generate(session, key_algorithm, root_key_label)
            issuing_private, issuing_public = _generate(session, key_algorithm, issuing_key_label)
            now = datetime.datetime.now(datetime.UTC).replace(microsecond=0) - CA_BACKDATE
            root_name = ca_name(f"{name} Root CA", organization)
            issuing_name = ca_name(f"{name} Issuing CA", organization)
            root = _sign_ca(
                ca_certificate_builder(
                    root_name, root_public, root_name, root_public, now, now + ROOT_VALIDITY, None
                ),
                root_public,
                root_private,
            )
            issuing = _sign_ca(
                ca_certificate_builder(
                    issuing_name,
                    issuing_public,
                    root_name,
                    root_public,
                    now,
                    now + ISSUING_VALIDITY,
                    0,
                ),
                root_public,
                root_private,
            )
            root_id = _set_id(root_private, session, root_key_label, root_public)
            issuing_id = _set_id(issuing_private, session, issuing_key_label, issuing_public)
    chain = (issuing, root)
    path = Path(chain_file)
    _write_atomically(path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    return ProvisionedCA(chain, path, issuing_key_label, issuing_id, root_key_label, root_id)


def _generate(
    session: Any, key_algorithm: str, label: str
) -> tuple[Any, CertificateIssuerPublicKeyTypes]:
    """A signing key pair stored on the token; returns (private handle, public key)."""
    capabilities = MechanismFlag.SIGN | MechanismFlag.VERIFY
    if key_algorithm in CURVES:
        parameters = session.create_domain_parameters(
            KeyType.EC,
            {Attribute.EC_PARAMS: encode_named_curve_parameters(CURVES[key_algorithm])},
            local=True,
        )
        public, private = parameters.generate_keypair(
            store=True,
            label=label,
            capabilities=capabilities,
            private_template=PRIVATE_KEY_TEMPLATE,
        )
        key = serialization.load_der_public_key(encode_ec_public_key(public))
    else:
        public, private = session.generate_keypair(
            KeyType.RSA,
            RSA_SIZES[key_algorithm],
            store=True,
            label=label,
            capabilities=capabilities,
            private_template=PRIVATE_KEY_TEMPLATE,
        )
        key = rsa.RSAPublicNumbers(
            int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
            int.from_bytes(public[Attribute.MODULUS], "big"),
        ).public_key()
    return private, key  # type: ignore[return-value]


def _set_id(
    private: Any, session: Any, label: str, public: CertificateIssuerPublicKeyTypes
) -> bytes:
    """Give the key pair the SKI as CKA_ID (the convention pkcs11-tool and HSM tools follow)."""
    key_id = x509.SubjectKeyIdentifier.from_public_key(public).digest
    private[Attribute.ID] = key_id
    public_object = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=label)
    # A token may refuse to change public objects; the private key's id is what counts.
    with contextlib.suppress(p11.PKCS11Error):
        public_object[Attribute.ID] = key_id
    return key_id


def _sign_ca(
    builder: x509.CertificateBuilder,
    signer_public: CertificateIssuerPublicKeyTypes,
    signer_private: Any,
) -> x509.Certificate:
    kind = key_kind(signer_public)
    return sign_remotely(
        builder, signer_public, lambda tbs: token_signature(signer_private, kind, tbs)
    )


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(staging, 0o644)
    os.replace(staging, path)
