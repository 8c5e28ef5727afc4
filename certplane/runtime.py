"""Wires the core from environment variables: what a Lambda cold start and `certplane dev` share.

The environment names the tables, the bus, the configuration file and the CA directory
(see `certplane.resources`), so the same code runs against AWS and against the embedded moto.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import botocore.session

from certbridge import CAEngine, EngineRouter
from certbridge.engines import engine_class
from certplane.auth import CredentialStore
from certplane.config import CARegistration, Settings
from certplane.events import EventPublisher
from certplane.inventory import Inventory
from certplane.lifecycle import Lifecycle
from certplane.metrics import MetricsSink
from certplane.resources import CA_DIR_ENV, CONFIG_ENV, EVENT_BUS, IDEMPOTENCY

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import BasePersistenceLayer

DEFAULT_CA_DIR = "/tmp/certplane/ca"


@dataclass(frozen=True)
class Runtime:
    """Everything a front door needs, built once per process."""

    settings: Settings
    lifecycle: Lifecycle
    credentials: CredentialStore


def create_engine(
    registration: CARegistration, ca_dir: Path, environ: Mapping[str, str] = os.environ
) -> CAEngine:
    """Instantiate the engine a CA registration names, with its options from configuration."""
    engine_type = engine_class(registration.engine)
    options = dict(registration.options)
    if registration.engine == "local":
        options.setdefault("directory", ca_dir / registration.id)
        options.setdefault("name", registration.name or None)
        # Each Lambda instance has its own /tmp: a CA created there would differ per instance.
        options.setdefault("create", "AWS_LAMBDA_FUNCTION_NAME" not in environ)
    return engine_type(registration.id, **options)


def _events_client() -> Any:
    """An EventBridge client from botocore, which pynamodb loads anyway (boto3 is not needed)."""
    return botocore.session.get_session().create_client("events")


def _idempotency_store(table_name: str) -> BasePersistenceLayer:
    # Imported here: Powertools' idempotency package brings boto3, s3transfer and
    # multiprocessing, which only requests with an idempotency key need (certplane.idempotency).
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(table_name=table_name)


def build_runtime(
    environ: Mapping[str, str] = os.environ, metrics: MetricsSink | None = None
) -> Runtime:
    """The core wired from `environ`; `metrics` records business metrics (handler_metrics)."""
    settings = Settings.load(environ.get(CONFIG_ENV))
    ca_dir = Path(environ.get(CA_DIR_ENV, DEFAULT_CA_DIR))
    router = EngineRouter({ca.id: create_engine(ca, ca_dir, environ) for ca in settings.cas})
    publisher = EventPublisher.connecting_on_first_event(
        _events_client, environ.get(EVENT_BUS.env_var, EVENT_BUS.default_name)
    )
    idempotency_table = environ.get(IDEMPOTENCY.env_var, IDEMPOTENCY.default_name)
    lifecycle = Lifecycle(
        settings,
        Inventory(settings.expiry_shards),
        router,
        publisher,
        # Created with its DynamoDB client at the first request that carries an idempotency
        # key: the EST and Certifier doors never send one, so their cold start skips it.
        lambda: _idempotency_store(idempotency_table),
        metrics,
    )
    return Runtime(settings=settings, lifecycle=lifecycle, credentials=CredentialStore())
