"""The air part: AQI and limits by the standards (aqi.py), hourly means, AQI and the air rules
(hourly.py)."""
