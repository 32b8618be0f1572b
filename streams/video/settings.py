"""The video rules' thresholds, in one frozen dataclass: its defaults are the defaults, its
constraints are checked where settings are read (hazwatch.settings composes it as `video`:
the settings file's [video] table, env HAZWATCH_VIDEO__<NAME>).

Never read the environment or a file here: the composition root builds one and hands it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

Share = Annotated[float, Field(gt=0, le=1)]  # a fraction of the frame, 0 excluded


@dataclass(frozen=True, slots=True)
class VideoRuleSettings:
    """Thresholds of the video rules (the rule declarations in rules.py take their defaults
    from here). When a camera is silent long enough to be offline is the presence part's
    `camera_silent_s` (device_offline), handed to the video rules by the composition root."""

    # seq jumps that skip at least this many messages
    gap_min_missing: Annotated[int, Field(ge=1)] = 1
    occlusion_on: Share = 0.6
    scene_change_on: Share = 0.35
    too_dark_brightness: Annotated[float, Field(ge=0, le=255)] = 15.0
    # sharpness under this share of the camera's own baseline
    defocus_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.35
    # a baseline this low says nothing about focus
    defocus_min_baseline: Annotated[float, Field(ge=0)] = 20.0
    # frames before a sharpness baseline is trusted
    baseline_frames: Annotated[int, Field(ge=1)] = 5
    baseline_adapt: Share = 0.05
    # a tamper condition must hold on this many messages in a row
    persist_frames: Annotated[int, Field(ge=1)] = 2
    door_motion_on: Share = 0.02
    # a read this close (before or after) explains door motion
    door_window_s: Annotated[float, Field(gt=0)] = 60.0
    # A candidate a message to another worker may explain (frame gap, door motion with no read)
    # waits this long by the receiver's clock, so batches in flight elsewhere are stored, and is
    # then confirmed against the point store.
    confirm_grace_s: Annotated[float, Field(ge=0)] = 10.0
    # point-store queries per confirmation round; the rest wait
    confirm_max_queries: Annotated[int, Field(ge=1)] = 32
    confirm_max_rows: Annotated[int, Field(ge=1)] = 10_000  # rows one query may return
    # a camera's minute (video_minute) is computed confirm_grace_s after it sent a frame past
    # the minute's end, or this long after the minute's last frame when it went quiet
    minute_quiet_s: Annotated[float, Field(gt=0)] = 60.0
