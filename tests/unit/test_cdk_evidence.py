"""The evidence store: every certplane event, via Firehose, into a locked, private bucket."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from app import build_app
from cdk.evidence_store import BUFFER_INTERVAL
from certplane.resources import EVENT_BUS
from stacks.events_stack import EventsStack


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    app = cdk.App()
    return Template.from_stack(EventsStack(app, "CertplaneEvents")).to_json()


def _only(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    (found,) = [(i, r) for i, r in template["Resources"].items() if r["Type"] == kind]
    return found


def _statements_of_role(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        and {"Ref": role_id} in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_bucket_is_locked_encrypted_private_and_tls_only(template: dict[str, Any]) -> None:
    bucket_id, bucket = _only(template, "AWS::S3::Bucket")
    props = bucket["Properties"]
    assert props["ObjectLockEnabled"] is True
    retention = props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    assert retention["Mode"] == "GOVERNANCE" and retention["Days"] >= 365
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (sse,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    key_id, _ = _only(template, "AWS::KMS::Key")
    assert sse["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert bucket["DeletionPolicy"] == "Retain"
    _, policy = _only(template, "AWS::S3::BucketPolicy")
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert policy["Properties"]["Bucket"] == {"Ref": bucket_id}


def test_stream_writes_gzipped_kms_encrypted_objects_into_the_bucket(
    template: dict[str, Any],
) -> None:
    bucket_id, _ = _only(template, "AWS::S3::Bucket")
    key_id, _ = _only(template, "AWS::KMS::Key")
    _, stream = _only(template, "AWS::KinesisFirehose::DeliveryStream")
    props = stream["Properties"]
    assert props["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] == "AWS_OWNED_CMK"
    destination = props["ExtendedS3DestinationConfiguration"]
    assert destination["BucketARN"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
    assert destination["CompressionFormat"] == "GZIP"
    assert destination["Prefix"].startswith("events/")
    kms_config = destination["EncryptionConfiguration"]["KMSEncryptionConfig"]
    assert kms_config["AWSKMSKeyARN"] == {"Fn::GetAtt": [key_id, "Arn"]}


def test_firehose_may_only_add_objects(template: dict[str, Any]) -> None:
    _, stream = _only(template, "AWS::KinesisFirehose::DeliveryStream")
    role_id = stream["Properties"]["ExtendedS3DestinationConfiguration"]["RoleARN"]["Fn::GetAtt"][0]
    actions: set[str] = set()
    for statement in _statements_of_role(template, role_id):
        listed = statement["Action"]
        actions |= {listed} if isinstance(listed, str) else set(listed)
    assert {"s3:PutObject", "s3:AbortMultipartUpload", "kms:GenerateDataKey"} <= actions
    assert not {a for a in actions if "Delete" in a or a.endswith("*") or a == "s3:GetObject"}


def test_rule_sends_every_certplane_event_to_the_stream_and_nothing_else(
    template: dict[str, Any],
) -> None:
    _, stream = _only(template, "AWS::KinesisFirehose::DeliveryStream")
    rules = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Events::Rule"
        and r["Properties"]["Targets"][0]["Id"] == "EvidenceStream"
    ]
    (rule,) = rules
    assert rule["EventPattern"] == {"source": [EVENT_BUS.source]}
    (target,) = rule["Targets"]
    arn = json.dumps(target["Arn"])
    name = stream["Properties"]["DeliveryStreamName"]
    assert f"deliverystream/{name}" in arn  # this stream, addressed by its fixed name
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    (statement,) = _statements_of_role(template, role_id)
    assert sorted(statement["Action"]) == ["firehose:PutRecord", "firehose:PutRecordBatch"]
    assert json.dumps(statement["Resource"]) == arn  # the same stream, and only it


def test_monitoring_alarms_when_events_stop_reaching_the_bucket() -> None:
    app = cdk.App(context={"nag": False})
    stacks = build_app(app)
    monitoring = Template.from_stack(stacks["monitoring"]).to_json()
    (alarm,) = [
        r["Properties"]
        for r in monitoring["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("MetricName") == "DeliveryToS3.DataFreshness"
    ]
    assert alarm["Namespace"] == "AWS/Firehose"
    stream = stacks["events"].evidence.stream_name
    assert alarm["Dimensions"] == [{"Name": "DeliveryStreamName", "Value": stream}]
    assert alarm["Threshold"] == 3 * BUFFER_INTERVAL.to_seconds()
    assert alarm["AlarmActions"]  # to the alarm topic
