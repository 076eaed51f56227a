"""Command-line options that `telemetry simulate` and `telemetry dev` both take, defined once.

Each flag keeps one name, one type and one range in both commands (DESIGN sections 5 and 6);
the default and the help text are each command's own, because `telemetry dev` runs a demo
(several devices a type, 60 times faster) where `telemetry simulate` runs real devices.
`Duration` is the click type of every duration flag, over the one parser of catalogue/durations.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from catalogue.durations import HINT, parse_seconds

F = TypeVar("F", bound=Callable[..., Any])


class Duration(click.ParamType[float]):
    """`90`, `30s`, `10m`, `2h`, `7d` -> seconds."""

    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        seconds = parse_seconds(value)
        if seconds is None:
            self.fail(f"{value!r} is not {HINT}", param, ctx)
        return seconds


def devices_option(*, most: int, default: int, help: str) -> Callable[[F], F]:
    """`--devices N`: how many devices of each type, at least one."""
    return click.option(
        "--devices",
        type=click.IntRange(1, most),
        default=default,
        show_default=True,
        help=help,
    )


def speed_option(*, default: float, help: str) -> Callable[[F], F]:
    """`--speed N`: devices' rhythms N times faster, never slower than real time."""
    return click.option(
        "--speed",
        type=click.FloatRange(min=1.0),
        default=default,
        show_default=True,
        help=help,
    )


def seed_option(*, help: str) -> Callable[[F], F]:
    """`--seed N`: the same seed gives the same devices and values."""
    return click.option("--seed", type=int, default=1, show_default=True, help=help)
