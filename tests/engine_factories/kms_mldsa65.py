"""The KMS engine with ML_DSA_65 keys, through the KMS stand-in (moto rejects ML-DSA specs)."""

from pathlib import Path

from certbridge.engines.kms import KmsCAEngine, create_kms_hierarchy
from tests.kms_standin import KmsStandIn

NAME = "kms-mldsa65"


def make_engine(tmp_path: Path) -> KmsCAEngine:
    kms = KmsStandIn()
    hierarchy = create_kms_hierarchy(kms, "ML_DSA_65", "certplane contract kms pqc")
    return KmsCAEngine(
        "contract-kms-mldsa65",
        key_id=hierarchy.issuing_key_id,
        chain_pem=hierarchy.chain_pem,
        kms_client=kms,
    )
