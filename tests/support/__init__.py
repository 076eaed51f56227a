"""The one test-support layer: helpers shared by the integration, reliability and browser tests.

Real servers, no fakes: `fakes` stands in only for the MQTT source of the in-process run of
`ingest.service.run`, against the real InfluxDB.

- `poll`: `wait_for` / `seconds_until`, the one way a test waits (a deadline, never a sleep).
- `ingest`: `Ingester` (`telemetry ingest` as a subprocess), a plain paho `Publisher`, uplinks.
- `apiprocess`: `ApiProcess` (`telemetry api` as a subprocess) and `StreamReader` for SSE;
  `apiclient`: the API app in-process over ASGI.
- `pipeline`: `Pipeline`, one test's ingesters, API processes, publisher, database and prefixes
  (the `pipeline` fixture in tests/conftest.py, `own_influx` in tests/integration/conftest.py).
- `influx`: reading and writing InfluxDB apart from the project's own code.
- `events`: a subscriber to the events topics.
- `ledger`, `faultproxy`: the reliability scenarios' oracle and TCP fault proxy.
"""
