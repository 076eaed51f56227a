"""Device status and alarms (DESIGN section 10): the pure rules that ingest and the API share."""
