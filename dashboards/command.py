"""`telemetry dashboards`: writes Grafana dashboards and provisioning files from the catalogue."""

from __future__ import annotations

from pathlib import Path

import click

from dashboards.generator import write
from telemetry.runtime import clean_errors, start

# The committed copy, which docker-compose.yml mounts into Grafana.
DEFAULT_OUT = Path(__file__).with_name("grafana")


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Folder to write dashboards/ and provisioning/ into.",
)
@click.option(
    "--catalogue-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Extra device types (TELEMETRY_CATALOGUE_DIR).",
)
@clean_errors
def dashboards(out: Path, catalogue_dir: Path | None) -> None:
    """Write the Grafana dashboards (fleet overview, one per device type) from the catalogue."""
    _, catalogue = start(catalogue_dir=catalogue_dir)
    try:
        written = write(out, catalogue)
    except OSError as exc:
        raise click.ClickException(f"cannot write to {str(out)!r}: {exc.strerror}") from None
    click.echo(f"wrote {len(written)} files for {len(catalogue)} device types under {out}")
