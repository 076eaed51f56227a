"""The shapes `telemetry simulate --callback-url` sends (simulators/callbacks.py); no servers."""

from __future__ import annotations

import json

from catalogue import load_catalogue
from simulators.callbacks import (
    DOWNLINK_EVERY,
    CallbackSender,
    advanced_bodies,
    asks_downlink,
    uplink_bodies,
)
from simulators.fleet import Transmission, build_fleet, transmit


def _transmissions() -> list[Transmission]:
    (device,) = build_fleet(load_catalogue(), ["weather_station"], 1, seed=3, loss=0.0)
    return [transmit(device, k) for k in range(2 * DOWNLINK_EVERY)]


def test_uplink_bodies_are_one_per_station_with_quoted_values() -> None:
    for tx in _transmissions():
        docs = [json.loads(b) for b in uplink_bodies(tx, 1_716_000_000)]
        assert len(docs) == len(tx.receptions)
        for n, doc in enumerate(docs):
            assert all(isinstance(v, str) for v in doc.values()), doc
            assert doc["time"] == "1716000000"
            assert doc["seqNumber"] == str(tx.seq)
            assert doc["station"] == tx.receptions[n].station
            assert doc["duplicate"] == ("true" if n else "false")
            assert doc["ack"] == ("true" if n == 0 and asks_downlink(tx) else "false")


def test_advanced_body_lists_every_station_and_bidir_goes_first() -> None:
    asked = 0
    for tx in _transmissions():
        docs = [json.loads(b) for b in advanced_bodies(tx, 1_716_000_000)]
        advanced = docs[-1]
        assert "station" not in advanced
        assert [d["bsId"] for d in advanced["duplicates"]] == [r.station for r in tx.receptions]
        if asks_downlink(tx):
            asked += 1
            assert len(docs) == 2
            assert docs[0]["ack"] == "true"
        else:
            assert len(docs) == 1
    assert asked == 2  # one in DOWNLINK_EVERY sequence numbers


def test_callback_urls() -> None:
    sender = CallbackSender("http://h/v1/sigfox/", "k")
    templated = CallbackSender("http://h/cb/{type}?x=1", "k")
    try:
        assert sender.url_for("scale") == "http://h/v1/sigfox/scale"
        assert templated.url_for("scale") == "http://h/cb/scale?x=1"
    finally:
        sender.close()
        templated.close()
