"""The air part: AQI and limits by the standards (aqi.py), its thresholds (settings.py), the
air rules and their checks (rules.py), its stream processor of hourly means, AQI and alerts
(processor.py) and its SQL, written by the processor and read by the API (store.py)."""
