"""Sigfox callback shapes (api/callbacks.py) and credentials (api/auth.py): pure, no servers."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

from api.auth import matches, presented_key
from api.callbacks import from_query, from_request


def test_json_keeps_every_key_and_quoted_values() -> None:
    body = {"device": "1a2b", "time": "1716000000", "seqNumber": "1", "data": "00", "lqi": "Good"}
    cb = from_request("application/json", json.dumps(body).encode())
    assert json.loads(cb.body) == body
    assert (cb.device, cb.ack) == ("1a2b", False)


def test_form_and_query_parse_json_values_and_empty_optionals() -> None:
    fields = {
        "device": "1A2B",
        "ack": "true",
        "rssi": "",
        "snr": "null",
        "duplicates": '[{"bsId":"0A1B","rssi":-120.0,"nbRep":1}]',
        "computedLocation": '{"lat":43.6,"lng":1.44}',
        "station": "0A1B",
    }
    for cb in (
        from_request("application/x-www-form-urlencoded", urlencode(fields).encode()),
        from_query(urlencode(fields)),
    ):
        doc = json.loads(cb.body)
        assert doc["duplicates"] == [{"bsId": "0A1B", "rssi": -120.0, "nbRep": 1}]
        assert doc["computedLocation"] == {"lat": 43.6, "lng": 1.44}
        assert (doc["rssi"], doc["snr"], doc["station"]) == (None, None, "0A1B")
        assert cb.ack is True


def test_a_broken_json_value_is_left_for_the_ladder() -> None:
    cb = from_query(urlencode({"device": "1", "duplicates": "[{oops"}))
    assert json.loads(cb.body)["duplicates"] == "[{oops"


def test_bodies_that_are_no_json_object_are_passed_as_they_are() -> None:
    for raw in (b"[1, 2]", b"{not json", b"\xff\xfe"):
        cb = from_request("application/json", raw)
        assert (cb.body, cb.device, cb.ack) == (raw, None, False)


def test_content_type_missing_guesses_from_the_body() -> None:
    assert json.loads(from_request("", b'{"device": "1"}').body) == {"device": "1"}
    assert json.loads(from_request("text/plain", b"device=1&ack=1").body) == {
        "device": "1",
        "ack": "1",
    }


def test_ack_texts() -> None:
    for value, ack in (("true", True), ("TRUE", True), ("1", True), ("false", False), ("", False)):
        assert from_query(urlencode({"ack": value})).ack is ack
    assert from_request("application/json", b'{"ack": true}').ack is True


def test_bearer_and_basic_credentials() -> None:
    assert presented_key("Bearer k1") == "k1"
    assert presented_key("bearer   k1") == "k1"
    basic = base64.b64encode(b"sigfox:k:with:colons").decode()
    assert presented_key(f"Basic {basic}") == "k:with:colons"
    assert presented_key("Basic " + base64.b64encode(b"user-only").decode()) is None
    assert presented_key("Basic !!!") is None
    assert presented_key("Token k1") is None
    assert presented_key(None) is None
    assert presented_key("Bearer ") is None


def test_matches_any_key() -> None:
    assert matches("b", (b"a", b"b"))
    assert not matches("c", (b"a", b"b"))
    assert not matches("a", ())
