"""The compose broker's security, on the real mosquitto: committed config, ACL and entrypoint.

The committed `deploy/mosquitto/mosquitto.conf` is run with only its container paths and port
rewritten for loopback, through the committed `entrypoint.sh` (which writes the service accounts).
"""

from __future__ import annotations

import os
import pwd
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from telemetry.errors import ServerError
from telemetry.servers import find_binary, free_port

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
PASSWORDS = {
    "ingest": "ingest-pw",
    "simulator": "simulator-pw",
    "api": "api-pw",
    "1A2B3C": "device-pw",
}
TIMEOUT = 10.0


@dataclass
class Broker:
    port: int
    log: Path


@dataclass
class Client:
    """A paho MQTT 5 client whose callbacks feed queues the test waits on."""

    client: mqtt.Client
    connack: queue.Queue[ReasonCode] = field(default_factory=queue.Queue)
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    acked: threading.Condition = field(default_factory=threading.Condition)
    messages: queue.Queue[str] = field(default_factory=queue.Queue)
    subacks: queue.Queue[list[ReasonCode]] = field(default_factory=queue.Queue)

    def publish(self, topic: str) -> ReasonCode:
        """Publish at QoS 1 and return the broker's PUBACK reason."""
        info = self.client.publish(topic, b'{"probe":1}', qos=1)
        with self.acked:
            assert self.acked.wait_for(lambda: info.mid in self.pubacks, TIMEOUT)
            return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        self.subacks.get(timeout=TIMEOUT)


Connect = Callable[..., Client]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _conf_for_loopback(tmp: Path, port: int, passwd: Path) -> Path:
    """The committed config with container paths and the port swapped for the test's own."""
    replaced = {
        "listener": f"listener {port} 127.0.0.1",
        "password_file": f"password_file {passwd}",
        "acl_file": f"acl_file {DEPLOY / 'acl'}",
        "persistence_location": f"persistence_location {tmp}/",
    }
    lines = [f"user {pwd.getpwuid(os.getuid()).pw_name}"]
    for line in (DEPLOY / "mosquitto.conf").read_text().splitlines():
        key = line.split(" ", 1)[0]
        lines.append(replaced.pop(key, line))
    assert not replaced, f"the committed config lost {sorted(replaced)}"
    conf = tmp / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    try:
        mosquitto = find_binary("mosquitto")
        find_binary("mosquitto_passwd")
    except ServerError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    port = free_port()
    passwd = tmp_path / "passwd"
    conf = _conf_for_loopback(tmp_path, port, passwd)
    # A device account, added the way deploy/README.md tells an operator to.
    passwd.touch()
    subprocess.run(
        [find_binary("mosquitto_passwd"), "-b", str(passwd), "1A2B3C", PASSWORDS["1A2B3C"]],
        check=True,
    )
    env = os.environ | {
        "MOSQUITTO_PASSWD_FILE": str(passwd),
        "MOSQUITTO_CONF": str(conf),
        "MQTT_INGEST_PASSWORD": PASSWORDS["ingest"],
        "MQTT_SIMULATOR_PASSWORD": PASSWORDS["simulator"],
        "MQTT_API_PASSWORD": PASSWORDS["api"],
        "PATH": f"{Path(mosquitto).parent}:{os.environ.get('PATH', '')}",
    }
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [shutil.which("sh") or "/bin/sh", str(DEPLOY / "entrypoint.sh")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not _accepts(port):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield Broker(port, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


@pytest.fixture
def connect(broker: Broker) -> Iterator[Connect]:
    clients: list[mqtt.Client] = []

    def make(user: str | None, password: str | None = None) -> Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        state = Client(c)
        if user is not None:
            c.username_pw_set(user, password if password is not None else PASSWORDS[user])

        def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
            state.connack.put(rc)

        def on_publish(_c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
            with state.acked:
                state.pubacks[mid] = rc
                state.acked.notify_all()

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            state.messages.put(msg.topic)

        def on_subscribe(
            _c: mqtt.Client, _u: object, _mid: int, rcs: list[ReasonCode], _p: object
        ) -> None:
            state.subacks.put(rcs)

        c.on_connect = on_connect
        c.on_publish = on_publish
        c.on_message = on_message
        c.on_subscribe = on_subscribe
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        clients.append(c)
        return state

    yield make
    for c in clients:
        c.disconnect()
        c.loop_stop()


def _connected(state: Client) -> Client:
    rc = state.connack.get(timeout=TIMEOUT)
    assert not rc.is_failure, str(rc)
    return state


def _drain(state: Client) -> list[str]:
    seen = []
    while not state.messages.empty():
        seen.append(state.messages.get_nowait())
    return seen


def test_anonymous_and_wrong_password_are_refused(connect: Connect) -> None:
    make = connect
    for rc in (
        make(None).connack.get(timeout=TIMEOUT),
        make("ingest", "wrong").connack.get(timeout=TIMEOUT),
    ):
        assert rc.is_failure
        assert str(rc) in ("Not authorized", "Bad user name or password")


def test_device_publishes_only_its_own_uplinks(connect: Connect) -> None:
    make = connect
    ingest = _connected(make("ingest"))
    ingest.subscribe("uplink/#")
    device = _connected(make("1A2B3C"))
    device.subscribe("uplink/#")

    assert str(device.publish("uplink/wristband/FFFF01")) == "Not authorized"
    assert str(device.publish("elsewhere/1A2B3C")) == "Not authorized"
    assert not device.publish("uplink/wristband/1A2B3C").is_failure
    assert not device.publish("uplink/scale/1A2B3C").is_failure
    # Messages from one publisher reach a subscriber in order: when the last allowed one has
    # arrived, a forbidden one published before it would have too.
    got = [ingest.messages.get(timeout=TIMEOUT) for _ in range(2)]
    assert got == ["uplink/wristband/1A2B3C", "uplink/scale/1A2B3C"]
    assert _drain(ingest) == []
    # The broker queues a delivery to the device before it sends the device's next PUBACK, so
    # after one more round trip anything the device may read would be in its queue.
    device.publish("uplink/wristband/1A2B3C")
    assert _drain(device) == []


def test_ingest_may_read_but_never_publish(connect: Connect) -> None:
    make = connect
    ingest = _connected(make("ingest"))
    ingest.subscribe("$share/ingesters/uplink/+/+")  # DESIGN section 7: shared subscription
    for topic in ("uplink/wristband/1A2B3C", "uplink/x/ingest", "uplink/x/INGEST", "other"):
        assert str(ingest.publish(topic)) == "Not authorized", topic
    simulator = _connected(make("simulator"))
    assert not simulator.publish("uplink/weather_station/00C0FFEE").is_failure
    assert ingest.messages.get(timeout=TIMEOUT) == "uplink/weather_station/00C0FFEE"
    assert _drain(ingest) == []


def test_api_reads_the_ingesters_events(connect: Connect) -> None:
    """The API's account reads `events/#` (its stream) and cannot forge the ingester's events."""
    make = connect
    api = _connected(make("api"))
    api.subscribe("events/#")
    assert str(api.publish("events/wristband/1A2B3C/up")) == "Not authorized"
    ingest = _connected(make("ingest"))
    assert not ingest.publish("events/wristband/1A2B3C/up").is_failure
    assert api.messages.get(timeout=TIMEOUT) == "events/wristband/1A2B3C/up"
    assert _drain(api) == []


def test_ingest_publishes_events(connect: Connect) -> None:
    """DESIGN section 9: the ingester's account writes `events/#`, and only that."""
    make = connect
    ingest = _connected(make("ingest"))
    for topic in ("events/wristband/1A2B3C/up", "events/rejected/json"):
        assert not ingest.publish(topic).is_failure, topic
    assert str(ingest.publish("eventsx/wristband/1A2B3C/up")) == "Not authorized"


def test_simulator_publishes_for_any_device_and_reads_nothing(connect: Connect) -> None:
    make = connect
    simulator = _connected(make("simulator"))
    simulator.subscribe("uplink/#")
    assert str(simulator.publish("elsewhere/1")) == "Not authorized"
    for device in ("1A2B3C", "FFFF01", "0"):
        assert not simulator.publish(f"uplink/plant_sensor/{device}").is_failure
    simulator.publish("uplink/plant_sensor/1")
    assert _drain(simulator) == []


def test_api_publishes_uplinks_and_downlink_events_and_reads_events(connect: Connect) -> None:
    make = connect
    ingest = _connected(make("ingest"))
    ingest.subscribe("uplink/+/+")
    api = _connected(make("api"))
    api.subscribe("events/#")
    api.subscribe("uplink/#")  # granted, but delivers nothing: the API may not read uplinks
    for topic in ("events/wristband/1A2B3C/up", "events/rejected/json", "downlink/1A2B3C", "x"):
        assert str(api.publish(topic)) == "Not authorized", topic
    assert not api.publish("uplink/wristband/1A2B3C").is_failure
    assert ingest.messages.get(timeout=TIMEOUT) == "uplink/wristband/1A2B3C"
    assert not api.publish("events/wristband/1A2B3C/downlink").is_failure
    assert api.messages.get(timeout=TIMEOUT) == "events/wristband/1A2B3C/downlink"
    assert _drain(api) == []
