"""PKCS#11 plumbing for the HSM engine: one module per process, one login per token, one
session per engine, and every call into a module serialized.

Why one lock per module rather than per session: python-pkcs11 calls C_Initialize with NULL
arguments, which promises the module that the application will not call it from several
threads at once (SoftHSM2 then switches its own mutexes off). So every call into one module
from one process holds that module's lock; the engine's session lock is this lock.

Why a shared login: PKCS#11 login state belongs to the application and the token, not to a
session. A second C_Login fails with CKR_USER_ALREADY_LOGGED_IN, and closing a logged-in
session logs every other session of the token out. So each token gets one "login anchor"
session per process, kept open; engines open plain sessions that inherit its login and can
be closed or re-opened without disturbing each other.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pkcs11
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import exceptions as p11

from certbridge.interface import EngineError, PermanentEngineError, TransientEngineError

logger = logging.getLogger(__name__)

DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
T = TypeVar("T")

# The token refused the credentials: retrying would only count more failed logins (real HSMs
# lock a user out after a few), so these are never retried.
PIN_ERRORS: tuple[type[Exception], ...] = (
    p11.PinIncorrect,
    p11.PinInvalid,
    p11.PinLenRange,
    p11.PinExpired,
    p11.PinLocked,
    p11.UserPinNotInitialized,
)
# The key or mechanism cannot do what is asked: the same call fails the same way again.
OPERATION_ERRORS: tuple[type[Exception], ...] = (
    p11.MechanismInvalid,
    p11.MechanismParamInvalid,
    p11.KeyTypeInconsistent,
    p11.KeySizeRange,
    p11.DataInvalid,
    p11.DataLenRange,
    p11.FunctionNotSupported,
    p11.ArgumentsBad,
    p11.AttributeSensitive,
    p11.MultipleObjectsReturned,
    p11.MultipleTokensReturned,
)
CKR_KEY_FUNCTION_NOT_PERMITTED = "0x68"  # python-pkcs11 leaves this code unmapped


def _pin_digest(pin: str) -> bytes:
    return hashlib.sha256(pin.encode()).digest()


@dataclass
class _Login:
    """The session that holds a token's login for this process, and which PIN opened it."""

    session: Any
    pin_digest: bytes


class Pkcs11Module:
    """One loaded PKCS#11 module (shared by every engine of the process that names it)."""

    _loaded: dict[str, Pkcs11Module] = {}  # noqa: RUF012 - process-wide registry
    _loading = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self._logins: dict[str, _Login] = {}
        try:
            self._lib = pkcs11.lib(path)
        except p11.PKCS11Error as error:
            raise PermanentEngineError(f"cannot load the PKCS#11 module {path}: {error}") from error

    @classmethod
    def load(cls, path: str) -> Pkcs11Module:
        """The process's instance for `path`, loading the module on first use."""
        if not os.path.exists(path):
            raise PermanentEngineError(f"the PKCS#11 module {path} does not exist")
        with cls._loading:
            module = cls._loaded.get(path)
            if module is None:
                module = cls._loaded[path] = cls(path)
            return module

    def token(self, label: str) -> Any:
        """The token labelled `label` (PermanentEngineError naming the labels present)."""
        try:
            return self._lib.get_token(token_label=label)
        except p11.NoSuchToken:
            present = sorted(
                slot.get_token().label for slot in self._lib.get_slots(token_present=True)
            )
            raise PermanentEngineError(
                f"no token labelled {label!r} in {self.path} (present: {present})"
            ) from None

    def login(self, token: Any, pin: str, *, fresh: bool = False) -> None:
        """Make sure the process is logged in to `token` as its user, with this PIN.

        With `fresh`, the previous login is dropped first (after a device error the token
        may have forgotten it). A PIN that differs from the one the process logged in with
        is refused: one of the two is wrong, and the token would not say which.
        """
        label = token.label
        current = self._logins.get(label)
        if current is not None and fresh:
            self.forget_login(label)
            current = None
        if current is not None:
            if not hmac.compare_digest(current.pin_digest, _pin_digest(pin)):
                raise PermanentEngineError(
                    f"token {label!r}: this PIN differs from the one the process already "
                    "logged in with; one of them is wrong"
                )
            return
        try:
            session = token.open(user_pin=pin)
        except p11.UserAlreadyLoggedIn:
            # Someone else in this process logged in outside this registry: ride on it.
            logger.warning("token %r was already logged in; PIN not verified", label)
            session = token.open()
        self._logins[label] = _Login(session=session, pin_digest=_pin_digest(pin))

    def forget_login(self, label: str) -> None:
        """Close the login anchor of `label` (logging the token out), ignoring errors."""
        login = self._logins.pop(label, None)
        if login is not None:
            try:
                login.session.close()
            except p11.PKCS11Error as error:
                logger.info("closing the login session of %r failed: %s", label, error)


class TokenKey:
    """One engine's session and private-key handle on one token, re-opened when lost.

    `run` retries an operation once on a fresh session and a fresh login after a session,
    device or login error; a second failure is a TransientEngineError (another engine of the
    route may answer). Wrong PINs, missing keys and refused mechanisms are permanent.
    """

    def __init__(
        self,
        module: Pkcs11Module,
        token_label: str,
        pin: str,
        key_label: str | None = None,
        key_id: bytes | None = None,
        pin_source: str = "the configured PIN source",
    ) -> None:
        if not (key_label or key_id):
            raise PermanentEngineError("name the CA key on the token: key_label or key_id")
        self._module = module
        self._token_label = token_label
        self._pin = pin
        self._pin_source = pin_source
        self._key_label = key_label
        self._key_id = key_id
        self._session: Any = None
        self._key: Any = None

    @property
    def lock(self) -> threading.RLock:
        """Held around every call into the module (see the module docstring for why)."""
        return self._module.lock

    @property
    def description(self) -> str:
        key = f"label {self._key_label!r}" if self._key_label else f"id {self._key_id!r}"
        return f"key {key} on token {self._token_label!r}"

    def run(self, operation: Callable[[Any], T]) -> T:
        """Call `operation(private_key)` under the module lock, re-opening once if needed."""
        with self.lock:
            last_error: Exception | None = None
            for attempt in range(2):
                try:
                    if self._key is None:
                        self._open(fresh_login=attempt > 0)
                    return operation(self._key)
                except EngineError:
                    raise
                except PIN_ERRORS as error:
                    self.close()
                    raise PermanentEngineError(
                        f"token {self._token_label!r} refused the PIN from {self._pin_source} "
                        f"({type(error).__name__}): wrong, locked or expired PIN"
                    ) from error
                except p11.NoSuchKey as error:
                    # An object vanishes from view when the login is lost: re-login once.
                    self.close()
                    if attempt:
                        raise PermanentEngineError(
                            f"no private {self.description} (or the PIN's user cannot see it)"
                        ) from error
                    last_error = error
                except OPERATION_ERRORS as error:
                    raise PermanentEngineError(
                        f"{self.description} cannot do this: {type(error).__name__} {error}"
                    ) from error
                except p11.PKCS11Error as error:
                    if CKR_KEY_FUNCTION_NOT_PERMITTED in str(error):
                        raise PermanentEngineError(
                            f"{self.description} is not allowed to sign (CKA_SIGN false)"
                        ) from error
                    logger.warning(
                        "PKCS#11 %s failed (%s: %s); re-opening",
                        self.description,
                        type(error).__name__,
                        error,
                    )
                    self.close()
                    last_error = error
            raise TransientEngineError(
                f"PKCS#11 {self.description} unavailable after re-opening the session: "
                f"{type(last_error).__name__} {last_error}"
            )

    def _open(self, *, fresh_login: bool) -> None:
        token = self._module.token(self._token_label)
        self._module.login(token, self._pin, fresh=fresh_login)
        session = token.open()
        try:
            key = session.get_key(
                object_class=ObjectClass.PRIVATE_KEY, label=self._key_label, id=self._key_id
            )
        except BaseException:
            _close_quietly(session)
            raise
        self._session, self._key = session, key

    def close(self) -> None:
        """Drop this engine's session (the token's login stays with the anchor)."""
        session, self._session, self._key = self._session, None, None
        if session is not None:
            _close_quietly(session)


def _close_quietly(session: Any) -> None:
    try:
        session.close()
    except p11.PKCS11Error as error:
        logger.info("closing a PKCS#11 session failed: %s", error)


def token_signature(private_key: Any, kind: str, data: bytes) -> bytes:
    """Sign `data` with a token key, returning the signature an X.509 certificate carries.

    ECDSA: the digest is computed here and the token signs it with CKM_ECDSA (SoftHSM2 and
    some HSM firmwares lack CKM_ECDSA_SHA256/384); PKCS#11 returns r‖s, X.509 wants the DER
    ECDSA-Sig-Value. RSA: CKM_SHA256_RSA_PKCS hashes on the token and returns PKCS#1 v1.5.
    """
    if kind in ("P-256", "P-384"):
        algorithm = hashlib.sha384 if kind == "P-384" else hashlib.sha256
        raw = bytes(private_key.sign(algorithm(data).digest(), mechanism=Mechanism.ECDSA))
        half = len(raw) // 2
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )
    if kind == "RSA":
        return bytes(private_key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS))
    raise PermanentEngineError(f"PKCS#11 signing with {kind} keys is not supported")


def is_sensitive(private_key: Any) -> bool:
    """True when the token will never reveal the key (sensitive and not extractable)."""
    return bool(private_key[Attribute.SENSITIVE]) and not bool(private_key[Attribute.EXTRACTABLE])
