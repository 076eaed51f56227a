"""The HTTP API (DESIGN section 4), built by `api.app.create_app(settings, catalogue)`.

- `app`: the factory; its lifespan owns the InfluxDB client (`influx.client.InfluxClient`).
- `routes/`: one router per resource (device types, devices, history and messages, health).
- `deps`: typed dependency aliases (settings, catalogue, reader, API key, device id).
- `models`: every response body; `problems`: our errors and the one mapping to RFC 9457.
- `params`: parsing of times, durations, fields and cursors; `paging`: keyset pages over time.
- `middleware`: Prometheus metrics and the request body limit; `typememo`: a device's type.
- `broker`: the one door to MQTT (aiomqtt), a reconnecting `Link`, used by `eventbus` (the
  events subscription, its ring and fan-out to streams) and `publisher` (callback uplinks and
  downlink events, each returned once the broker acked it); `hub`: the log of events that
  every stream reads; `tasks`: how the lifespan ends its background tasks.

Statements are built only in `influx.query`, and only `influx.client` sends them.
"""
