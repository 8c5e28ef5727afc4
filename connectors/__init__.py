"""Integrations: one module per target, fed by EventBridge (depend only on `certplane.events`)."""
