"""`telemetry dev`: the whole stack on one machine, without Docker, stopped cleanly by Ctrl-C.

Starts, in this order, and stops in the reverse order:

| step      | what                                   | where                          |
| --------- | -------------------------------------- | ------------------------------ |
| mosquitto | broker, config written by us           | <data-dir>/mosquitto/          |
| influxd   | InfluxDB 1.x on loopback, the database | <data-dir>/influxd/            |
| ingest    | `telemetry ingest`                     | <data-dir>/logs/ingest.log     |
| api       | `telemetry api`                        | <data-dir>/logs/api.log        |
| simulate  | `telemetry simulate`, backfill first   | <data-dir>/logs/simulate.log   |

Each child runs in a session of its own, so Ctrl-C reaches only this process, which then stops
the children one by one (SIGTERM to the child's process group, a deadline, then SIGKILL). A child
that dies on its own is reported with its last log lines, and the rest is stopped.

The modules, in the order a run uses them: `plan` (what to start, decided before anything
starts: ports, the keys, the history to backfill, the children's settings), `stack` (the
`telemetry <command>` children and the stack that starts, watches and stops them), `command`
(the `telemetry dev` command: servers, then children, the banner, Ctrl-C).
"""
