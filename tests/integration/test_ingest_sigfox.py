"""Sigfox as it is, through `telemetry ingest` into a real InfluxDB: bit fields of Sigfox's own
grammar, callback bodies as DATA and DATA ADVANCED integrations send them, padded payloads.

Expected values are written here from DESIGN sections 1 and 2 (and Sigfox's and KCCS's
documented examples), or computed with plain bit arithmetic; never by the project's codec.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from catalogue import load_catalogue
from catalogue.codec import Value
from tests.support.cli import run_telemetry, telemetry_env
from tests.support.ingest import (
    Ingester,
    decode_wristband,
    ingest_metric,
    wristband_payload,
)
from tests.support.pipeline import Pipeline
from tests.support.poll import wait_for

pytestmark = pytest.mark.integration

# DESIGN section 2 / issue 10: (layout, payload published, values it must decode to, the payload
# the simulators' encoder gives for those values: unnamed bits come back as zeros).
BIT_CASES: dict[str, tuple[str, str, dict[str, Value], str]] = {
    "top_bit": ("s:0:uint:2:2", "04", {"s": 2}, "04"),
    "nibbles": ("hi:0:uint:4 lo:0:uint:4:3", "a5", {"hi": 10, "lo": 5}, "a5"),
    "default_top": ("s:0:uint:4:7", "a5", {"s": 10}, "a0"),
    "empty_endian": ("status:1:uint:4::3", "3ca5", {"status": 5}, "0005"),
    "kccs": (
        "speed::uint:8 direction::uint:4 status:1:uint:4::3",
        "3ca5",
        {"speed": 60, "direction": 10, "status": 5},
        "3ca5",
    ),
}


def write_types(folder: Path) -> Path:
    """One catalogue file per case, as a user adds a device type: no code."""
    folder.mkdir()
    for name, (layout, _, values, _) in BIT_CASES.items():
        tables = "".join(f'[fields.{f}]\nunit = ""\n' for f in values)
        (folder / f"{name}.toml").write_text(f'name = "{name}"\nlayout = "{layout}"\n{tables}')
    return folder


class Stack(Pipeline):
    """This test's path through the session servers; its ingesters export metrics."""

    def start(self, *, mqtt_url: str | None = None, **settings: Any) -> Ingester:
        return super().start(mqtt_url=mqtt_url, metrics=True, **settings)

    def send(self, ing: Ingester, kind: str, device: str, *bodies: dict[str, Any]) -> None:
        """Publish `bodies` and wait until this ingester has stored and acked each of them."""
        before = wait_for(lambda: (n := acked(ing)) >= 0 and (n,), what="ingest metrics")[0]
        self.publisher.many([(f"{self.prefix}/{kind}/{device}", b) for b in bodies])
        wait_for(
            lambda: acked(ing) >= before + len(bodies),
            what=f"{len(bodies)} messages stored and acked",
        )


def acked(ing: Ingester) -> float:
    """Messages this ingester process stored and acked; -1 while its metrics do not answer."""
    try:
        return ingest_metric(ing, "telemetry_ingest_acked_total")
    except OSError:  # just restarted: the endpoint is not up yet
        return -1


@pytest.fixture
def stack(pipeline: Pipeline) -> Stack:
    return Stack.like(pipeline)


def uplink(device: str, t: int, seq: int, data: str, **extra: object) -> dict[str, Any]:
    return {"device": device, "time": t, "seqNumber": seq, "data": data} | extra


# --- bit fields ------------------------------------------------------------------------------


def test_bit_fields_decode_as_sigfox_says_and_encode_back(stack: Stack, tmp_path: Path) -> None:
    folder = write_types(tmp_path / "types")
    ing = stack.start(catalogue_dir=folder)
    t = int(time.time()) - 60
    for i, (name, (_, payload, _, _)) in enumerate(BIT_CASES.items()):
        stack.send(ing, name, "B17", uplink("B17", t + i, i, payload, station="0A1B", rssi=-110))
    assert not stack.rows("SELECT * FROM rejected")
    catalogue = load_catalogue(folder)  # what `telemetry simulate` encodes with
    for name, (_, payload, expected, encoded) in BIT_CASES.items():
        (row,) = stack.rows(f"SELECT * FROM {name}")  # noqa: S608  # our own type names
        assert {f: row[f] for f in expected} == expected, name
        assert catalogue[name].encode(expected).hex() == encoded, name
        (raw,) = stack.rows(f"SELECT data FROM uplink WHERE type = '{name}'")  # noqa: S608
        assert raw["data"] == payload


def test_simulated_bit_fields_are_stored_as_a_plain_decoder_reads_them(
    stack: Stack, tmp_path: Path
) -> None:
    # the simulator encodes with the codec and ingest decodes with it: both must mean the bits
    # DESIGN 2 says, which this test reads with shifts and masks of its own
    folder = write_types(tmp_path / "types")
    ing = stack.start(catalogue_dir=folder)
    env = telemetry_env(
        mqtt_url=stack.mosquitto.url, mqtt_topic_prefix=stack.prefix, catalogue_dir=folder
    )
    report_path = tmp_path / "report.json"
    args = ["--types", "kccs,nibbles", "--devices", "2", "--loss", "0", "--seed", "3"]
    args += ["--backfill", "6h", "--backfill-only", "--report-json", str(report_path)]
    done = run_telemetry("simulate", *args, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    wait_for(
        lambda: acked(ing) >= report["messages"],
        timeout=60,
        what=f"{report['messages']} simulated messages stored",
    )
    assert not stack.rows("SELECT * FROM rejected")
    rows = stack.rows("SELECT data, type FROM uplink GROUP BY device")
    assert len(rows) == report["uplinks"]
    decoded = {
        (r["device"], r["time"]): r
        for kind in ("kccs", "nibbles")
        for r in stack.rows(f"SELECT * FROM {kind} GROUP BY device")  # noqa: S608
    }
    seen: set[tuple[int, ...]] = set()
    for raw in rows:
        b = bytes.fromhex(raw["data"])
        row = decoded[raw["device"], raw["time"]]
        if raw["type"] == "kccs":
            want = {"speed": b[0], "direction": b[1] >> 4, "status": b[1] & 0x0F}
        else:
            want = {"hi": b[0] >> 4, "lo": b[0] & 0x0F}
        assert {k: row[k] for k in want} == want, raw
        seen.add(tuple(want.values()))
    assert len(seen) > 10  # the values moved: a wrong bit would have shown


# --- stations --------------------------------------------------------------------------------

SCALE = "21ac012800db61"  # the reproduction: 86.2 kg, 29.6 %, 21.9, 97 %


def test_a_bare_copy_beside_a_data_callback_adds_no_station(stack: Stack) -> None:
    ing = stack.start()
    t = int(time.time()) - 30
    data = uplink("A1", t, 74, SCALE, station="3A5F", rssi=-126)
    bare = uplink("A1", t, 74, SCALE)  # the same transmission, no station nor rssi
    stack.send(ing, "scale", "A1", data, bare)
    (up,) = stack.rows("SELECT * FROM uplink")
    assert (up["stations"], up["rssi"], up["station"], up["station_ids"]) == (
        1,
        -126.0,
        "3A5F",
        "3A5F",
    )
    (point,) = stack.rows("SELECT * FROM scale")
    assert (point["stations"], point["rssi"], point["weight"]) == (1, -126.0, 86.2)


def test_bare_copies_merge_the_same_after_a_restart(stack: Stack) -> None:
    ing = stack.start()
    t = int(time.time()) - 40
    named = uplink("A2", t, 74, SCALE, station="3A5F", rssi=-126)
    bare = uplink("A2", t, 74, SCALE)
    later = uplink("A2", t + 1, 75, SCALE)  # a transmission no copy names a station for
    stack.send(ing, "scale", "A2", named, later)
    assert ing.stop() == 0
    ing.start()  # the merge cache is empty: what is stored must be merged
    stack.send(ing, "scale", "A2", bare, uplink("A2", t + 1, 75, SCALE, station="0C0C", rssi=-99))
    rows = stack.rows("SELECT stations, rssi, station, station_ids FROM uplink")
    assert [(r["stations"], r["rssi"], r["station"], r["station_ids"]) for r in rows] == [
        (1, -126.0, "3A5F", "3A5F"),
        (1, -99.0, "0C0C", "0C0C"),  # named at last: still one station, now with its RSSI
    ]


def test_data_advanced_body_counts_its_duplicates(stack: Stack) -> None:
    ing = stack.start()
    t = int(time.time()) - 20
    advanced = uplink(
        "A3",
        t,
        12,
        SCALE,
        duplicates=[
            {"bsId": "1B01", "rssi": -131.0, "nbRep": 1},
            {"bsId": "1B02", "rssi": -104.5, "nbRep": 3},
            {"bsId": "1B03", "rssi": -118.0, "nbRep": 2},
        ],
        lqi="Good",
        operatorName="SIGFOX_France",
    )
    stack.send(ing, "scale", "A3", advanced)
    (up,) = stack.rows("SELECT * FROM uplink")
    assert (up["stations"], up["rssi"], up["station"]) == (3, -104.5, "1B02")
    assert up["station_ids"] == "1B01,1B02,1B03"
    # the DATA callback of one of those stations, and a bare one: still three
    twin = uplink("A3", t, 12, SCALE, station="1B03", rssi=-118.0, duplicate=True)
    stack.send(ing, "scale", "A3", twin, uplink("A3", t, 12, SCALE))
    (up,) = stack.rows("SELECT * FROM uplink")
    assert (up["stations"], up["rssi"], up["station"]) == (3, -104.5, "1B02")
    (point,) = stack.rows("SELECT stations, rssi FROM scale")
    assert (point["stations"], point["rssi"]) == (3, -104.5)


def test_rssi_null_is_absent(stack: Stack) -> None:
    ing = stack.start()
    t = int(time.time()) - 20
    stack.send(
        ing,
        "scale",
        "A4",
        uplink("A4", t, 1, SCALE, station="0D01", rssi=None, snr=None),
        uplink("A4", t + 1, 2, SCALE, station="0D01", rssi="null", snr="null"),  # quoted
    )
    assert not stack.rows("SELECT * FROM rejected")
    rows = stack.rows("SELECT * FROM uplink")
    assert [(r["stations"], r["station"], r.get("rssi"), r.get("snr")) for r in rows] == [
        (1, "0D01", None, None),
        (1, "0D01", None, None),
    ]


# --- padded payloads -------------------------------------------------------------------------


def test_a_payload_padded_to_12_bytes_is_decoded_and_kept_whole(stack: Stack) -> None:
    ing = stack.start()
    t = int(time.time()) - 20
    nine = wristband_payload(72, 12345, 512, 2, 88)
    padded = nine + "a1b2c3"  # 12 bytes for a 9-byte layout
    short = nine[:-2]
    stack.send(
        ing,
        "wristband",
        "A5",
        uplink("A5", t, 3, padded, station="0E01", rssi=-100),
        uplink("A5", t + 1, 4, short, station="0E01", rssi=-100),
    )
    (point,) = stack.rows("SELECT * FROM wristband")
    want = decode_wristband(nine)
    assert {k: point[k] for k in want} == want
    (up,) = stack.rows("SELECT * FROM uplink")
    assert up["data"] == padded
    assert len(bytes.fromhex(up["data"])) == 12
    (reject,) = stack.rows("SELECT * FROM rejected")
    assert reject["reason"] == "payload_length"
    assert "needs at least 9" in reject["detail"]
