"""The ingester: MQTT uplinks in; validated, merged, batched; InfluxDB points out, at least once.

The flow, one stage per module, each joined to the next by a bounded queue (service.py):

    receive ─list[Incoming]─► process ─Processed─► batch ─Batch─► store ─acks─► ack
    mqtt.py                   processor.py         batcher.py     sink.py       mqtt.py
    (MqttSource,              (Processor:          (Batcher)      (Storer, Sink ─► InfluxDB
     mqttshim.py,              validate.py,                        or spool.py)
     frames.py,
     received.py)              gaps.py, ratelimit.py,
                               merge.py + lookup.py,
                               points.py)

- receive: `mqtt.py` keeps the broker session and hands on `Incoming` records (`received.py`);
  `mqttshim.py` holds every private aiomqtt/paho name it needs (block reading, packets split by
  `frames.py`, manual acks); `ack` is its `MqttSource.ack`, called by the `Storer` once a batch
  is in InfluxDB or fsynced in the spool.
- process: `processor.py` validates (`validate.py`), counts gaps (`gaps.py`), rate-limits
  (`ratelimit.py`), merges copies (`merge.py`, which says when the stored point is read through
  `lookup.py`) and encodes points and reject records (`points.py`).
- batch: `batcher.py`; store: `sink.py` (`Storer`, then `Sink`: direct write, spool, replay).
- Side branch, events (DESIGN section 9): the processor makes each event (`eventbodies.py`)
  as the two halves of its PUBLISH packet (`eventpackets.py`); the `Storer` hands each stored
  batch's events to `events.py` (`EventPublisher`), which sends them on a connection of its
  own (`eventlink.py`).
- The status watcher (`watcher.py`) runs beside the flow: silence and low batteries, as events.
- Around it: `service.py` wires and shuts down the stages, `command.py` is `telemetry ingest`,
  `metrics.py` the counters, `redecode.py` is `telemetry redecode`.
"""
