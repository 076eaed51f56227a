"""The one way the ingester and the API open an aiomqtt connection to the broker.

Both speak MQTT 3.1.1 to `TELEMETRY_MQTT_URL` (host, port, account, TLS from `Settings.mqtt`)
with the configured keepalive; they differ only in the client id, whether the session
persists (the ingester's must: its subscription outlives a restart) and aiomqtt's own options.
The ingester's event connection is not aiomqtt (`ingest.eventlink` says why).
"""

from __future__ import annotations

from typing import Any

import aiomqtt

from telemetry.settings import Settings


def mqtt_client(
    settings: Settings, identifier: str, *, clean_session: bool, **options: Any
) -> aiomqtt.Client:
    """An aiomqtt client for the configured broker, as `identifier`; `options` go to aiomqtt."""
    ep = settings.mqtt
    return aiomqtt.Client(
        ep.host,
        ep.port,
        username=ep.username,
        password=ep.password,
        identifier=identifier,
        protocol=aiomqtt.ProtocolVersion.V311,
        clean_session=clean_session,
        keepalive=settings.mqtt_keepalive,
        tls_params=aiomqtt.TLSParameters() if ep.tls else None,
        **options,
    )
