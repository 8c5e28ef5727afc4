"""The synthesized CertplaneWorkflows stack: state machines with their roles, logging and
tracing, the daily sweep schedule, and the management API's rights over the workflows.

Expected values come from `certplane.resources` (the specs `certplane dev` also builds from).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import Stack

from app import build_app, create_app
from cdk.state_machine import logical_id_of
from certplane.config import Settings
from certplane.resources import (
    APPROVAL_WORKFLOW,
    EST,
    RENEWAL_SWEEP,
    STATE_MACHINES,
    WORKFLOW_FUNCTIONS,
    StateMachineSpec,
)
from certplane.workflows.definitions import uses_distributed_map


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(outdir=str(tmp_path_factory.mktemp("cdk.out")))
    stacks = build_app(app)
    assembly = app.synth()
    return {
        "stacks": stacks,
        "templates": {
            key: assembly.get_stack_by_name(stack.stack_name).template
            for key, stack in stacks.items()
            if key in ("workflows", "api", "enrollment")
        },
    }


def _resources(synth: dict[str, Any], key: str) -> dict[str, Any]:
    return synth["templates"][key]["Resources"]


def _function_ids(synth: dict[str, Any]) -> dict[str, str]:
    """Function spec logical id → the CloudFormation logical id of its Lambda function."""
    stack: Stack = synth["stacks"]["workflows"]
    return {
        logical_id: stack.get_logical_id(handler.function.node.default_child)
        for logical_id, handler in stack.handlers.items()
    }


def _statements(resources: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for resource in resources.values()
        if resource["Type"] == "AWS::IAM::Policy"
        and {"Ref": role_id} in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


CHILD_EXECUTION_ACTIONS = {
    "states:StartExecution",
    "states:DescribeExecution",
    "states:StopExecution",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("spec", STATE_MACHINES, ids=lambda s: s.logical_id)
def test_definition_is_the_spec_with_function_arns_substituted(
    synth: dict[str, Any], spec: StateMachineSpec
) -> None:
    machine = _resources(synth, "workflows")[logical_id_of(spec)]["Properties"]
    assert machine["DefinitionString"] == spec.definition_text(Settings.load().workflows)
    functions = _function_ids(synth)
    assert machine["DefinitionSubstitutions"] == {
        f.logical_id: {"Fn::GetAtt": [functions[f.logical_id], "Arn"]} for f in spec.functions
    }
    text = machine["DefinitionString"]
    assert "QueryLanguage" not in text and "Assign" not in text and "ItemBatcher" not in text


@pytest.mark.parametrize("spec", STATE_MACHINES, ids=lambda s: s.logical_id)
def test_role_may_invoke_only_its_step_functions(
    synth: dict[str, Any], spec: StateMachineSpec
) -> None:
    resources = _resources(synth, "workflows")
    machine = resources[logical_id_of(spec)]["Properties"]
    role_id = machine["RoleArn"]["Fn::GetAtt"][0]
    functions = _function_ids(synth)
    mine = {functions[f.logical_id] for f in spec.functions}
    invoked: set[str] = set()
    for statement in _statements(resources, role_id):
        for action in _as_list(statement["Action"]):
            if action.startswith("lambda:"):
                assert action == "lambda:InvokeFunction"
                for target in _as_list(statement["Resource"]):
                    invoked.add(json.dumps(target))
            elif action.startswith("states:"):  # a distributed Map's own child executions
                assert uses_distributed_map(spec.definition(Settings.load().workflows))
                assert action in CHILD_EXECUTION_ACTIONS, action
                targets = json.dumps(statement["Resource"])
                assert logical_id_of(spec) in targets, targets
                assert all(
                    logical_id_of(other) not in targets for other in STATE_MACHINES if other != spec
                )
            else:  # what Step Functions logging and X-Ray need, nothing else
                assert action.startswith(("logs:", "xray:")), action
    assert invoked and all(any(f in target for f in mine) for target in invoked)
    others = set(functions.values()) - mine
    assert not any(other in target for target in invoked for other in others)


@pytest.mark.parametrize("spec", STATE_MACHINES, ids=lambda s: s.logical_id)
def test_logging_and_tracing_are_on(synth: dict[str, Any], spec: StateMachineSpec) -> None:
    machine = _resources(synth, "workflows")[logical_id_of(spec)]["Properties"]
    assert machine["TracingConfiguration"] == {"Enabled": True}
    logging = machine["LoggingConfiguration"]
    assert logging["Level"] == "ALL" and logging["IncludeExecutionData"] is False
    assert logging["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]


def test_renewal_sweep_runs_daily(synth: dict[str, Any]) -> None:
    resources = _resources(synth, "workflows")
    (schedule,) = [r for r in resources.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == Settings.load().workflows.sweep_schedule == "rate(1 day)"
    assert props["Target"]["Arn"] == {"Ref": logical_id_of(RENEWAL_SWEEP)}
    role_id = props["Target"]["RoleArn"]["Fn::GetAtt"][0]
    dlq_id = props["Target"]["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert resources[dlq_id]["Type"] == "AWS::SQS::Queue"
    assert props["Target"]["RetryPolicy"]["MaximumRetryAttempts"] > 0
    start, send = _statements(resources, role_id)  # start only the sweep; failures to its DLQ
    assert start["Action"] == "states:StartExecution"
    assert start["Resource"] == {"Ref": logical_id_of(RENEWAL_SWEEP)}
    assert send["Action"] == "sqs:SendMessage"
    assert send["Resource"] == {"Fn::GetAtt": [dlq_id, "Arn"]}


@pytest.mark.parametrize("spec", WORKFLOW_FUNCTIONS, ids=lambda s: s.logical_id)
def test_step_functions_touch_only_their_tables(synth: dict[str, Any], spec) -> None:
    resources = _resources(synth, "workflows")
    function = resources[_function_ids(synth)[spec.logical_id]]["Properties"]
    role_id = function["Role"]["Fn::GetAtt"][0]
    text = json.dumps(_statements(resources, role_id))
    inventory = synth["stacks"]["inventory"]
    for table_id, construct in inventory.inventory_tables.items():
        table_ref = inventory.get_logical_id(construct.table.node.default_child)
        named = table_id in {t.logical_id for t in spec.tables}
        assert (table_ref in text) == named, (spec.logical_id, table_id)
    assert ("events:PutEvents" in text) == spec.puts_events
    assert ("s3:PutObject" in text) == bool(spec.read_write_buckets)
    assert "states:" not in text


def test_management_api_may_start_workflows_and_answer_approvals_only(
    synth: dict[str, Any],
) -> None:
    resources = _resources(synth, "api")
    api = synth["stacks"]["api"]
    function_id = api.get_logical_id(api.handler.function.node.default_child)
    function = resources[function_id]["Properties"]
    variables = function["Environment"]["Variables"]
    for spec in STATE_MACHINES:
        assert spec.env_var in variables
    role_id = function["Role"]["Fn::GetAtt"][0]
    states: dict[str, set[str]] = {}
    for statement in _statements(resources, role_id):
        for action in _as_list(statement["Action"]):
            if action.startswith("states:"):
                for target in _as_list(statement["Resource"]):
                    states.setdefault(action, set()).add(json.dumps(target))
    assert set(states) == {
        "states:StartExecution",
        "states:DescribeExecution",
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "states:SendTaskHeartbeat",
    }
    assert len(states["states:StartExecution"]) == len(STATE_MACHINES)
    approval = logical_id_of(APPROVAL_WORKFLOW)
    for action in ("states:SendTaskSuccess", "states:SendTaskFailure"):
        (target,) = states[action]
        assert approval in target


def test_est_may_start_only_the_approval_workflow(synth: dict[str, Any]) -> None:
    resources = synth["templates"]["enrollment"]["Resources"]
    enrollment = synth["stacks"]["enrollment"]
    handler = enrollment.handlers[EST.logical_id].function
    function = resources[enrollment.get_logical_id(handler.node.default_child)]["Properties"]
    assert APPROVAL_WORKFLOW.env_var in function["Environment"]["Variables"]
    role_id = function["Role"]["Fn::GetAtt"][0]
    granted = [
        (action, json.dumps(statement["Resource"]))
        for statement in _statements(resources, role_id)
        for action in _as_list(statement["Action"])
        if action.startswith("states:")
    ]
    assert [action for action, _ in granted] == ["states:StartExecution"]
    assert logical_id_of(APPROVAL_WORKFLOW) in granted[0][1]


def test_sweep_and_bulk_run_their_maps_as_child_executions(synth: dict[str, Any]) -> None:
    """An inline Map's iterations fill the parent's 25,000-event history; these scale."""
    settings = Settings.load().workflows
    distributed = {
        s.logical_id for s in STATE_MACHINES if uses_distributed_map(s.definition(settings))
    }
    assert distributed == {"RenewalSweep", "BulkOperation"}
    resources = _resources(synth, "workflows")
    for spec in STATE_MACHINES:
        role_id = resources[logical_id_of(spec)]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
        actions = {
            action
            for statement in _statements(resources, role_id)
            for action in _as_list(statement["Action"])
        }
        assert (actions >= CHILD_EXECUTION_ACTIONS) == (spec.logical_id in distributed)


@pytest.mark.parametrize("spec", WORKFLOW_FUNCTIONS, ids=lambda s: s.logical_id)
def test_step_functions_have_time_for_a_page(synth: dict[str, Any], spec) -> None:
    function = _resources(synth, "workflows")[_function_ids(synth)[spec.logical_id]]
    assert function["Properties"]["Timeout"] == 300
    assert function["Properties"]["Handler"] == spec.handler
