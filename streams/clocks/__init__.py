"""The clocks part: each device's clock offset, measured by the ingest pipeline from its
messages (hazwatch.devices.clock_offset), kept (store.py), shown in /metrics and the API, and
the `clock_skew` rule over it (rules.py, processor.py)."""
