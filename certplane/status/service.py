"""Wires the status layer from a Runtime: the CRL publisher and the OCSP responder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certplane.resources import CA_DIR_ENV
from certplane.runtime import DEFAULT_CA_DIR, Runtime
from certplane.status.crl import CrlPublisher
from certplane.status.ocsp import OcspResponder
from certplane.status.ocsp_signer import OCSP_DIR_ENV, OcspSigners
from certplane.status.store import StatusStore
from certplane.status.urls import status_urls


@dataclass(frozen=True)
class StatusService:
    crl: CrlPublisher
    ocsp: OcspResponder
    store: StatusStore


def ocsp_directory(environ: Mapping[str, str]) -> Path:
    """Where responder keys live: CERTPLANE_OCSP_DIR, else next to the CA directory."""
    explicit = environ.get(OCSP_DIR_ENV)
    if explicit:
        return Path(explicit)
    return Path(environ.get(CA_DIR_ENV, DEFAULT_CA_DIR)).parent / "ocsp"


def build_status(
    runtime: Runtime, environ: Mapping[str, str] = os.environ, s3_client: Any = None
) -> StatusService:
    lifecycle = runtime.lifecycle
    store = StatusStore(client=s3_client)
    urls = status_urls(runtime.settings, dict(environ))
    crl = CrlPublisher(
        runtime.settings, lifecycle.inventory, lifecycle.router, lifecycle.publisher, store, urls
    )
    signers = OcspSigners(runtime.settings, lifecycle.router, ocsp_directory(environ))
    responder = OcspResponder(runtime.settings, lifecycle.inventory, lifecycle.router, signers)
    return StatusService(crl=crl, ocsp=responder, store=store)
