"""Fault scenarios, security checks and their tools (fault proxy, ledger and oracle)."""
