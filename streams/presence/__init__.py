"""The presence part: whether each registered device is there (its retained MQTT last will,
or how long it has been silent), kept across restarts (store.py), and the `device_offline`
rule over it (rules.py, processor.py)."""
