"""Grafana dashboards generated from the device catalogue, with their provisioning files."""
