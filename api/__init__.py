"""The FastAPI app: the JSON API over what ingest, streams and alerts stored (health, metrics,
custody, air, snapshots).
"""
