"""The InfluxDB boundary: storage layout, line protocol out, InfluxQL in (1.x HTTP API)."""
