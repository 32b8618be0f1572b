"""The air part's thresholds, in one frozen dataclass: when hours close, what is kept, and
the air rules' limits (the rule declarations in rules.py take their defaults from here). Its
constraints are checked where settings are read (hazwatch.settings composes it as `air`: the
settings file's [air] table, env HAZWATCH_AIR__<NAME>).

Never read the environment or a file here: the composition root builds one and hands it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from hazwatch.streams.air import aqi


@dataclass(frozen=True, slots=True)
class HourlySettings:
    # An hour closes once the station's own data reaches this far past its end (event time) ...
    close_after_data_s: Annotated[float, Field(ge=0)] = 300.0
    # ... or, for a station that went quiet this long (receiver's clock), once the clock has.
    close_after_clock_s: Annotated[float, Field(ge=0)] = 900.0
    min_valid_minutes: Annotated[int, Field(ge=1, le=60)] = aqi.MIN_MINUTES_PER_HOUR
    # Readings and hourly means this far behind a station's newest are pruned on tick.
    keep_readings_h: Annotated[float, Field(gt=0)] = 48.0
    # A station silent too long is the presence part's device_offline (presence.air_silent_s).
    # A value this many times the hour's median, and this far above it, is a spike: µg/m³
    # for every pollutant but CO, mg/m³ for CO.
    spike_ratio: Annotated[float, Field(gt=0)] = 5.0
    spike_min_jump_ugm3: Annotated[float, Field(ge=0)] = 100.0
    spike_min_jump_co_mgm3: Annotated[float, Field(ge=0)] = 5.0
    # With fewer readings of a pollutant in the hour there is no median to judge a spike by.
    spike_min_readings: Annotated[int, Field(ge=3, le=3600)] = 10
    # Data audit (streams/air/audit.py, docs/air-audit.md). A pollutant's hourly values all one
    # value this many hours in a row are a flatline, unless the value is within this many
    # resolution steps of zero (clean air reads CO 0.1 mg/m³ or SO2 1 µg/m³ for hours).
    flatline_hours: Annotated[int, Field(ge=2, le=48)] = 6
    flatline_floor_steps: Annotated[int, Field(ge=0, le=1000)] = 3
    # An hour whose PM2.5 mean is over its PM10 mean by more than the larger of these (the two
    # analysers' uncertainty) marks both invalid: µg/m³, and a fraction of PM10.
    pm_inversion_ugm3: Annotated[float, Field(ge=0)] = 10.0
    pm_inversion_ratio: Annotated[float, Field(ge=0, le=10)] = 0.1
    # aqi_level: an hourly AQI above this; 100 is the top of HJ 633-2012 level 2 (良), so
    # level 3 (轻度污染) and worse alert.
    aqi_alert_above: Annotated[int, Field(ge=0, le=500)] = 100
    # air_exceedance is graded by how far over the limit in force a value is and for how many
    # hours in a row its limit has been exceeded: warning below both, major from either of
    # the first pair, critical from either of the second.
    exceedance_major_ratio: Annotated[float, Field(gt=1, le=100)] = 1.5
    exceedance_critical_ratio: Annotated[float, Field(gt=1, le=100)] = 2.0
    exceedance_major_hours: Annotated[int, Field(ge=1, le=72)] = 3
    exceedance_critical_hours: Annotated[int, Field(ge=1, le=72)] = 6
