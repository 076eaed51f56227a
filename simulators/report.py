"""What `telemetry simulate` tells its user: notes on stderr, the backfill's progress, the counts.

The final counts go out as one line for people and, with `--report-json`, as a file for scripts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from simulators.callbacks import CallbackSender
from simulators.publisher import Publisher
from simulators.runner import Counts


def note(message: str) -> None:
    click.echo(f"telemetry simulate: {message}", err=True)


def report(counts: Counts, publisher: Publisher | CallbackSender, path: Path | None) -> None:
    """One line for people, and optionally a JSON file for scripts."""
    if isinstance(publisher, CallbackSender):
        note(
            f"sent {counts.uplinks} uplinks as {publisher.published} callbacks; "
            f"{publisher.acked} answered 2xx, {publisher.failed} refused or given up, "
            f"{publisher.retried} retries, {publisher.downlinks} downlinks received; "
            f"{counts.lost} of {counts.transmissions} transmissions lost on the radio"
        )
    else:
        note(
            f"published {counts.uplinks} uplinks as {publisher.published} messages (one per "
            f"station); the broker acknowledged {publisher.acked}; {counts.lost} of "
            f"{counts.transmissions} transmissions lost on the radio"
        )
    if path is not None:
        data = {
            "uplinks": counts.uplinks,
            "messages": publisher.published,
            "acknowledged": publisher.acked,
            "transmissions": counts.transmissions,
            "lost": counts.lost,
            "per_type": counts.per_type,
        }
        if isinstance(publisher, CallbackSender):
            data |= {"failed": publisher.failed, "downlinks": publisher.downlinks}
        path.write_text(json.dumps(data, indent=2) + "\n")


def progress_bar(done: int, total: int) -> None:
    width = 30
    frac = min(1.0, done / total) if total else 1.0
    bar = "#" * int(frac * width)
    sys.stderr.write(f"\rbackfill [{bar:<{width}}] {frac:4.0%} {done}/{total} uplinks")
    sys.stderr.flush()
