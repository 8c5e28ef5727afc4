"""Copy-paste examples `certplane dev` prints for the enrollment doors."""

from __future__ import annotations

import json

from certplane.dev.bootstrap import BootstrapFiles
from certplane.dev.home import DevHome


def est_example(url: str, home: DevHome, bootstrap: BootstrapFiles) -> str:
    return "\n".join(
        [
            "EST (curl + openssl):",
            "  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \\",
            "      -keyout est.key -subj /CN=est-device-1 -outform DER | base64 > est.b64",
            f'  curl --cacert {home.root_pem} --user "$(cat {bootstrap.est_credentials})" \\',
            "      -H 'Content-Type: application/pkcs10' --data-binary @est.b64 \\",
            f"      {url}/.well-known/est/simpleenroll \\",
            "    | base64 -d | openssl pkcs7 -inform DER -print_certs",
        ]
    )


def libcertifier_config(url: str, home: DevHome, bootstrap: BootstrapFiles) -> str:
    """A `libcertifier.cfg` for libCertifier v2.2.1 enrolling with the sample seed.

    Only keys v2.2.1's loader (`src/property.c`) reads: the seed PKCS#12 is the `keystore`
    with its `password`, the token type is `crt.type`, the source header `source.name`.
    `ext.key.usage` is required: without it v2.2.1 crashes building its CSR. The output
    PKCS#12 has no configuration key; it is `certifierUtil get-cert -o <file>`.
    """
    return json.dumps(
        {
            "libcertifier.certifier.url": f"{url}/v1/certifier",
            "libcertifier.profile.name": "Device",
            "libcertifier.crt.type": "X509",
            "libcertifier.keystore": str(bootstrap.seed_p12),
            "libcertifier.password": "changeit",
            "libcertifier.ca.info": str(home.root_pem),
            "libcertifier.ecc.curve.id": "prime256v1",
            "libcertifier.num.days": 365,
            "libcertifier.product.id": "1101",
            "libcertifier.source.name": "certplane-dev",
            "libcertifier.ext.key.usage": "clientAuth",
            "libcertifier.tls.insecure.host": 0,
            "libcertifier.tls.insecure.peer": 0,
        },
        indent=2,
    )
