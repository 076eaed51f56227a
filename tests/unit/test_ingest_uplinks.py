"""Golden uplink cases: topic and body in, the exact line-protocol points or a reject out.

Each `tests/cases/uplinks/<case>.toml` pins the validation ladder (`ingest/validate.py`), the
merge of copies, the points (`ingest/points.py`) and their line protocol
(`influx/lineprotocol.py`) together, through the processing stage as ingest runs it, without
servers (no stored-copy lookup). A case file:

    [settings]             # optional: Settings overrides (e.g. the rate limit)
    [[uplink]]             # one or more messages, in arrival order
    topic = "uplink/wristband/1A2B"
    body = '{"device": ...}'   # or body_hex = "ff00" for bytes that are not text
    [expect]
    points = ["...", "..."]    # every line written, exactly (any order); and/or
    reject = "encoding"        # one `rejected` point with this reason ...
    device = "1A2B"            # ... this device tag (absent when the topic named none)
    detail = "not UTF-8"       # ... and a detail containing this

The clock stands at `NOW`; message i (from 0) is received at `NOW` s + i ns. Types in
`tests/cases/uplinks/types/` are added to the built-in catalogue.
"""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import pytest

from catalogue import Catalogue, load_catalogue
from influx.schema import REJECT_REASONS
from ingest.batcher import Batch
from ingest.metrics import Metrics
from ingest.processor import Processor
from ingest.received import Incoming
from telemetry.settings import Settings

CASES_DIR = Path(__file__).parent.parent / "cases" / "uplinks"
CASES = sorted(CASES_DIR.glob("*.toml"))
NOW = 1_716_000_000
NS = 1_000_000_000
# Reached only with InfluxDB answering (a refused write), so not in these cases.
NEEDS_INFLUXDB = {"write_refused"}
# An ingester bug, never made by input: tests/unit/test_ingest_processor.py forces one.
NOT_FROM_INPUT = {"internal"}


def _catalogue() -> Catalogue:
    return load_catalogue(CASES_DIR / "types")


def _incoming(i: int, message: dict[str, Any]) -> Incoming:
    body = bytes.fromhex(message["body_hex"]) if "body_hex" in message else message["body"].encode()
    return Incoming(message["topic"], body, i + 1, 1, 1, NOW * NS + i)


def _ingest(case: dict[str, Any]) -> tuple[list[str], list[int]]:
    """The lines one batch of the case's messages writes, and the mids it acks."""
    processor = Processor(
        Settings(**case.get("settings", {})),
        _catalogue(),
        Metrics(),
        clock=lambda: float(NOW),
    )
    chunk = asyncio.run(processor.process([_incoming(i, m) for i, m in enumerate(case["uplink"])]))
    batch = Batch()
    batch.add(chunk)  # as the batcher does: a later line for one point replaces the earlier
    return list(batch.points.values()), [mid for mid, _, _ in batch.acks]


def _tags(line: str) -> dict[str, str]:
    series = line.split(" ", 1)[0]
    return dict(pair.split("=", 1) for pair in series.split(",")[1:])


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden_uplink_case(path: Path) -> None:
    case = tomllib.loads(path.read_text(encoding="utf-8"))
    expect = case["expect"]
    lines, acks = _ingest(case)
    assert acks == list(range(1, len(case["uplink"]) + 1))  # every message acked, once
    if "points" in expect:
        assert sorted(lines) == sorted(expect["points"])
    if "reject" in expect:
        rejected = [line for line in lines if line.startswith("rejected,")]
        assert len(rejected) == 1, rejected
        tags = _tags(rejected[0])
        assert tags["reason"] == expect["reject"]
        assert tags.get("device") == expect.get("device")
        assert expect.get("detail", "") in rejected[0]
        if "points" not in expect:  # a rejected message writes nothing else
            assert lines == rejected
    assert "points" in expect or "reject" in expect, "a case must expect something"


def test_the_cases_cover_every_type_and_every_reason_reachable_without_influxdb() -> None:
    types: set[str] = set()
    reasons: set[str] = set()
    for path in CASES:
        expect = tomllib.loads(path.read_text(encoding="utf-8"))["expect"]
        types.update(line.split(",", 1)[0] for line in expect.get("points", []))
        if "reject" in expect:
            reasons.add(expect["reject"])
    builtin = set(load_catalogue(None).types)
    assert builtin <= types, builtin - types
    assert reasons == set(REJECT_REASONS) - NEEDS_INFLUXDB - NOT_FROM_INPUT
