"""Grafana dashboards generated from the device catalogue, with their provisioning files.

In flow order: `units` (catalogue units as Grafana's unit ids), `queries` (the InfluxQL every
panel runs), `panels` (Grafana's JSON model: panels, grid, variables), `generator` (the
dashboards laid out, every file rendered and written), `command` (`telemetry dashboards`).
"""
