"""The management API: Powertools REST resolver, pydantic models, JSON error envelope."""

from certplane.api.app import ManagementApi

__all__ = ["ManagementApi"]
