"""Sigfox callback requests (JSON, form, query string) turned into the uplink body of DESIGN 1.

Pure: no I/O. The result goes through ingest's validation ladder (ingest/validate.py) as it
is: this module converts shapes, it checks nothing the ladder checks.

What Sigfox sends (its callback documentation): a template the user wrote, in which every
value is usually quoted (`"seqNumber": "{seqNumber}"`), so numbers and booleans arrive as
strings; the ladder takes numeric strings already. A form or query string has only strings:
`duplicates` and `computedLocation` (DATA ADVANCED) are JSON texts there and are parsed. An
optional value Sigfox has none for comes as an empty string or `null`; it becomes JSON null,
which the ladder reads as absent. Keys we do not use (`ack`, `lqi`, `linkQuality`,
`operatorName`, ...) stay in the body, which ingest keeps raw.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

# Keys whose value Sigfox expands to JSON (a list, an object): parsed when they come as text.
JSON_VALUED = ("duplicates", "computedLocation")
# Optional keys of DESIGN 1 that Sigfox leaves empty (or writes `null`) when it has no value.
OPTIONAL = ("station", "rssi", "snr", "duplicate", "duplicates", "deviceTypeId")
NO_VALUE = ("", "null", "None")
# Texts of `ack` that mean true, as Sigfox's {ack} expands, quoted or not.
TRUE_TEXTS = ("true", "1")


@dataclass(frozen=True, slots=True)
class Callback:
    """One callback: the uplink body to validate and publish, and what the answer needs."""

    body: bytes  # UTF-8 JSON object, or the request's own bytes when they are no JSON object
    device: str | None  # the body's `device` as given, when it is a string
    ack: bool  # a BIDIR callback: the device waits for a downlink


def _is_json(content_type: str, raw: bytes) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        return False
    if media == "application/json" or media.endswith("+json"):
        return True
    # No or another content type (Sigfox's "text/plain" option, say): guess from the body.
    return raw.lstrip()[:1] in (b"{", b"[")


def _normalise(doc: dict[str, Any], *, from_text: bool) -> dict[str, Any]:
    out = dict(doc)
    for key in JSON_VALUED:
        value = out.get(key)
        if from_text and isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):  # else left as text: the ladder names it
                out[key] = json.loads(value)
    for key in OPTIONAL:
        if isinstance(out.get(key), str) and out[key].strip() in NO_VALUE:
            out[key] = None
    return out


def _ack(doc: dict[str, Any]) -> bool:
    value = doc.get("ack")
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and value.strip().lower() in TRUE_TEXTS


def from_request(content_type: str, raw: bytes) -> Callback:
    """A POST body, by its content type (JSON or form)."""
    if _is_json(content_type, raw):
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            return Callback(raw, None, ack=False)  # the ladder says why: encoding or json
        if not isinstance(doc, dict):
            return Callback(raw, None, ack=False)
        return _callback(_normalise(doc, from_text=False))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Callback(raw, None, ack=False)
    return from_query(text)


def from_query(query: str) -> Callback:
    """A query string (GET) or a form body: every value a string; the last of a repeated key."""
    doc: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    return _callback(_normalise(doc, from_text=True))


def _callback(doc: dict[str, Any]) -> Callback:
    device = doc.get("device")
    body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    return Callback(body, device if isinstance(device, str) else None, ack=_ack(doc))
