"""The validation ladder: each step passes or names the reason; the first failing step wins.

| step | reason            | checks                                                   |
| ---- | ----------------- | -------------------------------------------------------- |
| 1    | `topic`           | `<prefix>/<type>/<device>` with a 1-8 hex digit device   |
| 2    | `too_large`       | body at most 1 KiB                                       |
| 3    | `encoding`        | UTF-8                                                    |
| 4    | `json`            | one JSON object                                          |
| 5    | `envelope`        | keys and types of `sigfox.envelope.Uplink`; null: absent |
| 6    | `unknown_type`    | the topic's type is in the catalogue                     |
| 7    | `device_mismatch` | body `device` equals the topic's device                  |
| 8    | `future`          | `time` at most `future_tolerance` s ahead of our clock   |
| 9    | `payload_length`  | payload at least as long as the type's layout            |
| 10   | `decode`          | the codec accepts the payload                            |

Bytes past the layout are accepted and not decoded (devices often pad to 12 bytes, and Sigfox's
grammar reads only what it names): the whole payload stays in the raw uplink. Values outside
their field's range do not reject the uplink: they are left out and named.
Pure: no I/O; the clock is a parameter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

from pydantic import ValidationError

from catalogue import Catalogue, CodecError, DeviceType
from catalogue.devicetype import Decoded
from sigfox.envelope import MAX_BODY_BYTES, Uplink, absent_nulls
from sigfox.topics import parse_uplink_topic


class Accepted(NamedTuple):
    """An uplink that passed every step (a named tuple: the cheapest record to make)."""

    device: str
    dtype: DeviceType
    uplink: Uplink
    decoded: Decoded


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an uplink was refused; `device` when the topic or body named one."""

    reason: str
    detail: str
    device: str | None = None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{where}: {err['msg']}"


def _envelope(body: bytes, device: str) -> Uplink | Rejection:
    """Steps 3-5 one by one: the uplink, or the first step it fails."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("encoding", f"not UTF-8 at byte {exc.start}", device)
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: deeply nested brackets
        return Rejection("json", str(exc)[:200] or "nesting too deep", device)
    if not isinstance(doc, dict):
        return Rejection("json", f"expected an object, got {type(doc).__name__}", device)
    try:
        return Uplink.model_validate(absent_nulls(doc))
    except ValidationError as exc:
        return Rejection("envelope", _first_error(exc), device)


def validate(  # noqa: PLR0911  # one return per rung of the ladder
    topic: str,
    body: bytes,
    *,
    catalogue: Catalogue,
    prefix: str,
    now: float,
    future_tolerance: float,
) -> Accepted | Rejection:
    """Walk the ladder for one message."""
    parsed = parse_uplink_topic(prefix, topic)
    if parsed is None:
        return Rejection("topic", f"expected {prefix}/<type>/<device>")
    type_name, device = parsed
    if len(body) > MAX_BODY_BYTES:
        return Rejection("too_large", f"{len(body)} bytes, limit {MAX_BODY_BYTES}", device)
    try:
        # Steps 3-5 at once, in pydantic's Rust JSON parser: half the cost of the steps one by
        # one. Whatever it accepts the steps accept, with the same result (property-tested in
        # tests/unit/test_ingest_validate.py); when it refuses, the steps either say which one
        # fails or accept what only they take: an `rssi`/`snr` of "null" (a quoting template).
        uplink = Uplink.model_validate_json(body)
    except ValidationError:
        parsed_body = _envelope(body, device)
        if isinstance(parsed_body, Rejection):
            return parsed_body
        uplink = parsed_body
    if type_name not in catalogue:
        return Rejection("unknown_type", f"type {type_name!r} is not in the catalogue", device)
    dtype = catalogue[type_name]
    if uplink.device != device:
        return Rejection("device_mismatch", f"body device {uplink.device!r}", device)
    if uplink.time > now + future_tolerance:
        return Rejection("future", f"time {uplink.time} is {uplink.time - now:.0f} s ahead", device)
    payload = uplink.payload
    # DESIGN sections 1 and 2: shorter than the layout is refused; longer is padding, kept raw
    # in `uplink.data` (the whole hex) and not decoded, as Sigfox's own grammar does.
    if len(payload) < dtype.payload_length:
        return Rejection(
            "payload_length",
            f"{len(payload)} bytes, {type_name} needs at least {dtype.payload_length}",
            device,
        )
    try:
        decoded = dtype.decode(payload)
    except CodecError as exc:
        return Rejection("decode", str(exc), device)
    return Accepted(device, dtype, uplink, decoded)
