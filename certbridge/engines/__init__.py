"""CA engines, registered by type so configuration can name them."""

from certbridge.engines.local import LocalCAEngine

ENGINE_TYPES = {"local": LocalCAEngine}

__all__ = ["ENGINE_TYPES", "LocalCAEngine"]
