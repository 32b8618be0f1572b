"""Device simulators: real MQTT clients that publish what the hardware would, faults included.

Never import from ingest, streams, alerts, api or hazwatch: simulators are clients of the broker.
"""
