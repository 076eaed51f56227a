"""The ingester's Prometheus metrics, on a registry of its own (several ingesters in one test)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from influx.schema import REJECT_REASONS


class Metrics:
    """Every metric the ingester exports; names prefixed `telemetry_ingest_`."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = "telemetry_ingest_"
        self.received = Counter(p + "received", "MQTT messages received", registry=r)
        self.stored = Counter(
            p + "stored", "Accepted uplinks stored in InfluxDB or the spool", registry=r
        )
        self.rejected = Counter(
            p + "rejected", "Messages rejected, by reason", ["reason"], registry=r
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.merged = Counter(p + "copies_merged", "Copies merged into a transmission", registry=r)
        self.lost = Counter(p + "lost", "Uplinks missing from sequence gaps", registry=r)
        self.out_of_range = Counter(p + "out_of_range", "Decoded values out of range", registry=r)
        self.retries = Counter(p + "write_retries", "Failed writes, to be retried", registry=r)
        self.points = Counter(p + "points_written", "Points written to InfluxDB", registry=r)
        self.acks = Counter(p + "acked", "Messages acknowledged to the broker", registry=r)
        self.events_published = Counter(
            p + "events_published", "Events the broker took (DESIGN section 9)", registry=r
        )
        self.events_dropped = Counter(
            p + "events_dropped",
            "Events dropped: queue full, refused by the broker, or in flight at a disconnect",
            registry=r,
        )
        self.write_latency = Histogram(
            p + "write_seconds",
            "Duration of one /write request",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.spool_batches = Gauge(p + "spool_batches", "Batches waiting on disk", registry=r)
        self.spool_bytes = Gauge(p + "spool_bytes", "Bytes waiting on disk", registry=r)
        self.oldest_unacked = Gauge(
            p + "oldest_unacked_seconds", "Age of the oldest received, unacked message", registry=r
        )

        self.status_devices = Gauge(
            p + "status_devices", "Devices per status (DESIGN section 10)", ["state"], registry=r
        )
        self.active_alarms = Gauge(
            p + "active_alarms", "Active alarms per kind", ["kind"], registry=r
        )

    def set_status(self, states: dict[str, int], alarms: dict[str, int]) -> None:
        """The status watcher's counts after each poll."""
        for state, n in states.items():
            self.status_devices.labels(state).set(n)
        for kind, n in alarms.items():
            self.active_alarms.labels(kind).set(n)

    def watch_oldest(self, age: Callable[[], float]) -> None:
        self.oldest_unacked.set_function(age)

    def serve(self, host: str, port: int) -> None:
        """Start the scrape endpoint (a daemon thread); port 0 means off."""
        if port:
            start_http_server(port, addr=host, registry=self.registry)
