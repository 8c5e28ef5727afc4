"""The deploy harness's template edits stay as narrow as docs/operations.md says they are."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.deploy.harness import adapt_archives, drop_readers, moto_unsupported


def _template() -> dict[str, Any]:
    alarm_arn = {"Fn::GetAtt": ["Alarm", "Arn"]}
    return {
        "Resources": {
            "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {}},
            "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
            "Dashboard": {
                "Type": "AWS::CloudWatch::Dashboard",
                "Properties": {"DashboardBody": {"Fn::Join": ["", ["{", alarm_arn, "}"]]}},
            },
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": {"Ref": "Alarm"}}},
        },
        "Outputs": {
            "AlarmArn": {"Value": alarm_arn},
            "DashboardName": {"Value": {"Fn::GetAtt": ["Dashboard", "DashboardName"]}},
            "TableName": {"Value": {"Ref": "Table"}},
        },
    }


def test_readers_of_a_missing_resource_go_transitively_and_nothing_else() -> None:
    template = _template()
    assert moto_unsupported(template) == {"Alarm": "AWS::CloudWatch::Alarm"}
    dropped = drop_readers(template, {"Alarm"})
    assert dropped == [
        "Dashboard (AWS::CloudWatch::Dashboard)",
        "output AlarmArn",
        "output DashboardName",
    ]
    # A Ref is not an attribute read: moto tolerates it, so the topic stays.
    assert set(template["Resources"]) == {"Alarm", "Table", "Topic"}
    assert set(template["Outputs"]) == {"TableName"}


def test_a_core_resource_reading_a_missing_one_fails_instead_of_being_dropped() -> None:
    template = _template()
    template["Resources"]["Table"]["Properties"]["Tags"] = [
        {"Key": "alarm", "Value": {"Fn::GetAtt": ["Alarm", "Arn"]}}
    ]
    with pytest.raises(AssertionError, match="Table"):
        drop_readers(template, {"Alarm"})


def test_archives_get_a_short_name_and_a_string_pattern_only_when_missing() -> None:
    pattern = {"source": ["certplane"]}
    template = {
        "Resources": {
            "EventBusArchive5B309695": {
                "Type": "AWS::Events::Archive",
                "Properties": {"EventPattern": pattern},
            },
            "Named": {
                "Type": "AWS::Events::Archive",
                "Properties": {"ArchiveName": "kept", "EventPattern": json.dumps(pattern)},
            },
        }
    }
    edits = adapt_archives(template, "CertplaneEventsWithAVeryLongStackNameIndeed")
    archive = template["Resources"]["EventBusArchive5B309695"]["Properties"]
    assert len(archive["ArchiveName"]) <= 48
    assert json.loads(archive["EventPattern"]) == pattern
    assert template["Resources"]["Named"]["Properties"]["ArchiveName"] == "kept"
    assert len(edits) == 2
