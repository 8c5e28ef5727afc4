"""Thin Lambda handlers: parse the AWS event, call the core, shape the response."""
