"""What the field hardware sends: payload schemas, topics, codecs, the device registry.

This package must never import from ingest, streams, alerts, api or hazwatch.
"""
