"""Device simulators: pure device models, Sigfox radio realism, and one MQTT publisher."""
