"""Proving control of each name to an ACME CA: http-01 and dns-01 solvers over pluggable
back ends (an HTTP responder, a DNS provider).

The engine hands a solver every challenge of an order at once, so a DNS provider can publish
all TXT records in one change and wait for it once (Route 53 takes tens of seconds to be in
sync; per-name waits would multiply that). Cleanup always runs, success or not.

Back ends, chosen by configuration:
- http-01: `webroot` writes the key authorization under a folder a web server already serves
  at `http://<name>/.well-known/acme-challenge/` (what `certbot --webroot` does). In AWS the
  usual shape is the same idea on S3: a bucket behind CloudFront with a behaviour for
  `/.well-known/acme-challenge/*` — a small `Http01Responder` writing objects; not built here.
  The ACME server decides the port (80 for public CAs); a responder cannot choose it.
- dns-01: `route53` (certbridge.engines.acme_dns), `challtestsrv` (pebble's mock DNS, tests).
- either: "package.module:factory", called with the `*_options` table, for anything else.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import josepy as jose
from acme import challenges, messages

from certbridge.interface import PermanentEngineError

HTTP01 = "http-01"
DNS01 = "dns-01"
CHALLENGE_TYPES = (HTTP01, DNS01)


@runtime_checkable
class Http01Responder(Protocol):
    """Serves `content` at http://<identifier>/.well-known/acme-challenge/<token>."""

    def put(self, identifier: str, token: str, content: str) -> None: ...

    def delete(self, identifier: str, token: str) -> None: ...


@runtime_checkable
class DnsProvider(Protocol):
    """Publishes TXT records; names are FQDNs without the trailing dot."""

    def set_txt(self, records: Mapping[str, Sequence[str]]) -> None:
        """Publish every value of every name, returning once the zone's servers answer with
        them (or raising TransientEngineError when they do not in time)."""
        ...

    def clear_txt(self, records: Mapping[str, Sequence[str]]) -> None:
        """Remove what set_txt published (missing records are not an error)."""
        ...


@dataclass(frozen=True)
class ChallengeTask:
    """One challenge of one authorization, with what must be published to pass it."""

    identifier: str  # the authorization's name ("*." already stripped) or IP address
    challenge: messages.ChallengeBody
    response: challenges.ChallengeResponse
    validation: str  # http-01: the key authorization; dns-01: the TXT value

    @property
    def token(self) -> str:
        return str(self.challenge.chall.encode("token"))


def challenge_task(
    identifier: str, challenge: messages.ChallengeBody, account_key: jose.JWK
) -> ChallengeTask:
    response, validation = challenge.chall.response_and_validation(account_key)
    return ChallengeTask(identifier, challenge, response, str(validation))


class ChallengeSolver(Protocol):
    challenge_type: str

    def present(self, tasks: Sequence[ChallengeTask]) -> None: ...

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None: ...


class Http01Solver:
    """http-01 (RFC 8555 §8.3): the key authorization served over plain HTTP."""

    challenge_type = HTTP01

    def __init__(self, responder: Http01Responder) -> None:
        self.responder = responder

    def present(self, tasks: Sequence[ChallengeTask]) -> None:
        for task in tasks:
            self.responder.put(task.identifier, task.token, task.validation)

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        for task in tasks:
            self.responder.delete(task.identifier, task.token)


class Dns01Solver:
    """dns-01 (RFC 8555 §8.4): base64url(SHA-256(key authorization)) in a TXT record at
    _acme-challenge.<name>. A name and its wildcard share one record name, so values are
    grouped by record name and published together."""

    challenge_type = DNS01

    def __init__(self, provider: DnsProvider) -> None:
        self.provider = provider

    @staticmethod
    def records(tasks: Sequence[ChallengeTask]) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for task in tasks:
            name = task.challenge.chall.validation_domain_name(task.identifier)
            values = grouped.setdefault(name, [])
            if task.validation not in values:
                values.append(task.validation)
        return grouped

    def present(self, tasks: Sequence[ChallengeTask]) -> None:
        if tasks:
            self.provider.set_txt(self.records(tasks))

    def cleanup(self, tasks: Sequence[ChallengeTask]) -> None:
        if tasks:
            self.provider.clear_txt(self.records(tasks))


class WebrootResponder:
    """Writes challenge files under `<webroot>/.well-known/acme-challenge/` for a web server
    that already serves the folder for every name being validated."""

    def __init__(self, webroot: str | Path) -> None:
        self.folder = Path(webroot) / ".well-known" / "acme-challenge"

    def _path(self, token: str) -> Path:
        if not token or "/" in token or token.startswith("."):
            raise PermanentEngineError(f"refusing the challenge token {token!r}")
        return self.folder / token

    def put(self, identifier: str, token: str, content: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(token)
        staging = path.with_name(f".{token}.tmp")
        staging.write_text(content)
        staging.chmod(0o644)  # the web server, not this process, reads it
        os.replace(staging, path)

    def delete(self, identifier: str, token: str) -> None:
        self._path(token).unlink(missing_ok=True)


# -- from configuration ---------------------------------------------------------------------------


def load_plugin(spec: str, options: Mapping[str, Any]) -> Any:
    """`package.module:factory` called with `options`: a back end this module does not ship."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{spec!r} is neither a known back end nor 'package.module:factory'")
    return getattr(importlib.import_module(module_name), attribute)(**options)


def http01_responder(
    responder: Http01Responder | str | None, webroot: str | None, options: Mapping[str, Any]
) -> Http01Responder:
    if isinstance(responder, Http01Responder):
        return responder
    if responder in (None, "webroot"):
        if not webroot:
            raise ValueError("http-01 needs http01_webroot (or an http01_responder)")
        return WebrootResponder(webroot)
    return load_plugin(str(responder), options)


def dns_provider(provider: DnsProvider | str | None, options: Mapping[str, Any]) -> DnsProvider:
    if isinstance(provider, DnsProvider):
        return provider
    if provider is None:
        raise ValueError("dns-01 needs a dns_provider (route53, challtestsrv or module:factory)")
    from certbridge.engines import acme_dns

    if provider == "route53":
        return acme_dns.Route53Provider(**options)
    if provider == "challtestsrv":
        return acme_dns.ChallTestSrvProvider(**options)
    return load_plugin(provider, options)


def make_solver(
    challenge: str,
    *,
    http01_responder_spec: Http01Responder | str | None = None,
    http01_webroot: str | None = None,
    http01_options: Mapping[str, Any] | None = None,
    dns_provider_spec: DnsProvider | str | None = None,
    dns_options: Mapping[str, Any] | None = None,
) -> ChallengeSolver:
    """The solver the engine's options describe (ValueError when they describe none)."""
    if challenge == HTTP01:
        return Http01Solver(
            http01_responder(http01_responder_spec, http01_webroot, http01_options or {})
        )
    if challenge == DNS01:
        return Dns01Solver(dns_provider(dns_provider_spec, dns_options or {}))
    raise ValueError(f"challenge must be one of {CHALLENGE_TYPES}, not {challenge!r}")
