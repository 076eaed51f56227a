"""The storage layout of DESIGN section 3, in one place for ingest, API, dashboards and tests.

measurement `<type>` (one per device type)
    tags: device
    fields: the decoded values (typed by the catalogue), seq (int), rssi, snr, stations (int)
    time: the uplink's `time`, in seconds
measurement `uplink` (every accepted message, raw)
    tags: device, type
    fields: data (hex: the whole payload, bytes past the type's layout included), seq (int),
            rssi, snr, stations (int), station (absent when no station was named),
            station_ids, out_of_range (int), device_type_id (Sigfox's deviceTypeId, when the
            body has one)
    time: the uplink's `time`, in seconds
measurement `event` (DESIGN section 10: one point per change of status or alarm)
    tags: device, type, kind (`state`, `offline`, `battery_low`)
    fields: state (the new state, or `raised`/`cleared`), previous, detail
    time: the moment the rule was crossed (not when it was noticed), so that every process
          noticing one change writes the same point
measurement `uplink_copy` (only with a share group: ingest's own, not DESIGN's)
    tags: device, station
    fields: seq (int), rssi, snr (those of that station's copy, when it had them)
    time: the uplink's `time`, in seconds
    Each named station's copy of a transmission is its own series, so the copies that several
    ingesters of a share group wrote add up in InfluxDB where one `uplink` point overwrites the
    other; each member reads them back after its write and rewrites `uplink` and `<type>`
    when the union differs (ingest/processor.py, `_verify`).
measurement `rejected`
    tags: reason, device (when known)
    fields: topic, body (cut at 1 KiB), detail
    time: the receipt time in nanoseconds, so no two rejects overwrite each other

- A point's identity is (measurement, device, time): a redelivered or re-merged message
  overwrites itself, never adds a row (`station` is a field, never a tag, for that reason).
- `stations` is the number of distinct stations named by the transmission's copies (`station`
  or `duplicates`), 1 when none names one; `station_ids` is their sorted, comma-separated ids
  (empty when none is named), so a copy arriving after a restart can still be merged.
  `rssi`/`snr`/`station` are those of the best (highest RSSI) named station; with none named,
  `rssi`/`snr` of a copy and no `station`.
- Loss is not stored: it is derived from `seq` ordered by `time`, wrap-aware (see
  `sigfox.sequence`), which stays right under reordering and with several ingesters.
- `out_of_range` counts the decoded values left out of the `<type>` point for being outside
  their field's valid range.
"""

from __future__ import annotations

UPLINK = "uplink"
UPLINK_COPY = "uplink_copy"
REJECTED = "rejected"
EVENT = "event"

TAG_DEVICE = "device"
TAG_TYPE = "type"
TAG_REASON = "reason"
TAG_KIND = "kind"
TAG_STATION = "station"

BODY_KEEP_BYTES = 1024  # DESIGN section 3: rejected bodies are cut at 1 KiB

# Rejection reasons: the first failing step of the validation ladder (ingest/validate.py),
# then those found after it (rate limit, InfluxDB, an ingester bug).
REJECT_REASONS = (
    "topic",  # not <prefix>/<type>/<device>
    "too_large",  # body over 1 KiB
    "encoding",  # not UTF-8
    "json",  # not a JSON object
    "envelope",  # missing or malformed keys (pydantic)
    "unknown_type",  # type not in the catalogue
    "device_mismatch",  # body device differs from the topic device
    "future",  # time too far ahead of the receiver's clock
    "payload_length",  # data shorter than the type's layout (longer is padding: accepted)
    "decode",  # payload the codec refuses
    "rate_limited",  # device over its uplink rate
    "write_refused",  # InfluxDB refused the line for its content (400 partial write)
    "internal",  # an ingester bug on this message (logged with its traceback), not the input
)
