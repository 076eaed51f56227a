"""What every subcommand does at start: settings from env and flags, logging, clean failures."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

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
