"""What every subcommand does at start: settings from env and flags, logging, clean failures.

Also the stop event of the threaded commands (`telemetry simulate`, `telemetry dev`): SIGINT and
SIGTERM set it and the command winds down in its own order.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from functools import wraps
from types import FrameType
from typing import Any, ParamSpec, TypeVar

import click

from catalogue import Catalogue, CatalogueError, load_catalogue
from telemetry.errors import ServerError, SettingsError, StartupError
from telemetry.settings import Settings, load_settings

P = ParamSpec("P")
R = TypeVar("R")


# Errors that mean "the user must change something": shown as one line, exit status 2.
USER_ERRORS = (SettingsError, CatalogueError, ServerError, StartupError)


def clean_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn our start-up errors into one line on stderr and a non-zero exit, no traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as exc:
            click.echo(f"telemetry: {exc}", err=True)
            sys.exit(2)

    return wrapper


def start(**flags: object) -> tuple[Settings, Catalogue]:
    """Settings (flags win over env) and the catalogue, with logging set up."""
    settings = load_settings(**flags)
    setup_logging(settings.log_level)
    return settings, load_catalogue(settings.catalogue_dir)


def setup_logging(level: str) -> None:
    """One line per event: time, level, logger, message (external data quoted by callers)."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def stop_on_signals(stop: threading.Event) -> dict[int, Handler]:
    """SIGINT and SIGTERM set `stop`; the handlers they had, to put back when done."""

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Handler] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, handler)
    return previous
