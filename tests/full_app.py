"""One synth of the whole app with every resource kind certplane can deploy.

The configuration is the packaged defaults plus every AWS CA engine (KMS by ARN and alias,
Private CA, ACME with S3 state and Route 53, PKCS#11) and two connectors, so that the
compliance tests (cdk-nag, cfn-lint) and the bundling tests see every construct, not just
the default stacks. Synthesized once per test process (about 5-10 s, 0.5 GB).
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from app import build_app, create_app
from cdk import nag_acknowledgements
from cdk.deployed_config import DeployedConfig

KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ALIAS = "alias/certplane-issuing"
CA_ARN = (
    "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/"
    "11111111-2222-3333-4444-555555555555"
)
PIN_SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:certplane/hsm-pin-AbCdEf"
PASSPHRASE_SECRET = "certplane/acme-passphrase"
ZONE = "Z0123456789ABC"
# Every CA engine that runs in AWS (the engine-grant tests check the IAM each one gets).
AWS_CAS = f"""
[[cas]]
id = "fleet-kms"
engine = "kms"
[cas.options]
key_id = "{KEY_ARN}"

[[cas]]
id = "fleet-kms-alias"
engine = "kms"
[cas.options]
key_id = "{KEY_ALIAS}"
region = "eu-west-1"

[[cas]]
id = "fleet-pca"
engine = "pca"
[cas.options]
ca_arn = "{CA_ARN}"

[[cas]]
id = "public-acme"
engine = "acme"
[cas.options]
directory_url = "https://acme.example/directory"
state = "s3://certplane-acme-state/accounts/public/"
passphrase_secret = "{PASSPHRASE_SECRET}"
challenge = "dns-01"
dns_provider = "route53"
[cas.options.dns_provider_options]
hosted_zone_id = "{ZONE}"

[[cas]]
id = "hsm"
engine = "pkcs11"
[cas.options]
module = "/opt/cloudhsm/lib/libcloudhsm_pkcs11.so"
pin_secret = "{PIN_SECRET_ARN}"
"""
EVERY_ENGINE_AND_CONNECTOR = (
    AWS_CAS
    + """
[[connectors]]
name = "siem"
tenant = "default"
type = "splunk"
url = "https://splunk.example:8088/services/collector/event"
secret = "certplane/default/splunk-hec"
events = ["Certificate Issued", "Certificate Revoked"]

[[connectors]]
name = "chat-ops"
tenant = "default"
type = "slack"
secret = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:certplane/slack-AbCdEf"
events = ["Certificate Expiring", "CA Unavailable"]
"""
)


@dataclass(frozen=True)
class FullSynth:
    outdir: Path
    stacks: dict[str, cdk.Stack]
    templates: dict[str, dict[str, Any]]  # stack name -> template
    acknowledged: list[tuple[str, nag_acknowledgements.Acknowledgement]]
    error: str | None  # the synth's failure (cdk-nag findings), if any

    def template_path(self, stack_name: str) -> Path:
        return self.outdir / f"{stack_name}.template.json"


@functools.cache
def full_synth(context: tuple[tuple[str, str], ...] = ()) -> FullSynth:
    """Synthesize (with the AwsSolutions checks) into a fresh folder; cached per process.

    `context` adds CDK context (deployment variants such as `management_auth=jwt`).
    """
    folder = Path(tempfile.mkdtemp(prefix="certplane-full-synth-"))
    atexit.register(shutil.rmtree, folder, True)  # the test process keeps it to the end
    config = folder / "certplane.toml"
    config.write_text(DeployedConfig.load().text + EVERY_ENGINE_AND_CONNECTOR)
    outdir = folder / "cdk.out"
    app = create_app(outdir=str(outdir), context={"config": str(config), **dict(context)})
    stacks = build_app(app)
    acknowledged = nag_acknowledgements.apply(app)
    error = None
    try:
        assembly = app.synth()
    except RuntimeError as failure:  # cdk-nag findings; the templates are still written
        error = str(failure)
        assembly = cdk.cx_api.CloudAssembly(str(outdir))
    templates = {
        stack.stack_name: assembly.get_stack_by_name(stack.stack_name).template
        for stack in stacks.values()
    }
    return FullSynth(outdir, stacks, templates, acknowledged, error)
