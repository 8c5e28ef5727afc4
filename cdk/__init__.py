"""CDK constructs, one per concern, each built from a spec in `certplane.resources`.

Stacks in `stacks/` only compose these; nothing here restates a table key, index, handler or
bus name, so the account and `certplane dev` cannot drift apart.
"""
