"""The ingester: MQTT uplinks in; validated, merged, batched; InfluxDB points out, at least once."""
