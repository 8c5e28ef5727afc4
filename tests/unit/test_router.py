"""Routing: algorithm selection, health ordering, failover rules, and unavailable notices."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certbridge import EngineRouter, PermanentEngineError, SigningRequest, TransientEngineError
from certbridge.engines.local import LocalCAEngine

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def request(serial: int = 4242) -> SigningRequest:
    return SigningRequest(
        serial_number=serial,
        public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "router-test")]),
        not_before=NOW,
        not_after=NOW + datetime.timedelta(days=1),
    )


class Flaky:
    """Wraps an engine; fails with `error` while `failing` is set."""

    def __init__(self, inner: LocalCAEngine, error: Exception) -> None:
        self.inner, self.error, self.failing, self.calls = inner, error, True, 0

    @property
    def engine_id(self) -> str:
        return self.inner.engine_id

    def capabilities(self):
        return self.inner.capabilities()

    def issue(self, signing_request: SigningRequest):
        self.calls += 1
        if self.failing:
            raise self.error
        return self.inner.issue(signing_request)

    def revoke(self, *args) -> None:
        self.inner.revoke(*args)

    def chain(self):
        return self.inner.chain()


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LocalCAEngine]:
    folder: Path = tmp_path_factory.mktemp("router")
    return {
        "classic-a": LocalCAEngine("classic-a", folder / "a"),
        "classic-b": LocalCAEngine("classic-b", folder / "b"),
        "pq": LocalCAEngine("pq", folder / "pq", algorithm="ML-DSA-65"),
    }


def test_the_profile_algorithm_selects_engines_without_client_changes(engines) -> None:
    router = EngineRouter(engines)
    route = ["classic-a", "pq"]
    same_request = request()
    engine_id, issued = router.issue(route, same_request, "ML-DSA-65")
    assert engine_id == "pq" and issued.certificate.signature_algorithm_oid._name == "ML-DSA-65"
    engine_id, issued = router.issue(route, same_request, "ecdsa-with-SHA256")
    assert engine_id == "classic-a"
    assert issued.certificate.signature_algorithm_oid._name == "ecdsa-with-SHA256"
    assert router.eligible(route, "sha256WithRSAEncryption") == []
    with pytest.raises(TransientEngineError, match="signing with sha256WithRSAEncryption"):
        router.issue(route, same_request, "sha256WithRSAEncryption")


def test_failover_notices_and_health(engines) -> None:
    flaky = Flaky(engines["classic-a"], TransientEngineError("throttled"))
    clock = [NOW]
    router = EngineRouter({"a": flaky, "b": engines["classic-b"]}, clock=lambda: clock[0])
    notices: list[str] = []

    def notice(engine_id, error):
        notices.append(engine_id)

    assert router.issue(["a", "b"], request(), on_unavailable=notice)[0] == "b"
    assert notices == ["a"] and not router.health()["a"].healthy
    # Unhealthy engines are tried last, and a repeat failure is not announced again at once.
    assert router.eligible(["a", "b"]) == ["b", "a"]
    with pytest.raises(TransientEngineError):
        router.issue(["a"], request(), on_unavailable=notice)
    assert notices == ["a"]
    clock[0] += datetime.timedelta(minutes=6)
    with pytest.raises(TransientEngineError):
        router.issue(["a"], request(), on_unavailable=notice)
    assert notices == ["a", "a"]
    flaky.failing = False
    assert router.issue(["a", "b"], request(), on_unavailable=notice)[0] == "b"
    assert router.issue(["a"], request())[0] == "a"
    assert router.health()["a"].healthy and router.eligible(["a", "b"]) == ["a", "b"]


def test_permanent_errors_never_fail_over(engines) -> None:
    refusing = Flaky(engines["classic-a"], PermanentEngineError("bad request"))
    second = Flaky(engines["classic-b"], TransientEngineError("unused"))
    second.failing = False
    router = EngineRouter({"a": refusing, "b": second})
    with pytest.raises(PermanentEngineError):
        router.issue(["a", "b"], request())
    assert (refusing.calls, second.calls) == (1, 0)
    assert router.health()["a"].healthy  # a refused request says nothing about the CA


def test_lint_runs_before_signing(engines) -> None:
    router = EngineRouter(engines)
    with pytest.raises(PermanentEngineError, match="serial"):
        router.issue(["classic-a"], dataclasses.replace(request(), serial_number=0))


def test_an_engine_that_cannot_report_capabilities_is_announced_once(engines) -> None:
    class Unreachable(Flaky):
        def capabilities(self):
            raise TransientEngineError("describe timed out")

    router = EngineRouter(
        {"down": Unreachable(engines["classic-a"], Exception()), "b": engines["classic-b"]}
    )
    notices: list[tuple[str, str]] = []
    for _ in range(3):
        engine_id, _ = router.issue(
            ["down", "b"], request(), on_unavailable=lambda e, err: notices.append((e, str(err)))
        )
        assert engine_id == "b"
    assert notices == [("down", "describe timed out")]
