"""Reserved concurrency: how many instances of a function may call a quota-bound downstream.

kms:Sign shares a per-account, per-region request quota (a few hundred per second for
asymmetric keys), AWS Private CA's IssueCertificate a few dozen per second, and public ACME
CAs rate-limit orders per account. An issuing function scaled out without a cap turns a
traffic burst into throttling of every other caller of that quota; reserved concurrency makes
the burst queue (or fail fast with 429) at our door instead. The defaults stay modest so they
never claim much of the account's concurrency (1000 by default, 100 must stay unreserved);
context `reserved_concurrency` overrides any of them, 0 meaning unreserved.
"""

from __future__ import annotations

from constructs import Construct

from cdk.deploy_context import reserved_concurrency
from certplane.config import Settings
from certplane.resources import CERTIFIER_API, CRL_PUBLISHER, EST, MANAGEMENT_API, FunctionSpec

# Per issuing function, by the most constrained engine any configured CA uses.
ENGINE_CAPS = {"acme": 2, "pca": 10, "kms": 20}
ISSUING_FUNCTIONS = (MANAGEMENT_API, CERTIFIER_API, EST)
# The CRL publisher runs one at a time: an overlapping run would only repeat the same work.
CRL_PUBLISHER_CONCURRENCY = 1


def default_reserved_concurrency(settings: Settings) -> dict[str, int]:
    """Function logical id -> reserved concurrency before context overrides (0: unreserved)."""
    caps = [ENGINE_CAPS[ca.engine] for ca in settings.cas if ca.engine in ENGINE_CAPS]
    issuing = min(caps, default=0)
    defaults = {spec.logical_id: issuing for spec in ISSUING_FUNCTIONS}
    defaults[CRL_PUBLISHER.logical_id] = CRL_PUBLISHER_CONCURRENCY
    return defaults


def concurrency_for(scope: Construct, spec: FunctionSpec, settings: Settings) -> int:
    """The reserved concurrency of `spec`'s function in this deployment (0: unreserved)."""
    return reserved_concurrency(scope, default_reserved_concurrency(settings)).get(
        spec.logical_id, 0
    )
