"""What Mosquitto does with a shared subscription when a member crashes (README, Scaling out).

Measured on the broker the project runs (Debian's 2.0.11): members are served round-robin; a
member that dies without DISCONNECT keeps its unacked messages and keeps being handed its share
of new ones, queued in its persistent session; none go to the other members, none are lost;
all arrive when a client with the same id comes back. This is a fact about the broker, kept as
a test so that an upgrade that changes it is noticed.
"""

from __future__ import annotations

from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from telemetry.servers import Mosquitto
from tests.support.poll import wait_for


def _member(broker: Mosquitto, name: str, topic: str, got: list[int], *, ack: bool) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=name,
        clean_session=False,
        protocol=mqtt.MQTTv311,
        manual_ack=True,
    )

    def on_message(c: mqtt.Client, _: object, msg: mqtt.MQTTMessage) -> None:
        got.append(int(msg.payload))
        if ack:
            c.ack(msg.mid, msg.qos)

    subscribed: list[bool] = []
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.append(True)
    client.connect(broker.host, broker.port, keepalive=60)
    client.subscribe(f"$share/g/{topic}/#", qos=1)
    client.loop_start()
    wait_for(lambda: subscribed, 10, f"{name} subscribed")
    return client


@pytest.mark.integration
def test_a_crashed_members_share_waits_for_it(
    make_mosquitto: Callable[..., Mosquitto], topic_prefix: str
) -> None:
    broker = make_mosquitto()
    a_got: list[int] = []
    b_got: list[int] = []
    a = _member(broker, f"{topic_prefix}-a", topic_prefix, a_got, ack=False)
    b = _member(broker, f"{topic_prefix}-b", topic_prefix, b_got, ack=True)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    try:
        for i in range(10):
            pub.publish(f"{topic_prefix}/x", str(i), qos=1).wait_for_publish(10)
        wait_for(lambda: len(a_got) + len(b_got) == 10, 10, "first ten delivered")
        assert a_got, "served round-robin"
        assert b_got, "served round-robin"
        a.loop_stop()
        sock = a.socket()
        assert sock is not None
        sock.close()  # a crash: no DISCONNECT, unacked messages left with the broker
        for i in range(10, 20):
            pub.publish(f"{topic_prefix}/x", str(i), qos=1).wait_for_publish(10)
        wait_for(lambda: len(b_got) >= 10, 10, "B's share")
        back: list[int] = []
        a2 = _member(broker, f"{topic_prefix}-a", topic_prefix, back, ack=True)
        wait_for(lambda: len(set(back) | set(b_got)) == 20, 10, "A's share on its return")
        a2.loop_stop()
        a2.disconnect()
        assert len(b_got) == 10, "the crashed member's share is not handed to the other"
        assert set(back) == set(range(20)) - set(b_got), "it waits for A, and nothing is lost"
    finally:
        pub.loop_stop()
        b.loop_stop()
