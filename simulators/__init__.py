"""Device simulators: pure device models, Sigfox radio realism, and one MQTT publisher.

In the order an uplink is made: `command` (`telemetry simulate`) and `launch` (its flags checked,
the fleet and the sink chosen); `fleet` (each device with its model, schedule and radio; what a
transmission puts on the air); the models: `behaviour` (the protocol, generic and draining
models), `people` and `home` (the built-in types), over `bounds` (a field's range and grid),
`noise` and `localtime`; `schedule` (when a device sends) and `radio` (who hears it);
`runner` (backfill, live and load modes); the sinks `publisher` (MQTT) and `callbacks` (Sigfox
HTTP callbacks); `report` (what the user is told at the end).
"""
