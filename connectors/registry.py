"""Connector types by name, as `[[connectors]] type = "..."` names them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.base import Connector
from connectors.cef import CefSyslogConnector
from connectors.github import GitHubDispatchConnector
from connectors.gitlab import GitLabTriggerConnector
from connectors.jira import JiraConnector
from connectors.ocsf import OcsfS3Connector
from connectors.pagerduty import PagerDutyConnector
from connectors.servicenow import ServiceNowConnector
from connectors.slack import SlackConnector
from connectors.splunk import SplunkHecConnector
from connectors.teams import TeamsConnector
from connectors.webhook import WebhookConnector

CONNECTOR_TYPES: dict[str, type] = {
    WebhookConnector.type_name: WebhookConnector,
    SlackConnector.type_name: SlackConnector,
    PagerDutyConnector.type_name: PagerDutyConnector,
    SplunkHecConnector.type_name: SplunkHecConnector,
    GitHubDispatchConnector.type_name: GitHubDispatchConnector,
    JiraConnector.type_name: JiraConnector,
    ServiceNowConnector.type_name: ServiceNowConnector,
    TeamsConnector.type_name: TeamsConnector,
    GitLabTriggerConnector.type_name: GitLabTriggerConnector,
    OcsfS3Connector.type_name: OcsfS3Connector,
    CefSyslogConnector.type_name: CefSyslogConnector,
}


def build_connector(
    type_name: str, url: str | None, secret: str | None, options: Mapping[str, Any] | None = None
) -> Connector:
    """Instantiate a connector; unknown types and bad options fail here, at start-up."""
    try:
        cls = CONNECTOR_TYPES[type_name]
    except KeyError:
        raise ValueError(
            f"unknown connector type {type_name!r}; known: {sorted(CONNECTOR_TYPES)}"
        ) from None
    return cls(url, secret, **dict(options or {}))
