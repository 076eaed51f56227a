"""The `telemetry` command and what every part shares at start, from the ground floor up.

- ground floor, imported by every package: `errors` (the user's errors, one line each),
  `settings` (TELEMETRY_* and flags), `process` (a child process with its log), `backoff`
  (the one retry delay), `mqttclient` (the one way to open an aiomqtt connection);
- `servers`: local Mosquitto and InfluxDB for `telemetry dev`, tests and benchmarks;
- `runtime`: what each subcommand does at start (settings, catalogue, logging, clean errors,
  signals that stop a threaded command);
- `options`: the command-line options `telemetry simulate` and `telemetry dev` share;
- the roof, imported by nothing: `cli` (the console script, subcommands loaded by name) and
  the `dev` package (the whole stack on one machine: `plan`, `stack`, `command`).
"""
