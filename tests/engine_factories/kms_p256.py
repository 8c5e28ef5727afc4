"""The KMS engine with a P-256 issuing key in moto KMS (the contract fixture starts moto).

The hierarchy is bootstrapped through KMS itself and the engine is built the way configuration
builds it: an alias for `key_id`, the chain as PEM, its own boto3 client.
"""

from pathlib import Path

import boto3

from certbridge.engines.kms import KmsCAEngine, create_kms_hierarchy

NAME = "kms-p256"


def make_engine(tmp_path: Path) -> KmsCAEngine:
    hierarchy = create_kms_hierarchy(
        boto3.client("kms"), "ECC_NIST_P256", "certplane contract kms", alias_prefix="contract"
    )
    return KmsCAEngine(
        "contract-kms-p256", key_id="alias/contract-issuing", chain_pem=hierarchy.chain_pem
    )
