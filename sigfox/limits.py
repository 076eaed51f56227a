"""Sigfox's numbers, defined once: every module that needs one imports it from here.

- `SEQ_MODULO`: sequence numbers are 12-bit counters, 0..4095, then 0 again;
- `DAILY_UPLINKS`: uplinks a day a device may send (ETSI duty cycle in Europe);
- `MAX_PAYLOAD_BYTES`: an uplink's payload is at most 12 bytes (24 hex digits);
- device ids are 1 to 8 hex digits, in any case on the way in, stored upper-case (DESIGN 3).
No imports beyond `re`, so the catalogue, InfluxDB and simulator packages can use it freely.
"""

from __future__ import annotations

import re

SEQ_MODULO = 4096
DAILY_UPLINKS = 140
MAX_PAYLOAD_BYTES = 12
MAX_DEVICE_DIGITS = 8

# As a pattern string, for pydantic's StringConstraints and re.fullmatch (any case).
DEVICE_ID = rf"^[0-9A-Fa-f]{{1,{MAX_DEVICE_DIGITS}}}$"
# Compiled, `\Z` so that a trailing newline never passes (topics, callbacks).
DEVICE_ID_RE = re.compile(rf"^[0-9A-Fa-f]{{1,{MAX_DEVICE_DIGITS}}}\Z")
# As stored and queried: upper case only (the API upper-cases before it checks).
STORED_DEVICE_ID_RE = re.compile(rf"^[0-9A-F]{{1,{MAX_DEVICE_DIGITS}}}\Z")
# A payload as hex text: whole bytes, none to MAX_PAYLOAD_BYTES of them.
PAYLOAD_HEX = rf"^([0-9A-Fa-f]{{2}}){{0,{MAX_PAYLOAD_BYTES}}}$"
