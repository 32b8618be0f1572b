"""The FastAPI app: JSON API and the monitoring screen; reads what ingest/streams/alerts stored."""
