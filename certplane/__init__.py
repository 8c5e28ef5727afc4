"""certplane: the certificate lifecycle core (inventory, policy, lifecycle, events)."""

__version__ = "0.1.0"
