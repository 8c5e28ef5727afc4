"""CA engines, registered by type so configuration can name them.

Engines are imported only when a configuration uses them, so a deployment with the local
engine never loads the PKCS#11 or ACME client libraries.
"""

from __future__ import annotations

import importlib

ENGINE_TYPES: dict[str, str] = {
    "local": "certbridge.engines.local:LocalCAEngine",
    "kms": "certbridge.engines.kms:KmsCAEngine",
    "pkcs11": "certbridge.engines.pkcs11:Pkcs11CAEngine",
    "pca": "certbridge.engines.pca:PrivateCAEngine",
    "acme": "certbridge.engines.acme:AcmeCAEngine",
    "certifier": "certbridge.engines.upstream:UpstreamCertifierEngine",
}


def engine_class(engine_type: str) -> type:
    """The engine class registered as `engine_type` (ValueError when unknown)."""
    try:
        module_name, _, class_name = ENGINE_TYPES[engine_type].partition(":")
    except KeyError:
        raise ValueError(
            f"unknown engine {engine_type!r} (known: {sorted(ENGINE_TYPES)})"
        ) from None
    return getattr(importlib.import_module(module_name), class_name)
