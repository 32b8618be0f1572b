"""The HJ 212 link's settings, one frozen dataclass: its defaults are the defaults (the settings
file's [hj212] table, env HAZWATCH_HJ212__<NAME>).

Never read settings files here: hazwatch.settings composes it, the composition root hands it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field


@dataclass(frozen=True, slots=True)
class LinkSettings:
    # a peer refused this many times within refused_window_s raises hj212_auth_refused
    refused_alert_count: Annotated[int, Field(ge=1, le=10_000)] = 5
    refused_window_s: Annotated[float, Field(gt=0, le=86_400)] = 600.0
    # While no registry lists any station, HJ 212 data is refused: there is no PW to check it
    # against. True takes every station's data anyway (a lab, the demo, `hazwatch simulate
    # --scenario air` against a bare service): a warning is logged at start.
    accept_unregistered: bool = False
    # station_mean_mismatch: a station's own hourly (CN 2061) or daily (CN 2031) mean differs
    # from hazwatch's by more than the larger of this share of hazwatch's value (%) and the
    # analyser's resolution (registry [[station.instruments]], else HJ 633's rounding step).
    mean_tolerance_pct: Annotated[float, Field(ge=0, le=1000)] = 10.0
    # a station's own value waits this long (receiver's clock) for hazwatch's hour or day to
    # close before it is given up as unmatched (hazwatch keeps hourly means 48 h)
    mean_wait_h: Annotated[float, Field(gt=0, le=720)] = 36.0
    # CN 1014: a new SM4 key not acknowledged (CN 9012 ExeRtn=1) is sent again after this,
    # at most key_max_sends times, then given up (the old key stays)
    key_resend_s: Annotated[float, Field(gt=0, le=86_400)] = 120.0
    key_max_sends: Annotated[int, Field(ge=1, le=100)] = 5

    def __post_init__(self) -> None:
        if self.refused_alert_count < 1 or self.refused_window_s <= 0:
            raise ValueError("refused_alert_count must be ≥ 1 and refused_window_s > 0")
