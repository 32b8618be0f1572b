"""Stateful stream processors: chain of custody, air aggregates (AQI), video continuity."""
