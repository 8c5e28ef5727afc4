"""Where the simulated fleet enrolls, and with which factory credentials.

A fleet needs the server URL and the CA that signed its TLS certificate, EST enrollment
credentials and a factory seed (certificate and key) for the Certifier API, and a management
token to revoke EST devices and to check the inventory. `certplane dev` writes all of them into
its home; against any other server they are passed explicitly. As the rest of the CLI does, the
dev home's secrets go only to the dev server they belong to.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certplane.cli.client import CA_FILE_ENV, TOKEN_ENV, URL_ENV
from certplane.dev.home import DevHome, default_home


class TargetError(Exception):
    """The fleet cannot start: something it needs is missing."""


@dataclass(frozen=True)
class Seed:
    """A factory identity: a certificate from a bootstrap CA and its key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    certificate_file: Path
    key_file: Path

    @classmethod
    def load(cls, certificate_file: Path, key_file: Path) -> Seed:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TargetError(f"{key_file}: X509 tokens are signed with an EC key")
        certificate = x509.load_pem_x509_certificate(certificate_file.read_bytes())
        return cls(certificate, key, certificate_file, key_file)


@dataclass(frozen=True)
class Target:
    url: str
    verify: str | bool
    token: str | None
    est_user: str | None
    est_password: str | None
    seed: Seed | None

    @classmethod
    def resolve(
        cls,
        url: str | None = None,
        token: str | None = None,
        home: Path | None = None,
        ca_file: Path | None = None,
        bootstrap: Path | None = None,
    ) -> Target:
        """--url first, then CERTPLANE_URL, then the dev home's endpoint (and its secrets).

        `bootstrap` is a folder laid out like a dev home's `bootstrap/`: `est-credentials`
        (`user:password`), `seed.pem` and `seed.key`.
        """
        dev_home = DevHome(home.expanduser() if home else default_home())
        url = url or os.environ.get(URL_ENV)
        from_home = not url
        if from_home:
            if not dev_home.endpoint.exists():
                raise TargetError(
                    f"no server: pass --url, set {URL_ENV}, or start `certplane dev` "
                    f"(looked in {dev_home.root})"
                )
            url = json.loads(dev_home.endpoint.read_text())["url"]
        assert url is not None
        token = token or os.environ.get(TOKEN_ENV)
        if not token and from_home and dev_home.admin_token.exists():
            token = dev_home.admin_token.read_text().strip()
        ca = ca_file or (Path(os.environ[CA_FILE_ENV]) if os.environ.get(CA_FILE_ENV) else None)
        if ca is None and from_home and dev_home.root_pem.exists():
            ca = dev_home.root_pem
        if bootstrap is None and from_home:
            bootstrap = dev_home.bootstrap
        user = password = None
        seed = None
        if bootstrap is not None:
            credentials = bootstrap / "est-credentials"
            if credentials.exists():
                user, _, password = credentials.read_text().strip().partition(":")
            if (bootstrap / "seed.pem").exists() and (bootstrap / "seed.key").exists():
                seed = Seed.load(bootstrap / "seed.pem", bootstrap / "seed.key")
        return cls(
            url=url.rstrip("/"),
            verify=str(ca) if ca else True,
            token=token or None,
            est_user=user,
            est_password=password,
            seed=seed,
        )
