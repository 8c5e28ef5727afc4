"""A public ACME CA (Let's Encrypt; ZeroSSL and Sectigo with External Account Binding) as a
CertBridge engine, through the `acme` library.

One `issue` is one RFC 8555 order: identifiers from the request's SANs, every authorization
solved at once (http-01 or dns-01, certbridge.engines.acme_challenges), finalization with
the device's own CSR (only the key holder can make one), the chain downloaded and the one
ending at the most preferred configured root kept. The CA decides subject, extensions,
serial and (unless it honours the order's notBefore/notAfter) validity, so what is checked
afterwards is what must hold whatever it decided: key, names, chain, no longer life than
policy approved. Every certificate obtained is stored with the account key in the engine's
state (certbridge.engines.acme_state), because ACME revokes a certificate, not a serial.

Nothing is called at construction: the account is found or registered on first use, so a
Lambda cold start does not fail on one CA. Requests of one engine are serialized.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import josepy as jose
import requests
from acme import client as acme_client
from acme import errors as acme_errors
from acme import fields, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from requests.utils import parse_header_links

from certbridge.engines.acme_account import (
    ACCOUNT_KEY_TYPES,
    AccountSettings,
    AccountSetupError,
    SecretSource,
    find_or_register,
    jws_key,
    load_or_create_account_key,
    problem_code,
)
from certbridge.engines.acme_challenges import (
    DNS01,
    HTTP01,
    ChallengeSolver,
    ChallengeTask,
    DnsProvider,
    Http01Responder,
    challenge_task,
    make_solver,
)
from certbridge.engines.acme_checks import (
    SUBJECT_KEY_ALGORITHMS,
    Identifier,
    anchored_ca_chain,
    anchored_chain,
    checked_csr,
    content_problems,
    load_roots,
    preferred_chain,
    request_identifiers,
    split_pem_chain,
)
from certbridge.engines.acme_state import StateStore, open_state
from certbridge.interface import (
    Capabilities,
    EngineError,
    IssuedCertificate,
    PermanentEngineError,
    SigningRequest,
    TransientEngineError,
)

logger = logging.getLogger(__name__)

USER_AGENT = "certplane-acme"
LAST_CHAIN = "chain.pem"
DEFAULT_MAX_VALIDITY_DAYS = 90.0  # Let's Encrypt's classic profile, ZeroSSL, Sectigo DV

# RFC 8555 §6.7 problem types, by what the router should do about them.
TRANSIENT_PROBLEMS = frozenset(
    {"rateLimited", "serverInternal", "badNonce", "connection", "dns", "timeout", "tls"}
)
PERMANENT_PROBLEMS = frozenset(
    {
        "rejectedIdentifier",
        "unauthorized",
        "malformed",
        "caa",
        "badCSR",
        "badPublicKey",
        "badSignatureAlgorithm",
        "unsupportedIdentifier",
        "badRevocationReason",
        "incorrectResponse",
        "compound",
    }
)
# The account, not the request, is the problem: the route fails over and someone must act.
ACCOUNT_PROBLEMS = frozenset(
    {
        "accountDoesNotExist",
        "externalAccountRequired",
        "userActionRequired",
        "agreementRequired",
        "invalidContact",
        "unsupportedContact",
    }
)
# RFC 5280 CRLReason codes, as RFC 8555 §7.6 sends them. certificateHold and removeFromCRL
# mean nothing to a CA that cannot un-revoke; Let's Encrypt takes 0, 1, 3, 4 and 5.
REASON_CODES: dict[x509.ReasonFlags, int] = {
    x509.ReasonFlags.unspecified: 0,
    x509.ReasonFlags.key_compromise: 1,
    x509.ReasonFlags.ca_compromise: 2,
    x509.ReasonFlags.affiliation_changed: 3,
    x509.ReasonFlags.superseded: 4,
    x509.ReasonFlags.cessation_of_operation: 5,
    x509.ReasonFlags.privilege_withdrawn: 9,
    x509.ReasonFlags.aa_compromise: 10,
}
_FROM_KEY = {"RSA": "sha256WithRSAEncryption", "P-256": "ecdsa-with-SHA256"}


class NewOrder(messages.NewOrder):
    """newOrder with RFC 8555 §7.4's optional notBefore/notAfter, which the library omits."""

    not_before: datetime.datetime | None = fields.rfc3339("notBefore", omitempty=True)
    not_after: datetime.datetime | None = fields.rfc3339("notAfter", omitempty=True)


def problem_error(problem: messages.Error, doing: str) -> EngineError:
    """The engine error an RFC 8555 problem document stands for."""
    code = problem_code(problem)
    text = f"the ACME CA refused to {doing}: {code}: {problem.detail or problem.description}"
    if code in PERMANENT_PROBLEMS:
        return PermanentEngineError(text)
    if code in ACCOUNT_PROBLEMS:
        return AccountSetupError(text)
    return TransientEngineError(text)  # rate limits, 5xx, and anything this engine cannot name


@contextmanager
def acme_calls(doing: str) -> Iterator[None]:
    """Map what the acme library and requests raise onto Transient/PermanentEngineError."""
    try:
        yield
    except EngineError:
        raise
    except messages.Error as problem:
        raise problem_error(problem, doing) from None
    except acme_errors.IssuanceError as error:
        raise problem_error(error.error, doing) from None
    except acme_errors.TimeoutError:
        raise TransientEngineError(f"the ACME CA did not {doing} in time") from None
    except (requests.RequestException, acme_errors.Error, jose.DeserializationError) as error:
        raise TransientEngineError(f"could not {doing} at the ACME CA: {error!r}") from None


@dataclass
class _Session:
    """A client signed in as the account: its key, its URL (kid), and the directory."""

    client: acme_client.ClientV2
    jwk: jose.JWK


class AcmeCAEngine:
    """An RFC 8555 CA reached through one account."""

    def __init__(
        self,
        engine_id: str,
        directory_url: str,
        state: str | None = None,
        *,
        roots_file: str | None = None,
        roots_pem: str | None = None,
        passphrase_env: str | None = None,
        passphrase_file: str | None = None,
        passphrase_secret: str | None = None,
        account_key_type: str = "P-256",
        contact: Sequence[str] = (),
        agree_to_terms: bool = False,
        eab_kid: str | None = None,
        eab_hmac_key_env: str | None = None,
        eab_hmac_key_file: str | None = None,
        eab_hmac_key_secret: str | None = None,
        challenge: str = HTTP01,
        http01_responder: Http01Responder | str | None = None,
        http01_webroot: str | None = None,
        http01_options: Mapping[str, Any] | None = None,
        dns_provider: DnsProvider | str | None = None,
        dns_provider_options: Mapping[str, Any] | None = None,
        profile: str | None = None,
        request_validity: bool = False,
        max_validity_days: float = DEFAULT_MAX_VALIDITY_DAYS,
        validity_slack_seconds: float = 3600.0,
        chain_file: str | None = None,
        signing_algorithm: str | None = None,
        max_requests_per_second: float | None = None,
        ca_bundle: str | None = None,
        timeout_seconds: float = 90.0,
        poll_interval_seconds: float = 1.0,
        network_timeout_seconds: float = 30.0,
        state_store: StateStore | None = None,
        passphrase: str | None = None,
        eab_hmac_key: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Options are the `[cas.options]` of a CA with `engine = "acme"` (docs/engines.md).

        `state` is a folder or `s3://bucket/prefix`; `state_store`, `http01_responder` and
        `dns_provider` also take objects, for code that builds engines itself.
        """
        if passphrase is not None or eab_hmac_key is not None:
            raise ValueError(
                f"ACME engine {engine_id}: never put secrets in configuration; use "
                "passphrase_env/_file/_secret and eab_hmac_key_env/_file/_secret"
            )
        if state_store is None and not state:
            raise ValueError(f"ACME engine {engine_id}: state (a folder or s3:// URL) is required")
        if account_key_type not in ACCOUNT_KEY_TYPES:
            raise ValueError(f"ACME engine {engine_id}: account_key_type: {ACCOUNT_KEY_TYPES}")
        if bool(eab_kid) != any((eab_hmac_key_env, eab_hmac_key_file, eab_hmac_key_secret)):
            raise ValueError(f"ACME engine {engine_id}: eab_kid and an EAB HMAC key go together")
        self._engine_id = engine_id
        self._directory_url = directory_url
        self._state = state_store if state_store is not None else open_state(str(state))
        self._roots = load_roots(roots_file, roots_pem)
        self._passphrase = SecretSource(
            "account key passphrase", passphrase_env, passphrase_file, passphrase_secret
        )
        if not self._passphrase.configured:
            raise ValueError(
                f"ACME engine {engine_id}: the account key is stored encrypted; configure "
                "passphrase_env, passphrase_file or passphrase_secret"
            )
        self._eab_hmac = SecretSource(
            "EAB HMAC key", eab_hmac_key_env, eab_hmac_key_file, eab_hmac_key_secret
        )
        self._account_key_type = account_key_type
        self._contact = tuple(contact)
        self._agree_to_terms = agree_to_terms
        self._eab_kid = eab_kid
        self._solver: ChallengeSolver = make_solver(
            challenge,
            http01_responder_spec=http01_responder,
            http01_webroot=http01_webroot,
            http01_options=http01_options,
            dns_provider_spec=dns_provider,
            dns_options=dns_provider_options,
        )
        self._profile = profile
        self._request_validity = request_validity
        self._max_validity = datetime.timedelta(days=max_validity_days)
        self._validity_slack = datetime.timedelta(seconds=validity_slack_seconds)
        self._configured_chain = self._load_chain_file(chain_file) if chain_file else None
        self._signing_algorithm = signing_algorithm
        self._max_requests_per_second = max_requests_per_second
        self._verify: str | bool = ca_bundle or True
        self._timeout = timeout_seconds
        self._poll_interval = poll_interval_seconds
        self._network_timeout = network_timeout_seconds
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()  # one ACME conversation at a time per engine
        self._chain_lock = threading.Lock()  # capabilities never wait for an order
        self._session_cache: _Session | None = None
        self._last_chain: tuple[x509.Certificate, ...] | None = None
        self._stored_chain_read = False
        self._last_algorithm: str | None = None

    @property
    def engine_id(self) -> str:
        return self._engine_id

    # -- CertBridge interface -------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """From configuration and the last chain seen: never a network call."""
        chain = self.chain()
        ca_not_after = chain[0].not_valid_after_utc
        remaining = max(ca_not_after - datetime.datetime.now(datetime.UTC), datetime.timedelta())
        return Capabilities(
            engine_type="acme",
            signing_algorithm=self._signing_algorithm or self._last_algorithm or _guess(chain),
            subject_key_algorithms=SUBJECT_KEY_ALGORITHMS,
            max_validity=min(self._max_validity, remaining),
            ca_not_after=ca_not_after,
            supports_revocation=True,
            supports_crl_signing=False,  # the CA publishes its own CRLs
            max_requests_per_second=self._max_requests_per_second,
            assigns_serial_numbers=True,
        )

    def chain(self) -> tuple[x509.Certificate, ...]:
        """The chain of the last certificate obtained (kept in the state across processes),
        else `chain_file`, else the most preferred root alone: a public CA rotates its
        intermediates, so the chain is what it last used, not a constant."""
        with self._chain_lock:
            if self._last_chain is None and not self._stored_chain_read:
                self._stored_chain_read = True
                try:
                    stored = self._state.read(LAST_CHAIN)
                    self._last_chain = self._anchor_configured(stored) if stored else None
                except (TransientEngineError, ValueError) as error:
                    logger.warning("engine %s: no usable last chain: %s", self._engine_id, error)
            return self._last_chain or self._configured_chain or (self._roots[0],)

    def issue(self, request: SigningRequest) -> IssuedCertificate:
        identifiers = request_identifiers(request)
        csr = checked_csr(request, identifiers)
        self._check_solvable(identifiers)
        self._check_lifetime(request)
        csr_pem = csr.public_bytes(serialization.Encoding.PEM)
        with self._lock, self._account_problems():
            session = self._session()
            deadline = self._clock() + self._timeout
            with acme_calls("create the order"):
                order = self._new_order(session, identifiers, request, csr_pem)
            self._authorize(session, order, deadline)
            with acme_calls("issue the certificate"):
                fullchains = self._finalize(session, order, deadline)
            # Kept before any check, so whatever the CA issued can be revoked by serial.
            issued = split_pem_chain(fullchains[0])[0]
            try:
                self._state.write(_certificate_name(issued.serial_number), fullchains[0].encode())
            except TransientEngineError as error:
                raise TransientEngineError(
                    f"the ACME CA issued serial {issued.serial_number:x} but it could not be "
                    f"kept for revocation: {error}"
                ) from None
            leaf, chain = preferred_chain(fullchains, self._roots)
            pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, *chain))
            problems = content_problems(
                request, leaf, identifiers, self._request_validity, self._validity_slack
            )
            if problems:
                raise PermanentEngineError(
                    f"the ACME CA issued serial {leaf.serial_number:x} differently from what "
                    f"policy approved: {'; '.join(problems)} (kept in {self._state.location}; "
                    "revoke it through this engine)"
                )
            self._remember_chain(leaf, chain, pem)
        return IssuedCertificate(certificate=leaf, chain=chain)

    def revoke(
        self, serial_number: int, reason: x509.ReasonFlags, revoked_at: datetime.datetime
    ) -> None:
        """ACME revokes a certificate, not a serial: the copy stored at issuance is sent.
        The lifecycle calls `revoke_certificate` with the inventory's copy instead."""
        stored = self._state.read(_certificate_name(serial_number))
        if stored is None:
            raise PermanentEngineError(
                f"engine {self._engine_id} holds no certificate with serial {serial_number:x} "
                f"in {self._state.location}; ACME can revoke only a certificate it is shown"
            )
        self.revoke_certificate(x509.load_pem_x509_certificate(stored), reason, revoked_at)

    def revoke_certificate(
        self, certificate: x509.Certificate, reason: x509.ReasonFlags, revoked_at: datetime.datetime
    ) -> None:
        """Send `certificate` to the CA's revokeCert. The CA records its own revocation time;
        `revoked_at` is the inventory's."""
        if reason not in REASON_CODES:
            raise PermanentEngineError(f"an ACME CA has no revocation reason {reason.value}")
        serial_number = certificate.serial_number
        with self._lock, self._account_problems():
            session = self._session()
            with acme_calls("revoke the certificate"):
                try:
                    session.client.revoke(certificate, REASON_CODES[reason])
                except messages.Error as problem:
                    if problem_code(problem) != "alreadyRevoked":  # revoking twice is fine
                        raise
        logger.info("engine %s revoked %x (%s)", self._engine_id, serial_number, reason.value)

    # -- the account ----------------------------------------------------------------------

    @contextmanager
    def _account_problems(self) -> Iterator[None]:
        """After an account problem the next request starts over (key, directory, account)."""
        try:
            yield
        except AccountSetupError:
            self._session_cache = None
            raise

    def _session(self) -> _Session:
        """The signed-in client, made on first use (and again after an account problem)."""
        if self._session_cache is not None:
            return self._session_cache
        key = load_or_create_account_key(
            self._state, self._passphrase.read(), self._account_key_type
        )
        jwk, algorithm = jws_key(key)
        network = acme_client.ClientNetwork(
            key=jwk,
            alg=algorithm,
            verify_ssl=self._verify,  # type: ignore[arg-type]  # requests takes a CA path too
            user_agent=USER_AGENT,
            timeout=self._network_timeout,  # type: ignore[arg-type]
        )
        with acme_calls("read its directory"):
            directory = acme_client.ClientV2.get_directory(self._directory_url, network)
        client = acme_client.ClientV2(directory, network)
        if self._profile:
            offered = getattr(getattr(directory, "meta", None), "profiles", None) or {}
            if self._profile not in offered:
                raise AccountSetupError(
                    f"the ACME CA offers no profile {self._profile!r} (it offers "
                    f"{sorted(offered) or 'none'})"
                )
        settings = AccountSettings(
            contact=self._contact,
            agree_to_terms=self._agree_to_terms,
            eab_kid=self._eab_kid,
            eab_hmac_key=self._eab_hmac.read() if self._eab_hmac.configured else None,
        )
        try:
            with acme_calls("find or register the account"):
                find_or_register(client, jwk, settings)
        except PermanentEngineError as error:  # refused the account, not a request
            raise AccountSetupError(str(error)) from None
        self._session_cache = _Session(client=client, jwk=jwk)
        return self._session_cache

    # -- one order ------------------------------------------------------------------------

    def _check_solvable(self, identifiers: Sequence[Identifier]) -> None:
        kind = self._solver.challenge_type
        for identifier in identifiers:
            if identifier.wildcard and kind != DNS01:
                raise PermanentEngineError(f"{identifier.value}: wildcards need dns-01")
            if identifier.type == "ip" and kind == DNS01:
                raise PermanentEngineError(f"{identifier.value}: IP addresses need http-01")

    def _check_lifetime(self, request: SigningRequest) -> None:
        """Without notBefore/notAfter in the order the CA gives its own lifetime; refuse a
        request it would outlive before spending an order on it."""
        if self._request_validity:
            return
        now = datetime.datetime.now(datetime.UTC)
        if now + self._max_validity > request.not_after + self._validity_slack:
            days = self._max_validity / datetime.timedelta(days=1)
            raise PermanentEngineError(
                f"this ACME CA issues {days:g}-day certificates and policy approved one until "
                f"{request.not_after.isoformat()}: give the profile the CA's lifetime"
            )

    def _post_as_get(self, session: _Session, url: str) -> requests.Response:
        return session.client.net.post(
            url, None, new_nonce_url=session.client.directory["newNonce"]
        )

    def _new_order(
        self,
        session: _Session,
        identifiers: Sequence[Identifier],
        request: SigningRequest,
        csr_pem: bytes,
    ) -> messages.OrderResource:
        order = NewOrder(
            identifiers=[identifier.message() for identifier in identifiers],
            profile=self._profile,
            not_before=request.not_before if self._request_validity else None,
            not_after=request.not_after if self._request_validity else None,
        )
        response = session.client.net.post(
            session.client.directory["newOrder"],
            order,
            new_nonce_url=session.client.directory["newNonce"],
        )
        body = messages.Order.from_json(response.json())
        authorizations = [
            messages.AuthorizationResource(
                body=messages.Authorization.from_json(self._post_as_get(session, url).json()),
                uri=url,
            )
            for url in body.authorizations
        ]
        return messages.OrderResource(
            body=body,
            uri=response.headers.get("Location"),
            authorizations=authorizations,
            csr_pem=csr_pem,
        )

    def _authorize(self, session: _Session, order: messages.OrderResource, deadline: float) -> None:
        """Solve every pending authorization at once; clean up whatever happens."""
        tasks: list[ChallengeTask] = []
        pending: list[messages.AuthorizationResource] = []
        for authorization in order.authorizations:
            status = authorization.body.status
            if status == messages.STATUS_VALID:
                continue  # reused from an earlier order (RFC 8555 §7.1.3)
            if status != messages.STATUS_PENDING:
                raise PermanentEngineError(
                    f"authorization for {authorization.body.identifier.value} is {status}"
                )
            tasks.append(self._task(session, authorization))
            pending.append(authorization)
        if not tasks:
            return
        try:
            try:
                self._solver.present(tasks)
            except EngineError:
                raise
            except Exception as error:  # a back end's own failure (disk, HTTP, SDK)
                raise TransientEngineError(
                    f"could not publish the {self._solver.challenge_type} answers: {error!r}"
                ) from error
            with acme_calls("accept the challenge answers"):
                for task in tasks:
                    session.client.answer_challenge(task.challenge, task.response)
            for authorization in pending:
                self._wait_valid(session, authorization, deadline)
        finally:
            try:
                self._solver.cleanup(tasks)
            except Exception as error:  # cleanup must never hide the outcome
                logger.warning("engine %s: challenge cleanup failed: %s", self._engine_id, error)

    def _task(
        self, session: _Session, authorization: messages.AuthorizationResource
    ) -> ChallengeTask:
        kind = self._solver.challenge_type
        for challenge in authorization.body.challenges:
            if challenge.chall.typ == kind:
                return challenge_task(authorization.body.identifier.value, challenge, session.jwk)
        raise PermanentEngineError(
            f"the ACME CA offers no {kind} challenge for {authorization.body.identifier.value}"
        )

    def _wait_valid(
        self, session: _Session, authorization: messages.AuthorizationResource, deadline: float
    ) -> None:
        name = authorization.body.identifier.value
        while True:
            with acme_calls(f"validate {name}"):
                body = messages.Authorization.from_json(
                    self._post_as_get(session, authorization.uri).json()
                )
            if body.status == messages.STATUS_VALID:
                return
            if body.status not in (messages.STATUS_PENDING, messages.STATUS_PROCESSING):
                problems = [c.error for c in body.challenges if c.error is not None]
                if problems:
                    raise problem_error(problems[0], f"validate {name}")
                raise PermanentEngineError(f"the authorization for {name} became {body.status}")
            self._pause(deadline, f"validate {name}")

    def _finalize(
        self, session: _Session, order: messages.OrderResource, deadline: float
    ) -> list[str]:
        """Finalize with the CSR, wait for `valid`, download the chain and its alternates."""
        try:
            session.client.begin_finalization(order)
        except messages.Error as problem:
            if problem_code(problem) != "orderNotReady":
                raise
        while True:
            body = messages.Order.from_json(self._post_as_get(session, order.uri).json())
            if body.status == messages.STATUS_VALID and body.certificate:
                break
            if body.status == messages.STATUS_INVALID:
                if body.error is not None:
                    raise problem_error(body.error, "issue the certificate")
                raise PermanentEngineError("the ACME CA gave up the order without saying why")
            if body.status == messages.STATUS_READY:
                session.client.begin_finalization(order)
            self._pause(deadline, "issue the certificate")
        response = self._post_as_get(session, body.certificate)
        alternates = [
            link["url"]
            for link in parse_header_links(response.headers.get("Link", ""))
            if link.get("rel") == "alternate" and link.get("url")
        ]
        return [response.text] + [self._post_as_get(session, url).text for url in alternates]

    def _pause(self, deadline: float, doing: str) -> None:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise TransientEngineError(f"the ACME CA did not {doing} within {self._timeout:g} s")
        self._sleep(min(self._poll_interval, remaining))

    # -- chains ---------------------------------------------------------------------------

    def _anchor_configured(self, pem: bytes) -> tuple[x509.Certificate, ...]:
        """The chain in a configured chain file (issuing CA first) or a stored certificate
        file (leaf first), ending at a trusted root."""
        certificates = x509.load_pem_x509_certificates(pem)
        if _is_leaf(certificates[0]):
            anchored = anchored_chain(certificates[0], certificates[1:], self._roots)
            if anchored is None:
                raise ValueError("the chain does not end at a configured root")
            return anchored[1]
        return anchored_ca_chain(certificates, self._roots)

    def _load_chain_file(self, chain_file: str) -> tuple[x509.Certificate, ...]:
        try:
            return self._anchor_configured(Path(chain_file).read_bytes())
        except (OSError, ValueError) as error:
            raise ValueError(f"ACME engine {self._engine_id}: chain_file: {error}") from None

    def _remember_chain(
        self, leaf: x509.Certificate, chain: tuple[x509.Certificate, ...], pem: bytes
    ) -> None:
        with self._chain_lock:
            self._last_algorithm = leaf.signature_algorithm_oid._name
            changed, self._last_chain = chain != self._last_chain, chain
        if changed:
            try:
                self._state.write(LAST_CHAIN, pem)
            except TransientEngineError as error:
                logger.warning("engine %s: could not keep the chain: %s", self._engine_id, error)


def _certificate_name(serial_number: int) -> str:
    return f"certificates/{serial_number:x}.pem"


def _is_leaf(certificate: x509.Certificate) -> bool:
    try:
        return not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return True


def _guess(chain: Sequence[x509.Certificate]) -> str:
    """The signature an issuing CA's key makes (RSA → SHA-256, P-384 → SHA-384): what a
    leaf will carry before this process has seen one."""
    key = chain[0].public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ecdsa-with-SHA384" if key.curve.name == "secp384r1" else _FROM_KEY["P-256"]
    if isinstance(key, rsa.RSAPublicKey):
        return _FROM_KEY["RSA"]
    return "unknown"
