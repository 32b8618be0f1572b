"""Ingest: MQTT consumers, decode/validate, dead letters, the InfluxDB writers, durability."""
