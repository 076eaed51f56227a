"""Test helpers shared by the integration tests (real servers, no fakes)."""
