"""The `telemetry` console script: one group, each subcommand imported only when it runs."""

from __future__ import annotations

import importlib

import click

# name -> "module:attribute" of a click command; importing lazily keeps `--help` fast and
# means `telemetry simulate` does not load FastAPI.
SUBCOMMANDS = {
    "ingest": "ingest.command:ingest",
    "api": "api.command:api",
    "simulate": "simulators.command:simulate",
    "dev": "telemetry.dev.command:dev",
    "dashboards": "dashboards.command:dashboards",
    "redecode": "ingest.redecode:redecode",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)  # noqa: S101  # a wiring mistake, caught by tests
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sigfox-telemetry")
def main() -> None:
    """Sigfox-style telemetry backend: MQTT uplinks in, InfluxDB points out, an API on top.

    Settings come from TELEMETRY_* environment variables (or a .env file); flags override them.
    """
