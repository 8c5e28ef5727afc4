"""A stand-in for the boto3 KMS client, for what moto cannot do: ML-DSA keys and exact DIGEST.

moto rejects the ML_DSA_44/65/87 key specs that AWS KMS offers, and hashes a DIGEST message
again. This stand-in implements the four calls certplane makes (create_key, create_alias,
get_public_key, sign) with cryptography, following the AWS API's names, limits and error
codes (RAW up to 4096 bytes, DIGEST for ECDSA/RSA, EXTERNAL_MU for ML-DSA), and records every
call so tests can assert what was asked of KMS. Tests only: it holds private keys in memory.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa, padding, rsa, utils

RAW_LIMIT = 4096
ACCOUNT = "123456789012"
REGION = "us-east-1"
HASHES = {"SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}
RSA_ALGORITHMS = [
    f"{scheme}_{digest}"
    for scheme in ("RSASSA_PSS", "RSASSA_PKCS1_V1_5")
    for digest in ("SHA_256", "SHA_384", "SHA_512")
]


def _generate(key_spec: str) -> tuple[Any, list[str]]:
    if key_spec == "ECC_NIST_P256":
        return ec.generate_private_key(ec.SECP256R1()), ["ECDSA_SHA_256"]
    if key_spec == "ECC_NIST_P384":
        return ec.generate_private_key(ec.SECP384R1()), ["ECDSA_SHA_384"]
    if key_spec in ("RSA_2048", "RSA_3072", "RSA_4096"):
        size = int(key_spec.removeprefix("RSA_"))
        return rsa.generate_private_key(public_exponent=65537, key_size=size), RSA_ALGORITHMS
    levels = {
        "ML_DSA_44": mldsa.MLDSA44PrivateKey,
        "ML_DSA_65": mldsa.MLDSA65PrivateKey,
        "ML_DSA_87": mldsa.MLDSA87PrivateKey,
    }
    if key_spec in levels:
        return levels[key_spec].generate(), ["ML_DSA_SHAKE_256"]
    raise _error("CreateKey", "ValidationException", f"KeySpec {key_spec} is not supported")


def _error(operation: str, code: str, message: str, status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


@dataclass
class StandInKey:
    key_id: str
    key_spec: str
    key_usage: str
    private_key: Any
    signing_algorithms: list[str]
    enabled: bool = True

    @property
    def arn(self) -> str:
        return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{self.key_id}"


@dataclass
class KmsStandIn:
    """The subset of `boto3.client("kms")` that certplane uses, backed by cryptography.

    Parameters keep the AWS API's names (KeyId, MessageType…) so a call reads exactly as it
    does against boto3, and a typo fails here as it would there.
    """

    keys: dict[str, StandInKey] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Raised (oldest first) by the next calls instead of answering, to rehearse failures.
    inject: list[Exception] = field(default_factory=list)

    def _enter(self, operation: str, arguments: dict[str, Any]) -> None:
        self.calls.append((operation, arguments))
        if self.inject:
            raise self.inject.pop(0)

    def _key(self, operation: str, key_id: str) -> StandInKey:
        """A key by id, key ARN, alias name or alias ARN, as KMS accepts them."""
        name = key_id.split(":", 5)[-1] if key_id.startswith("arn:") else key_id
        name = self.aliases.get(name, name.removeprefix("key/"))
        try:
            return self.keys[name]
        except KeyError:
            raise _error(operation, "NotFoundException", f"Key '{key_id}' does not exist") from None

    def create_key(
        self,
        KeySpec: str = "SYMMETRIC_DEFAULT",
        KeyUsage: str = "ENCRYPT_DECRYPT",
        **other: Any,
    ) -> dict[str, Any]:
        self._enter("CreateKey", {"KeySpec": KeySpec, "KeyUsage": KeyUsage, **other})
        if KeyUsage != "SIGN_VERIFY":
            raise _error("CreateKey", "ValidationException", "the stand-in only makes signing keys")
        private_key, algorithms = _generate(KeySpec)
        key = StandInKey(str(uuid.uuid4()), KeySpec, KeyUsage, private_key, algorithms)
        self.keys[key.key_id] = key
        return {
            "KeyMetadata": {
                "KeyId": key.key_id,
                "Arn": key.arn,
                "KeySpec": KeySpec,
                "KeyUsage": KeyUsage,
                "KeyState": "Enabled",
                "SigningAlgorithms": algorithms,
            }
        }

    def create_alias(self, AliasName: str, TargetKeyId: str) -> dict[str, Any]:
        self._enter("CreateAlias", {"AliasName": AliasName, "TargetKeyId": TargetKeyId})
        self.aliases[AliasName] = self._key("CreateAlias", TargetKeyId).key_id
        return {}

    def disable_key(self, KeyId: str) -> dict[str, Any]:
        self._enter("DisableKey", {"KeyId": KeyId})
        self._key("DisableKey", KeyId).enabled = False
        return {}

    def get_public_key(self, KeyId: str, **other: Any) -> dict[str, Any]:
        self._enter("GetPublicKey", {"KeyId": KeyId, **other})
        key = self._key("GetPublicKey", KeyId)
        if not key.enabled:
            raise _error("GetPublicKey", "DisabledException", f"{key.arn} is disabled.")
        spki = key.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "KeyId": key.arn,
            "PublicKey": spki,
            "KeySpec": key.key_spec,
            "KeyUsage": key.key_usage,
            "SigningAlgorithms": list(key.signing_algorithms),
        }

    def sign(
        self,
        KeyId: str,
        Message: bytes,
        SigningAlgorithm: str,
        MessageType: str = "RAW",
        **other: Any,
    ) -> dict[str, Any]:
        arguments = {
            "KeyId": KeyId,
            "Message": Message,
            "MessageType": MessageType,
            "SigningAlgorithm": SigningAlgorithm,
            **other,
        }
        self._enter("Sign", arguments)
        key = self._key("Sign", KeyId)
        if not key.enabled:
            raise _error("Sign", "DisabledException", f"{key.arn} is disabled.")
        if SigningAlgorithm not in key.signing_algorithms:
            raise _error(
                "Sign", "InvalidKeyUsageException", f"{SigningAlgorithm} is not valid for {key.arn}"
            )
        return {
            "KeyId": key.arn,
            "Signature": self._signature(key, Message, MessageType, SigningAlgorithm),
            "SigningAlgorithm": SigningAlgorithm,
        }

    @staticmethod
    def _signature(key: StandInKey, message: bytes, message_type: str, algorithm: str) -> bytes:
        private = key.private_key
        if message_type == "RAW" and len(message) > RAW_LIMIT:
            raise _error("Sign", "ValidationException", "RAW messages are at most 4096 bytes")
        if algorithm == "ML_DSA_SHAKE_256":
            if message_type == "RAW":
                return private.sign(message)  # FIPS 204 pure ML-DSA, empty context
            if message_type == "EXTERNAL_MU" and len(message) == 64:
                return private.sign_mu(message)
            raise _error("Sign", "ValidationException", f"{message_type} is invalid for ML-DSA")
        digest = HASHES[algorithm[-len("SHA_256") :]]()  # every classic name ends in SHA_nnn
        if message_type == "DIGEST":
            if len(message) != digest.digest_size:
                raise _error("Sign", "ValidationException", "the digest length is wrong")
            chosen: Any = utils.Prehashed(digest)
        elif message_type == "RAW":
            chosen = digest
        else:
            raise _error(
                "Sign", "ValidationException", f"{message_type} is invalid for {algorithm}"
            )
        if isinstance(private, ec.EllipticCurvePrivateKey):
            return private.sign(message, ec.ECDSA(chosen))
        if algorithm.startswith("RSASSA_PKCS1_V1_5"):
            return private.sign(message, padding.PKCS1v15(), chosen)
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        return private.sign(message, pss, chosen)

    def signed(self) -> list[dict[str, Any]]:
        """The arguments of every Sign call so far, oldest first."""
        return [arguments for operation, arguments in self.calls if operation == "Sign"]
