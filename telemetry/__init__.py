"""The `telemetry` command and what every part shares at start: settings, logging, local servers."""
