"""The InfluxDB boundary, the only package that talks to InfluxDB (1.x HTTP API).

- `schema`: the storage layout (measurements, tags, reasons);
- `lineprotocol`: points out, as line protocol;
- `statement`: the `Query` value and the checks on identifiers and values it is built from;
- `query`: every InfluxQL statement (the only module holding InfluxQL text), built with them;
- `connection`: the httpx client from the settings;
- `client`: the one door (`InfluxClient`: query, ping, write, create the database);
- `writer`: the write path and its outcome table, under `client`;
- `errors`: one tree for everything the boundary raises.
"""
