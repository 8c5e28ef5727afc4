"""The runtime a Lambda cold start builds (`build_runtime`) against moto: its EventBridge
client and idempotency store are made on first use, and then behave as eager ones did.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from certplane.errors import Conflict
from certplane.lifecycle import IssueRequest
from certplane.resources import CA_DIR_ENV, EVENT_BUS, IDEMPOTENCY
from certplane.runtime import build_runtime

# Outside Lambda there is no remaining-time to register; the idempotency utility warns.
pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")


@pytest.fixture
def runtime(aws, tmp_path: Path):
    environ = {
        CA_DIR_ENV: str(tmp_path / "ca"),
        EVENT_BUS.env_var: aws.bus_name,
        IDEMPOTENCY.env_var: IDEMPOTENCY.default_name,
    }
    return build_runtime(environ)


def test_first_issuance_connects_the_bus_and_publishes(runtime, csrs, events):
    record = runtime.lifecycle.issue(IssueRequest("default", "device", csrs.pem("P-256"), "bob"))
    published = events()
    assert [kind for kind, _ in published] == ["Certificate Issued"]
    assert published[0][1]["certificate"]["serial"] == record.serial


def test_idempotency_store_made_at_first_key_still_issues_once(runtime, csrs, events, aws):
    request = IssueRequest("default", "device", csrs.pem("P-256"), "bob", idempotency_key="k-1")
    first = runtime.lifecycle.issue(request)
    again = runtime.lifecycle.issue(request)
    assert again.serial == first.serial
    assert [kind for kind, _ in events()] == ["Certificate Issued"]
    stored = aws.dynamodb.scan(TableName=IDEMPOTENCY.default_name)["Items"]
    assert len(stored) == 1 and stored[0]["status"]["S"] == "COMPLETED"
    other = IssueRequest("default", "device", csrs.pem("P-384"), "bob", idempotency_key="k-1")
    with pytest.raises(Conflict) as caught:
        runtime.lifecycle.issue(other)
    assert caught.value.code == "idempotency_key_reused"
