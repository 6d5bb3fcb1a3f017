"""The official Codex Python SDK against a real appserver subprocess (issue 12, Tests)."""
