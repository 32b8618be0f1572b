"""The HJ 212 link's thresholds, one frozen dataclass: its defaults are the defaults.

Never read settings files here: hazwatch/gateway.py builds it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LinkSettings:
    # a peer refused this many times within refused_window_s raises hj212_auth_refused
    refused_alert_count: int = 5
    refused_window_s: float = 600.0

    def __post_init__(self) -> None:
        if self.refused_alert_count < 1 or self.refused_window_s <= 0:
            raise ValueError("refused_alert_count must be ≥ 1 and refused_window_s > 0")
