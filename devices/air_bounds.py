"""What an air value may be, whatever carried it (JSON reading or HJ 212 packet): bounds, flags.

Never import another hazwatch module here: devices/air.py and devices/hj212.py both build on
this one.
"""

from __future__ import annotations

# HJ 212-2017 data flags: N normal, F stopped, M maintenance, S manual, D fault, C calibration,
# T over range, B communication abnormal.
FLAGS = frozenset("NFMSDCTB")

# Physical bounds a reading cannot leave (not limits: exceedance is an alert, not an error).
BOUNDS: dict[str, tuple[float, float]] = {
    "pm25": (0, 2000),  # µg/m³
    "pm10": (0, 10000),
    "so2": (0, 20000),
    "no2": (0, 5000),
    "co": (0, 200),  # mg/m³
    "o3": (0, 2000),
    "tvoc": (0, 200),  # mg/m³
    "temp": (-60, 70),  # °C
    "rh": (0, 100),  # %RH
    "wind_speed": (0, 75),  # m/s
    "wind_dir": (0, 360),  # degrees
    "pressure": (300, 1100),  # hPa
}
