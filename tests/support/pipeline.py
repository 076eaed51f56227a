"""One test's path through the servers: its ingesters and API processes, a publisher, its database.

The `pipeline` fixture (tests/conftest.py) gives every test a fresh database and uplink prefix on
the session broker and InfluxDB, and an events prefix of its own; test modules that need more
(a catalogue folder, a fleet, SSE readers) subclass `Pipeline` and build theirs with `like`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self

from telemetry.servers import Influxd, Mosquitto
from tests.support.apiprocess import ApiProcess
from tests.support.influx import select
from tests.support.ingest import Ingester, Publisher, StartIngester


@dataclass
class Pipeline:
    start_ingester: StartIngester
    publisher: Publisher
    mosquitto: Mosquitto
    influxd: Influxd
    database: str
    prefix: str  # the uplink topic prefix
    workdir: Path
    # The test's own events, so that tests sharing the broker never see each other's.
    events_prefix: str = field(default_factory=lambda: f"ev-{uuid.uuid4().hex[:8]}")
    ingesters: list[Ingester] = field(default_factory=list)  # started by `start`
    apis: list[ApiProcess] = field(default_factory=list)  # made by `make_api`

    @classmethod
    def like(cls, other: Pipeline) -> Self:
        """This subclass over the same servers, processes and prefixes as `other`."""
        return cls(**{f.name: getattr(other, f.name) for f in fields(Pipeline)})

    def start(
        self,
        *,
        mqtt_url: str | None = None,
        influx_url: str | None = None,
        database: str | None = None,
        **settings: Any,
    ) -> Ingester:
        """An ingester of this test, ready on return; another broker, InfluxDB or database
        than the pipeline's where a test gives one."""
        ing = self.start_ingester(
            mqtt_url=mqtt_url or self.mosquitto.url,
            influx_url=influx_url or self.influxd.url,
            database=database or self.database,
            prefix=self.prefix,
            **({"mqtt_events_prefix": self.events_prefix} | settings),
        )
        self.ingesters.append(ing)
        return ing

    def make_api(self, **settings: object) -> ApiProcess:
        """An API process of this test, not started, on the same broker, database and prefixes;
        killed at the end of the test if it still runs."""
        api = ApiProcess(
            self.workdir / f"api{len(self.apis) or ''}",
            **(
                {
                    "mqtt_url": self.mosquitto.url,
                    "influx_url": self.influxd.url,
                    "influx_database": self.database,
                    "mqtt_topic_prefix": self.prefix,
                    "mqtt_events_prefix": self.events_prefix,
                }
                | settings
            ),
        )
        self.apis.append(api)
        return api

    def rows(self, q: str) -> list[dict[str, Any]]:
        """Rows of a one-statement query on this test's database."""
        return select(self.influxd, self.database, q)

    def settled_rows(self, q: str) -> list[dict[str, Any]]:
        """Rows once two reads in a row agree: a point's fields become visible one by one."""
        previous = self.rows(q)
        while True:
            current = self.rows(q)
            if current == previous:
                return current
            previous = current

    def close(self) -> None:
        for api in self.apis:
            api.kill()
