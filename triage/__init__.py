"""The decision tree, verdicts, evidence bundles and safe actions."""
