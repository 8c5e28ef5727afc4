"""Step Functions workflows: renewal sweep, revocation, approval-gated issuance, bulk operations.

`definitions` builds the JSONPath ASL (CDK and `certplane dev` both use it); the other modules
are the steps the state machines' Lambda tasks run.
"""
