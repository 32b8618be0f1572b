"""The clocks part's settings, in one frozen dataclass: its defaults are the defaults, its
constraints are checked where settings are read (hazwatch.settings composes it as `clocks`:
the settings file's [clocks] table, env HAZWATCH_CLOCKS__<NAME>).

Never read the environment or a file here: the composition root builds one and hands it in.
Why each default is what it is: docs/design-notes.md, "Device clocks".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from hazwatch.devices.clock_offset import ClockConfig

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ClockSettings:
    """How device clocks are measured, and when one is off (clock_skew)."""

    # a device clock off by more than this raises clock_skew; while a device's offset is not
    # known yet, custody takes events of different devices this close as simultaneous
    tolerance_s: Annotated[float, Field(ge=1, le=3600)] = 30.0
    # the offset is the minimum of received − device time over this much receive time
    window_s: Annotated[float, Field(ge=10, le=7 * 86400)] = 900.0
    # a device's first offset, and a new one after its clock stepped, hold this long first
    settle_s: Annotated[float, Field(ge=0.1, le=3600)] = 60.0
    # a message this far below the minimum is no delay: the clock stepped (or the time is bad)
    step_s: Annotated[float, Field(ge=0.1, le=600)] = 2.0
    # a device whose clock is measured further ahead than this is still refused (future_ts)
    max_lead_s: Annotated[float, Field(ge=0, le=366 * 86400)] = 86400.0
    # devices whose clocks are measured at once; beyond it a new device's offset is not known
    max_devices: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000

    def config(self) -> ClockConfig:
        """The estimator's parameters in nanoseconds."""
        return ClockConfig(
            tolerance_ns=int(self.tolerance_s * NS_PER_S),
            window_ns=int(self.window_s * NS_PER_S),
            settle_ns=int(self.settle_s * NS_PER_S),
            step_ns=int(self.step_s * NS_PER_S),
            max_lead_ns=int(self.max_lead_s * NS_PER_S),
            max_devices=self.max_devices,
        )
