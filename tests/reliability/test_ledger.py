"""The ledger and its oracle: it must catch loss, silent loss, forgery and corruption."""

from __future__ import annotations

import pytest

from telemetry.servers import Influxd, Mosquitto
from tests.support.influx import write_lines
from tests.support.ledger import (
    DeviceStream,
    LedgerPublisher,
    compare,
    device_ids,
    seq_gap_loss,
    weather_payload,
)


def test_seq_gap_loss_counts_across_the_wrap() -> None:
    assert seq_gap_loss([4094, 4095, 1, 2]) == 1  # 0 missing
    assert seq_gap_loss([10, 11, 12]) == 0
    assert seq_gap_loss([10, 14]) == 3
    assert seq_gap_loss([14, 10]) == 0  # a reordering is not a loss


def test_weather_payload_is_nine_bytes() -> None:
    assert len(bytes.fromhex(weather_payload(4095))) == 9


@pytest.mark.integration
def test_oracle_sorts_loss_forgery_and_corruption(
    mosquitto: Mosquitto, influxd: Influxd, database: str, topic_prefix: str
) -> None:
    devices = device_ids(5)
    streams = [DeviceStream(d) for d in devices]
    with LedgerPublisher(mosquitto.host, mosquitto.port, topic_prefix) as pub:
        pub.run(streams, rate=1000, duration=0.05)  # 50 uplinks, 10 per device
        assert pub.wait_all_acked(10)
    assert len(pub.acked) == 50
    # Store what an ingester would, by hand, minus: one uplink in the middle of device 0's
    # stream (a visible gap), the last of device 1 (silent: nothing after it), and with one
    # payload changed and one point that was never published.
    ups = sorted(pub.acked.values(), key=lambda u: (u.device, u.time))
    by_dev = {d: [u for u in ups if u.device == d] for d in devices}
    gap, silent, corrupt = by_dev[devices[0]][4], by_dev[devices[1]][-1], by_dev[devices[2]][0]
    lines = []
    for u in ups:
        if u in (gap, silent):
            continue
        data = "00" * 9 if u == corrupt else u.data
        lines.append(
            f'uplink,device={u.device},type=weather_station seq={u.seq}i,data="{data}" {u.time}'
        )
    lines.append(f'uplink,device={devices[3]},type=weather_station seq=7i,data="00" 1000')
    write_lines(influxd, database, lines)

    rep = compare("oracle self-test", influxd, database, pub)
    rep.print()
    assert (rep.acked, rep.stored, rep.missing) == (50, 48, 2)
    assert (rep.missing_as_gaps, rep.silent_loss) == (1, 1)
    assert rep.forged == 1
    assert rep.corrupted == 1
