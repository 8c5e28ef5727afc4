"""The `certplane` command: `certplane dev` and a client for the management API."""
