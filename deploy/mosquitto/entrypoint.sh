#!/bin/sh
# Writes the service accounts (from .env) into the broker's password file, then runs the broker.
# Device accounts added with `mosquitto_passwd -b <file> <DEVICE_ID> <password>` are kept: the
# file lives on the data volume and is only updated here, never recreated.
# The paths can be overridden so that the tests run this very script on loopback.
set -eu
passwd_file=${MOSQUITTO_PASSWD_FILE:-/mosquitto/data/passwd}
conf_file=${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}

: "${MQTT_INGEST_PASSWORD:?set MQTT_INGEST_PASSWORD in .env}"
: "${MQTT_SIMULATOR_PASSWORD:?set MQTT_SIMULATOR_PASSWORD in .env}"
: "${MQTT_API_PASSWORD:?set MQTT_API_PASSWORD in .env}"

umask 077
[ -f "$passwd_file" ] || : >"$passwd_file"
mosquitto_passwd -b "$passwd_file" ingest "$MQTT_INGEST_PASSWORD"
mosquitto_passwd -b "$passwd_file" simulator "$MQTT_SIMULATOR_PASSWORD"
mosquitto_passwd -b "$passwd_file" api "$MQTT_API_PASSWORD"
# The broker drops root privileges to the mosquitto user, which must read the file.
if id mosquitto >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  chown mosquitto:mosquitto "$passwd_file"
fi
exec mosquitto -c "$conf_file"
