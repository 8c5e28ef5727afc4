"""cfn-lint on every synthesized template: no findings but W3005 (CDK's redundant DependsOn)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

from tests.full_app import FullSynth, full_synth

IGNORED = ["W3005"]


@pytest.fixture(scope="module")
def synth() -> FullSynth:
    return full_synth()


def _findings(template: Path) -> list[str]:
    matches = lint_file(template, ManualArgs(ignore_checks=IGNORED, regions=["eu-west-1"]))
    return [f"{template.name}:{m.linenumber} {m.rule.id} {m.message}" for m in matches]


def test_every_template_passes_cfn_lint(synth: FullSynth) -> None:
    paths = [synth.template_path(name) for name in synth.templates]
    assert len(paths) >= 6 and all(path.is_file() for path in paths)
    findings = [finding for path in paths for finding in _findings(path)]
    assert not findings, "\n".join(findings)


def test_cfn_lint_does_find_a_broken_template(tmp_path: Path) -> None:
    # The linter really runs: a wrong property type is reported, and W3005 alone is ignored.
    broken = tmp_path / "broken.template.json"
    broken.write_text(
        '{"Resources": {"Q": {"Type": "AWS::SQS::Queue", '
        '"Properties": {"VisibilityTimeout": "soon"}}}}'
    )
    assert any(" E3012 " in finding for finding in _findings(broken))
