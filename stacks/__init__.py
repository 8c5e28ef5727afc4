"""One CloudFormation stack per layer (DESIGN.md §1); stacks compose constructs from `cdk/`."""
