"""The errors every command shares: each means "the user must change something".

They live on the ground floor, apart from the modules that read settings (telemetry/settings.py),
start subcommands (telemetry/runtime.py) or launch local servers (telemetry/servers.py), so that
any module can raise one without importing those. `str()` is the one line shown to the user;
`telemetry.runtime.clean_errors` prints it and exits with status 2, never a traceback.
"""

from __future__ import annotations


class SettingsError(Exception):
    """A setting is missing or wrong; `str()` is the one line shown to the user."""


class ServerError(Exception):
    """A local server could not be found or started; the message says what to do."""


class StartupError(Exception):
    """Any other condition that stops a command at start with one clear line."""
