"""CertBridge: one interface over every CA engine (DESIGN.md §1).

This package is the layer below the lifecycle core: it signs what policy already decided and
never reads or writes the certificate inventory.
"""

from certbridge.interface import (
    CAEngine,
    Capabilities,
    EngineError,
    IssuedCertificate,
    PermanentEngineError,
    SigningRequest,
    TransientEngineError,
)
from certbridge.router import EngineRouter

__all__ = [
    "CAEngine",
    "Capabilities",
    "EngineError",
    "EngineRouter",
    "IssuedCertificate",
    "PermanentEngineError",
    "SigningRequest",
    "TransientEngineError",
]
