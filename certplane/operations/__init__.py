"""Operator tools that talk to the deployed AWS account directly (boto3), not to the API."""
